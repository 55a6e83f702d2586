package red

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// out is one packet a Decoder emitted.
type out struct {
	seq  uint16
	ts   uint32
	data []byte
}

func (o out) String() string { return fmt.Sprintf("%d@%d", o.seq, o.ts) }

// stream is a RED stream made by an Encoder: packet i has sequence number
// seq0+i, timestamp ts0+i*frame and payload opusOf(i).
type stream struct {
	seq0    uint16
	ts0     uint32
	frame   uint32
	packets [][]byte
}

func opusOf(i int) []byte { return fill(byte(i*7), 20+i%50) }

func newStream(t testing.TB, seq0 uint16, ts0, frame uint32, n, distance int) *stream {
	t.Helper()
	e, err := NewEncoder(111)
	if err != nil {
		t.Fatal(err)
	}
	e.SetDistance(distance)
	s := &stream{seq0: seq0, ts0: ts0, frame: frame}
	for i := range n {
		s.packets = append(s.packets, e.Encode(nil, seq0+uint16(i), ts0+uint32(i)*frame, opusOf(i)))
	}
	return s
}

// feed decodes packet i of the stream and returns what was emitted.
func (s *stream) feed(t *testing.T, d *Decoder, i int) []out {
	t.Helper()
	var got []out
	err := d.Decode(s.seq0+uint16(i), s.ts0+uint32(i)*s.frame, s.packets[i], func(seq uint16, ts uint32, opus []byte) {
		got = append(got, out{seq, ts, bytes.Clone(opus)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// expect checks that got is exactly packets idx of the stream, in order.
func (s *stream) expect(t *testing.T, got []out, idx ...int) {
	t.Helper()
	if len(got) != len(idx) {
		t.Fatalf("emitted %v, want packets %v", got, idx)
	}
	for j, i := range idx {
		g := got[j]
		if g.seq != s.seq0+uint16(i) || g.ts != s.ts0+uint32(i)*s.frame || !bytes.Equal(g.data, opusOf(i)) {
			t.Fatalf("emitted %v, want packets %v (mismatch at %d)", got, idx, j)
		}
	}
}

func TestDecoderNoLoss(t *testing.T) {
	s := newStream(t, 1000, 5000, 960, 50, 2)
	d := NewDecoder()
	for i := range s.packets {
		s.expect(t, s.feed(t, d, i), i)
	}
	if d.FrameDuration() != 960 {
		t.Fatal(d.FrameDuration())
	}
}

func TestDecoderRecoversLoss(t *testing.T) {
	s := newStream(t, 1000, 5000, 960, 40, 2)
	d := NewDecoder()
	for i := 0; i < 5; i++ {
		s.feed(t, d, i)
	}
	// One lost: rebuilt from the next packet, before its primary.
	s.expect(t, s.feed(t, d, 6), 5, 6)
	// Two lost: both rebuilt with distance 2.
	s.expect(t, s.feed(t, d, 9), 7, 8, 9)
	// Three lost: the oldest is gone.
	s.expect(t, s.feed(t, d, 13), 11, 12, 13)
	// Three lost again, with the rebuilt ones in the window.
	s.expect(t, s.feed(t, d, 17), 15, 16, 17)

	s1 := newStream(t, 1000, 5000, 960, 10, 1)
	d = NewDecoder()
	s1.feed(t, d, 0)
	s1.feed(t, d, 1)
	s1.expect(t, s1.feed(t, d, 4), 3, 4) // 2 is gone with distance 1
}

func TestDecoderWrapAround(t *testing.T) {
	// Sequence numbers and timestamps both wrap in the middle of a burst.
	const n = 40
	s := newStream(t, 65535-20, 1<<32-20*960-480, 960, n, 3)
	d := NewDecoder()
	var all []out
	for i := range n {
		if i >= 19 && i <= 21 { // 65534, 65535, 0
			continue
		}
		all = append(all, s.feed(t, d, i)...)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	s.expect(t, all, idx...)
}

func TestDecoderReorderAndDuplicates(t *testing.T) {
	s := newStream(t, 7, 0, 960, 20, 1)
	d := NewDecoder()
	s.expect(t, s.feed(t, d, 0), 0)
	s.expect(t, s.feed(t, d, 1), 1)
	s.expect(t, s.feed(t, d, 3), 2, 3) // 2 late: rebuilt from 3
	s.expect(t, s.feed(t, d, 2))       // 2 itself: already emitted
	s.expect(t, s.feed(t, d, 3))       // duplicate
	s.expect(t, s.feed(t, d, 1))       // duplicate

	// 4 and 5 lost, 6 rebuilds 5; 4 arrives late: emitted once, late.
	s.expect(t, s.feed(t, d, 6), 5, 6)
	s.expect(t, s.feed(t, d, 4), 4)
	s.expect(t, s.feed(t, d, 4))

	// Without redundancy, late packets are emitted late, once.
	s0 := newStream(t, 100, 0, 960, 10, 0)
	d = NewDecoder()
	s0.expect(t, s0.feed(t, d, 0), 0)
	s0.expect(t, s0.feed(t, d, 2), 2)
	s0.expect(t, s0.feed(t, d, 1), 1)
	s0.expect(t, s0.feed(t, d, 1))

	// A packet whose primary was rebuilt arrives late and rebuilds another.
	s2 := newStream(t, 100, 0, 960, 10, 2)
	d = NewDecoder()
	s2.feed(t, d, 0)
	s2.feed(t, d, 1)
	// 2, 3, 4 lost; 5 rebuilds 3 and 4; 4 arrives late: rebuilds 2.
	s2.expect(t, s2.feed(t, d, 5), 3, 4, 5)
	s2.expect(t, s2.feed(t, d, 4), 2)
}

func TestDecoderWindow(t *testing.T) {
	s := newStream(t, 0, 0, 960, 300, 1)
	d := NewDecoder()
	s.feed(t, d, 0)
	// A jump ahead: 0 is out of the window, nothing anchors a rebuild of 199.
	s.expect(t, s.feed(t, d, 200), 200)
	s.expect(t, s.feed(t, d, 200-window)) // too old
	s.expect(t, s.feed(t, d, 201-window), 201-window)
	// 200 is in the window: it anchors the rebuild of 289.
	s.expect(t, s.feed(t, d, 290), 289, 290)
	s.expect(t, s.feed(t, d, 199), 199) // late, in the window
	s.expect(t, s.feed(t, d, 290-window))
}

func TestDecoderMalformed(t *testing.T) {
	s := newStream(t, 0, 0, 960, 10, 1)
	d := NewDecoder()
	s.feed(t, d, 0)
	called := false
	err := d.Decode(1, 960, []byte{0xEF, 0x0F}, func(uint16, uint32, []byte) { called = true })
	if !errors.Is(err, ErrMalformed) || called {
		t.Fatalf("err %v, emitted %v", err, called)
	}
	// The malformed packet left no trace: 1 is rebuilt from 2.
	s.expect(t, s.feed(t, d, 2), 1, 2)
}

// redPacket builds a RED payload by hand: redundant blocks given as
// offset/data pairs, oldest first.
func redPacket(t *testing.T, primary []byte, red ...any) []byte {
	t.Helper()
	var blocks []Block
	for i := 0; i < len(red); i += 2 {
		blocks = append(blocks, Block{PT: 111, TSOffset: uint16(red[i].(int)), Data: red[i+1].([]byte)})
	}
	p, err := Append(nil, Block{PT: 111, Data: primary}, blocks)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decode(t *testing.T, d *Decoder, seq uint16, ts uint32, p []byte) []out {
	t.Helper()
	var got []out
	if err := d.Decode(seq, ts, p, func(seq uint16, ts uint32, opus []byte) {
		got = append(got, out{seq, ts, bytes.Clone(opus)})
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func seqs(o []out) []uint16 {
	var s []uint16
	for _, x := range o {
		s = append(s, x.seq)
	}
	return s
}

func TestDecoderIgnoresBlocksOutOfLockstep(t *testing.T) {
	x := []byte{1}
	d := NewDecoder()
	for i := range 9 { // 0..8, 960 apart
		decode(t, d, uint16(i), uint32(i)*960, redPacket(t, x))
	}
	// 9, 10, 11 lost, and a pause before 12: its block for 11 is 2880 back,
	// which would be 3 frames, packet 9. The gap 8..12 spans 6 frames in 4
	// sequence numbers, so nothing is rebuilt.
	got := decode(t, d, 12, 14*960, redPacket(t, x, 2880, []byte{11}))
	if fmt.Sprint(seqs(got)) != "[12]" {
		t.Fatalf("emitted %v, want only 12", got)
	}
	// Offsets that are not whole frames, zero offsets and empty blocks are
	// ignored; the good block is used.
	got = decode(t, d, 15, 17*960, redPacket(t, x, 1000, []byte{9}, 960, []byte{}, 960, []byte{14}, 0, []byte{15}))
	if fmt.Sprint(seqs(got)) != "[14 15]" || got[0].ts != 16*960 || got[0].data[0] != 14 {
		t.Fatalf("emitted %v, want 14@%d then 15", got, 16*960)
	}
	// Two blocks for the same packet: emitted once.
	got = decode(t, d, 17, 19*960, redPacket(t, x, 960, []byte{16}, 960, []byte{99}))
	if fmt.Sprint(seqs(got)) != "[16 17]" || got[0].data[0] != 16 {
		t.Fatalf("emitted %v", got)
	}
	// Blocks for packets emitted already are ignored.
	got = decode(t, d, 18, 20*960, redPacket(t, x, 960, []byte{17}))
	if fmt.Sprint(seqs(got)) != "[18]" {
		t.Fatalf("emitted %v", got)
	}
}

func TestDecoderFrameDuration(t *testing.T) {
	// 10 ms frames: 480 ticks. Until two consecutive primaries arrive the
	// Decoder assumes 960, and rebuilds nothing.
	s := newStream(t, 0, 0, 480, 20, 2)
	d := NewDecoder()
	s.expect(t, s.feed(t, d, 0), 0)
	s.expect(t, s.feed(t, d, 2), 2) // block 480 back is not a whole 960 frame
	s.expect(t, s.feed(t, d, 4), 4) // block 960 back would be packet 3, but 2..4 is not 2 frames of 960
	// 4 and 5 are consecutive: 480 measured, and 3 rebuilt from 5.
	s.expect(t, s.feed(t, d, 5), 3, 5)
	if d.FrameDuration() != 480 {
		t.Fatalf("frame duration %d", d.FrameDuration())
	}
	s.expect(t, s.feed(t, d, 8), 6, 7, 8)

	// The frame duration changes to 20 ms: measured again from the first
	// consecutive pair.
	e, _ := NewEncoder(111)
	e.SetDistance(1)
	d = NewDecoder()
	var ts uint32
	for seq := uint16(0); seq < 10; seq++ {
		frame := uint32(480)
		if seq >= 5 {
			frame = 960
		}
		ts += frame
		p := e.Encode(nil, seq, ts, []byte{byte(seq)})
		if seq == 7 {
			continue
		}
		got := decode(t, d, seq, ts, p)
		if seq == 8 && fmt.Sprint(seqs(got)) != "[7 8]" {
			t.Fatalf("after the change: %v", got)
		}
	}
	if d.FrameDuration() != 960 {
		t.Fatalf("frame duration %d", d.FrameDuration())
	}
}

func TestDecoderReset(t *testing.T) {
	s := newStream(t, 0, 0, 960, 10, 1)
	d := NewDecoder()
	for i := range 5 {
		s.feed(t, d, i)
	}
	d.Reset()
	for i := range 5 { // the same sequence numbers again: a new stream
		s.expect(t, s.feed(t, d, i), i)
	}
}

func TestDecoderNoAllocs(t *testing.T) {
	s := newStream(t, 0, 0, 960, 1000, 3)
	d := NewDecoder()
	var n int
	emit := func(uint16, uint32, []byte) { n++ }
	i := 0
	step := func() {
		if i%5 == 4 {
			i++ // lose one packet in five
		}
		if err := d.Decode(s.seq0+uint16(i), s.ts0+uint32(i)*960, s.packets[i], emit); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 20 {
		step()
	}
	if allocs := testing.AllocsPerRun(500, step); allocs != 0 {
		t.Fatalf("Decode allocates %.1f times per packet", allocs)
	}
	if n != i {
		t.Fatalf("emitted %d of %d", n, i)
	}
}
