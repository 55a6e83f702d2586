package red

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// redOf parses an encoder's output and returns the redundant blocks'
// offsets and the primary.
func redOf(t *testing.T, p []byte) (offsets []uint16, data [][]byte, primary []byte) {
	t.Helper()
	blocks, err := Parse(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks[:len(blocks)-1] {
		if b.PT != 111 {
			t.Fatalf("block PT %d", b.PT)
		}
		offsets = append(offsets, b.TSOffset)
		data = append(data, b.Data)
	}
	return offsets, data, blocks[len(blocks)-1].Data
}

func offsetsEqual(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewEncoderPT(t *testing.T) {
	if _, err := NewEncoder(128); !errors.Is(err, ErrBadPayloadType) {
		t.Fatalf("PT 128: %v", err)
	}
	e, err := NewEncoder(111)
	if err != nil || e.Distance() != DefaultDistance {
		t.Fatal(err, e.Distance())
	}
	e.SetDistance(-1)
	if e.Distance() != 0 {
		t.Fatal(e.Distance())
	}
	e.SetDistance(100)
	if e.Distance() != MaxDistance {
		t.Fatal(e.Distance())
	}
}

func TestEncoderOffsets(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(3)
	const seq0, ts0 = 65533, math.MaxUint32 - 1000 // both wrap during the test
	want := [][]uint16{
		nil,
		{960},
		{1920, 960},
		{2880, 1920, 960},
		{2880, 1920, 960},
		{2880, 1920, 960},
	}
	for i, w := range want {
		seq, ts := uint16(seq0+i), uint32(ts0+960*i)
		offs, data, primary := redOf(t, e.Encode(nil, seq, ts, fill(byte(i), 50+i)))
		if !offsetsEqual(offs, w) {
			t.Fatalf("packet %d: offsets %v, want %v", i, offs, w)
		}
		if !bytes.Equal(primary, fill(byte(i), 50+i)) {
			t.Fatalf("packet %d: wrong primary", i)
		}
		for j, o := range offs { // oldest first: the block o/960 packets back
			k := int(o / 960)
			if !bytes.Equal(data[j], fill(byte(i-k), 50+i-k)) {
				t.Fatalf("packet %d: block %d does not hold packet %d", i, j, i-k)
			}
		}
	}
}

func TestEncoderSkipsGap(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(3)
	p := fill(1, 40)
	e.Encode(nil, 10, 9600, p)
	e.Encode(nil, 11, 10560, p)
	// 12 never reaches the encoder.
	if offs, _, _ := redOf(t, e.Encode(nil, 13, 12480, p)); len(offs) != 0 {
		t.Fatalf("13 after a gap: offsets %v, want none", offs)
	}
	if offs, _, _ := redOf(t, e.Encode(nil, 14, 13440, p)); !offsetsEqual(offs, []uint16{960}) {
		t.Fatalf("14: offsets %v, want [960] (not 11, from before the gap)", offs)
	}
	// A late packet is encoded with what precedes it, and does not replace
	// newer history.
	if offs, _, _ := redOf(t, e.Encode(nil, 12, 11520, p)); !offsetsEqual(offs, []uint16{1920, 960}) {
		t.Fatalf("late 12: offsets %v, want [1920 960]", offs)
	}
	e.Encode(nil, 6, 5760, p) // slot of 14: older, ignored
	if offs, _, _ := redOf(t, e.Encode(nil, 15, 14400, p)); !offsetsEqual(offs, []uint16{2880, 1920, 960}) {
		t.Fatalf("15: offsets %v, want [2880 1920 960]", offs)
	}
}

func TestEncoderTimestampLimits(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(4)
	p := fill(1, 40)
	e.Encode(nil, 1, 0, p)
	e.Encode(nil, 2, 960, p)
	// A DTX pause of 400 ms: 19200 ticks do not fit 14 bits.
	if offs, _, _ := redOf(t, e.Encode(nil, 3, 960+19200, p)); len(offs) != 0 {
		t.Fatalf("after DTX pause: offsets %v", offs)
	}
	// A pause that fits is carried with its true offset.
	e.Encode(nil, 10, 0, p)
	if offs, _, _ := redOf(t, e.Encode(nil, 11, 8000, p)); !offsetsEqual(offs, []uint16{8000}) {
		t.Fatalf("offsets %v, want [8000]", offs)
	}
	// Timestamps going backwards or standing still end the redundancy.
	e.Encode(nil, 20, 5000, p)
	if offs, _, _ := redOf(t, e.Encode(nil, 21, 5000, p)); len(offs) != 0 {
		t.Fatalf("same timestamp: offsets %v", offs)
	}
	if offs, _, _ := redOf(t, e.Encode(nil, 22, 4000, p)); len(offs) != 0 {
		t.Fatalf("earlier timestamp: offsets %v", offs)
	}
}

func TestEncoderSkipsUnusablePayloads(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(3)
	e.Encode(nil, 1, 960, fill(1, 40))
	e.Encode(nil, 2, 1920, make([]byte, MaxBlockLen+1)) // cannot be a block
	e.Encode(nil, 3, 2880, nil)                         // empty
	offs, _, _ := redOf(t, e.Encode(nil, 4, 3840, fill(4, 40)))
	if !offsetsEqual(offs, []uint16{2880}) {
		t.Fatalf("offsets %v, want [2880]: 1 carried, 2 and 3 skipped", offs)
	}
	// A primary longer than a block is still sent.
	if _, _, primary := redOf(t, e.Encode(nil, 5, 4800, make([]byte, 2000))); len(primary) != 2000 {
		t.Fatal(len(primary))
	}
}

func TestEncoderMaxSize(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(4)
	e.SetMaxSize(1 + 300 + 2*(4+300)) // primary and two blocks
	for i := range 5 {
		e.Encode(nil, uint16(i), uint32(i)*960, fill(byte(i), 300))
	}
	out := e.Encode(nil, 5, 5*960, fill(5, 300))
	offs, _, _ := redOf(t, out)
	if !offsetsEqual(offs, []uint16{1920, 960}) || len(out) > 1+300+2*304 {
		t.Fatalf("offsets %v, %d bytes: want the two newest", offs, len(out))
	}
	e.SetMaxSize(0)
	if offs, _, _ := redOf(t, e.Encode(nil, 6, 6*960, fill(6, 300))); len(offs) != 0 {
		t.Fatalf("offsets %v under a tiny cap", offs)
	}
	e.SetDistance(0)
	e.SetMaxSize(DefaultMaxSize)
	if offs, _, _ := redOf(t, e.Encode(nil, 7, 7*960, fill(7, 300))); len(offs) != 0 {
		t.Fatalf("distance 0: offsets %v", offs)
	}
	// History is kept at distance 0: raising it takes effect at once.
	e.SetDistance(2)
	if offs, _, _ := redOf(t, e.Encode(nil, 8, 8*960, fill(8, 300))); !offsetsEqual(offs, []uint16{1920, 960}) {
		t.Fatalf("offsets %v after raising the distance", offs)
	}
	e.Reset()
	if offs, _, _ := redOf(t, e.Encode(nil, 9, 9*960, fill(9, 300))); len(offs) != 0 {
		t.Fatalf("offsets %v after Reset", offs)
	}
}

func TestEncoderNoAllocs(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(MaxDistance)
	payloads := [][]byte{fill(1, 60), fill(2, 120), fill(3, 90)}
	dst := make([]byte, 0, 1500)
	seq, ts := uint16(0), uint32(0)
	step := func() {
		dst = e.Encode(dst[:0], seq, ts, payloads[seq%3])
		seq++
		ts += 960
	}
	for range 2 * MaxDistance { // warm up: the history's buffers grow once
		step()
	}
	if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
		t.Fatalf("Encode allocates %.1f times per packet", allocs)
	}
}

func TestDistanceForLoss(t *testing.T) {
	prev := 0
	for i := 0; i <= 100; i++ {
		p := float64(i) / 100
		d := DistanceForLoss(p)
		if d < prev || (p >= minLoss && d < 1) || d > maxAutoDistance {
			t.Fatalf("loss %.2f: distance %d after %d", p, d, prev)
		}
		prev = d
		// Up to 60% loss the distance keeps 99% of the frames.
		if residual := math.Pow(p, float64(d+1)); p <= 0.60 && residual > residualTarget*1.0001 {
			t.Fatalf("loss %.2f: distance %d leaves %.2f%% lost", p, d, 100*residual)
		}
	}
	for p, want := range map[float64]int{0: 0, 0.005: 0, 0.01: 1, 0.05: 1, 0.10: 1, 0.15: 2, 0.20: 2, 0.29: 3, 0.30: 3, 0.40: 5, 0.6: 9, 0.8: 12} {
		if d := DistanceForLoss(p); d != want {
			t.Fatalf("DistanceForLoss(%v) = %d, want %d", p, d, want)
		}
	}
	for _, p := range []float64{math.NaN(), -1, math.Inf(-1)} {
		if d := DistanceForLoss(p); d != 0 {
			t.Fatalf("DistanceForLoss(%v) = %d", p, d)
		}
	}
	for _, p := range []float64{1, 2, math.Inf(1)} {
		if d := DistanceForLoss(p); d != maxAutoDistance {
			t.Fatalf("DistanceForLoss(%v) = %d", p, d)
		}
	}
	for _, p := range []float64{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8} {
		d := DistanceForLoss(p)
		t.Logf("loss %2.0f%%: distance %d, frames through %.2f%%", 100*p, d, 100*(1-math.Pow(p, float64(d+1))))
	}
}

// A stream at MaxDistance keeps every copy across the sequence number
// wrap (the history ring divides 65536).
func TestEncoderFullDistanceAcrossWrap(t *testing.T) {
	e, err := NewEncoder(111)
	if err != nil {
		t.Fatal(err)
	}
	e.SetDistance(MaxDistance)
	opus := make([]byte, 40)
	var buf []byte
	var blocks []Block
	seq, ts := uint16(65500), uint32(1000)
	for i := range 100 {
		buf = e.Encode(buf[:0], seq, ts, opus)
		blocks, err = Parse(buf, blocks[:0])
		if err != nil {
			t.Fatal(err)
		}
		if want := min(i, MaxDistance) + 1; len(blocks) != want {
			t.Fatalf("packet %d (seq %d): %d blocks, want %d", i, seq, len(blocks), want)
		}
		seq++
		ts += 960
	}
}

func TestFitDistance(t *testing.T) {
	for _, c := range []struct{ d, size, want int }{
		{12, 80, 12},  // 32 kbit/s Opus: all twelve fit
		{12, 88, 12},  // 1 + 88 + 12*92 = 1193
		{12, 90, 11},  // 1 + 90 + 12*94 = 1219: one fewer
		{12, 160, 6},  // 64 kbit/s stereo
		{3, 160, 3},   // fewer asked than fit
		{12, 1300, 0}, // no room for any copy
		{-1, 80, 0},
	} {
		if got := FitDistance(c.d, c.size); got != c.want {
			t.Fatalf("FitDistance(%d, %d) = %d, want %d", c.d, c.size, got, c.want)
		}
	}
}
