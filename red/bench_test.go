package red

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Opus at about 32 kbit/s: 80-byte payloads every 20 ms.
const benchPayload = 80

func BenchmarkEncode(b *testing.B) {
	for _, d := range []int{0, 1, 2, 4, 8} {
		b.Run(fmt.Sprintf("distance=%d", d), func(b *testing.B) {
			e, _ := NewEncoder(111)
			e.SetDistance(d)
			opus := fill(1, benchPayload)
			dst := make([]byte, 0, 1500)
			b.ReportAllocs()
			b.SetBytes(benchPayload)
			var seq uint16
			for b.Loop() {
				dst = e.Encode(dst[:0], seq, uint32(seq)*960, opus)
				seq++
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	p := simStream(b, 5, 2, 0, 0)[4]
	blocks := make([]Block, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		blocks, _ = Parse(p, blocks)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, d := range []int{1, 2, 4} {
		for _, loss := range []float64{0, 0.2} {
			b.Run(fmt.Sprintf("distance=%d/loss=%.0f%%", d, 100*loss), func(b *testing.B) {
				const n = 1 << 12
				e, _ := NewEncoder(111)
				e.SetDistance(d)
				opus := fill(1, benchPayload)
				packets := make([][]byte, n)
				for i := range packets {
					packets[i] = e.Encode(nil, uint16(i), uint32(i)*960, opus)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				lost := make([]bool, n)
				for i := range lost {
					lost[i] = rng.Float64() < loss
				}
				dec := NewDecoder()
				emitted := 0
				emit := func(uint16, uint32, []byte) { emitted++ }
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					for lost[i%n] {
						i++
					}
					_ = dec.Decode(uint16(i), uint32(i)*960, packets[i%n], emit)
					i++
				}
				b.ReportMetric(float64(emitted)/float64(b.N), "emitted/op")
			})
		}
	}
}
