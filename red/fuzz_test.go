package red

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x6F})
	f.Add([]byte{0xEF, 0x0F, 0x00, 0x03, 0x6F, 1, 2, 3, 4, 5})
	f.Add([]byte{0xEF, 0xFF, 0xFF, 0xFF, 0x6F})
	f.Add([]byte{0xEF, 0x0F, 0x00})
	e, _ := NewEncoder(111)
	e.SetDistance(4)
	for i := range 6 {
		f.Add(e.Encode(nil, uint16(i), uint32(i)*960, fill(byte(i), 10+i)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, err := Parse(data, make([]Block, 0, 4))
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(blocks) != 0 {
				t.Fatalf("error %v with %d blocks", err, len(blocks))
			}
			return
		}
		primary := blocks[len(blocks)-1]
		size := len(blocks)*4 - 3
		for _, b := range blocks {
			size += len(b.Data)
		}
		if primary.TSOffset != 0 || size != len(data) {
			t.Fatalf("primary offset %d, blocks cover %d of %d bytes", primary.TSOffset, size, len(data))
		}
		// Whatever parses packs back to the same bytes.
		out, err := Append(nil, primary, blocks[:len(blocks)-1])
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("Append(Parse(x)) = % x, %v; x = % x", out, err, data)
		}
	})
}

// fuzzPackets serialises packets for FuzzDecode: per packet a sequence
// number step (int8), a timestamp step in units of 60 ticks (int16), a
// payload length (one byte) and the payload.
func fuzzPackets(steps []int, ts []int, payloads [][]byte) []byte {
	var b []byte
	for i, p := range payloads {
		b = append(b, byte(int8(steps[i])), byte(uint16(int16(ts[i]))>>8), byte(int16(ts[i])), byte(len(p)))
		b = append(b, p[:min(len(p), 255)]...)
	}
	return b
}

func FuzzDecode(f *testing.F) {
	// Seeds: encoder output with losses and reordering, 20 ms frames (16
	// steps of 60 ticks).
	for _, d := range []int{1, 2, 4} {
		e, _ := NewEncoder(111)
		e.SetDistance(d)
		var packets [][]byte
		for i := range 12 {
			packets = append(packets, e.Encode(nil, uint16(65530+i), uint32(i)*960, fill(byte(i), 5+i)))
		}
		keep := []int{0, 1, 2, 5, 4, 8, 8, 11}
		var steps, ts []int
		var payloads [][]byte
		prev := 0
		for k, i := range keep {
			if k == 0 {
				steps, ts = append(steps, 0), append(ts, 0)
			} else {
				steps, ts = append(steps, i-prev), append(ts, 16*(i-prev))
			}
			payloads = append(payloads, packets[i])
			prev = i
		}
		f.Add(fuzzPackets(steps, ts, payloads))
	}
	f.Add([]byte{0, 0, 0, 1, 0x6F, 1, 0, 16, 5, 0xEF, 0x0F, 0x00, 0x00, 0x6F})

	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPackets = 200 // keeps the stream within ±32767 of its start
		d := NewDecoder()
		var (
			ext     int64 = 65500 // exact position of the packet, to tell wrapped numbers apart
			highest int64 = math.MinInt64
			scratch []Block
			ts      uint32
			emitted = map[int64]bool{}
		)
		for n := 0; len(data) >= 4 && n < maxPackets; n++ {
			ext += int64(int8(data[0]))
			ts += uint32(int32(int16(uint16(data[1])<<8|uint16(data[2])))) * 60
			l := min(int(data[3]), len(data)-4)
			payload := data[4 : 4+l]
			data = data[4+l:]
			var perr error
			if scratch, perr = Parse(payload, scratch); perr == nil { // the Decoder ignores the others
				highest = max(highest, ext)
			}
			seq := uint16(ext)
			err := d.Decode(seq, ts, payload, func(s uint16, _ uint32, opus []byte) {
				e := ext + int64(int16(s-seq))
				switch {
				case emitted[e]:
					t.Fatalf("sequence %d emitted twice", e)
				case e <= highest-window || e > highest:
					t.Fatalf("emitted %d outside the window below %d", e, highest)
				case len(opus) > len(payload):
					t.Fatalf("emitted %d bytes from a %d-byte payload", len(opus), len(payload))
				}
				emitted[e] = true
			})
			if (err == nil) != (perr == nil) || err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v, Parse: %v", err, perr)
			}
		}
	})
}
