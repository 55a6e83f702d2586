package simulcast

import "testing"

func TestRewriterTranslatesAndReverses(t *testing.T) {
	var r Rewriter
	if r.Started() {
		t.Fatal("started too early")
	}
	if _, ok := r.Reverse(5); ok {
		t.Fatal("reverse before start")
	}
	r.Start(65000, 4000000000, 10, 20)
	for i := uint16(0); i < 1000; i++ { // crosses the 16-bit wrap of the input
		seq, ts, _ := r.Rewrite(65000+i, 4000000000+uint32(i)*3000)
		if seq != 10+i || ts != 20+uint32(i)*3000 {
			t.Fatalf("packet %d -> %d/%d", i, seq, ts)
		}
		if in, ok := r.Reverse(seq); !ok || in != 65000+i {
			t.Fatalf("reverse %d -> %d", seq, in)
		}
	}
	// an old packet (retransmission) keeps its mapping and does not move last
	if seq, _, _ := r.Rewrite(65000+5, 0); seq != 15 {
		t.Fatalf("old packet -> %d", seq)
	}
}

func TestRewriterSwitchSourceIsContinuous(t *testing.T) {
	var r Rewriter
	r.Start(100, 1000, 100, 1000)
	lastSeq, lastTS, _ := r.Rewrite(150, 5000)
	r.SwitchSource(9000, 777777, 3000)
	seq, ts, _ := r.Rewrite(9000, 777777)
	if seq != lastSeq+1 || ts != lastTS+3000 {
		t.Fatalf("after switch %d/%d, last %d/%d", seq, ts, lastSeq, lastTS)
	}
	if seq, _, _ := r.Rewrite(9001, 777777); seq != lastSeq+2 {
		t.Fatalf("next %d", seq)
	}
	var fresh Rewriter
	fresh.SwitchSource(5, 6, 3000)
	if s, ts, _ := fresh.Rewrite(5, 6); !fresh.Started() || s != 5 || ts != 6 {
		t.Fatal("switch on a fresh rewriter should start it")
	}
}

func TestRewriterInsertKeepsNACKMapping(t *testing.T) {
	var r Rewriter
	r.Start(100, 1000, 500, 9000)
	r.Rewrite(101, 1000) // out 501
	p1, ts := r.Insert() // out 502: padding
	if p1 != 502 || ts != 9000 {
		t.Fatalf("inserted %d/%d", p1, ts)
	}
	p2, _ := r.Insert() // out 503
	if seq, _, _ := r.Rewrite(102, 1100); seq != 504 {
		t.Fatalf("media after padding got %d, want 504", seq)
	}
	for out, in := range map[uint16]uint16{500: 100, 501: 101, 504: 102} {
		if got, ok := r.Reverse(out); !ok || got != in {
			t.Fatalf("reverse %d = %d, %v; want %d", out, got, ok, in)
		}
	}
	for _, pad := range []uint16{p1, p2, 505} {
		if _, ok := r.Reverse(pad); ok {
			t.Fatalf("padding or future sequence %d mapped to a media packet", pad)
		}
	}
	r.SwitchSource(7, 7, 1)
	if _, ok := r.Reverse(500); ok {
		t.Fatal("previous source still mapped after a switch")
	}
}

// A packet that arrives late, after padding was inserted or after the
// translation was re-anchored, must never take a number already used.
func TestRewriterLatePacketsNeverCollide(t *testing.T) {
	var r Rewriter
	r.Start(100, 1000, 500, 9000)
	r.Rewrite(101, 1000) // out 501; incoming 102 is late
	r.Rewrite(103, 1000) // out 503
	pad, _ := r.Insert() // out 504
	if seq, _, ok := r.Rewrite(104, 2000); !ok || seq != 505 {
		t.Fatalf("next packet %d %v, want 505", seq, ok)
	}
	// the late packet keeps the slot of its segment
	if seq, _, ok := r.Rewrite(102, 1000); !ok || seq != 502 {
		t.Fatalf("late packet %d %v, want 502", seq, ok)
	}
	if seq, _, _ := r.Rewrite(105, 2000); seq != 506 || pad != 504 {
		t.Fatalf("after the late packet %d", seq)
	}
	// re-anchored on the same stream (a keyframe after drops): packets from
	// before the anchor are refused
	r.SwitchSource(200, 5000, 10)
	first, _, _ := r.Rewrite(200, 5000)
	if seq, _, ok := r.Rewrite(199, 4000); ok {
		t.Fatalf("packet from before the re-anchor mapped to %d (first is %d)", seq, first)
	}
	if _, _, ok := r.Rewrite(104, 2000); ok {
		t.Fatal("packet of the previous anchor mapped")
	}
	// reordering inside the current segment is kept
	r.Rewrite(202, 5000)
	if seq, _, ok := r.Rewrite(201, 5000); !ok || seq != first+1 {
		t.Fatalf("reordered packet %d %v, want %d", seq, ok, first+1)
	}
}

// A long stream without inserts or switches keeps flowing past the 16-bit
// wrap of the distance to its segment's start.
func TestRewriterLongSegment(t *testing.T) {
	var r Rewriter
	r.Start(0, 0, 1000, 0)
	for i := 0; i < 200000; i++ {
		seq := uint16(i)
		out, _, ok := r.Rewrite(seq, uint32(i))
		if !ok || out != seq+1000 {
			t.Fatalf("packet %d -> %d %v", i, out, ok)
		}
		if i > 10 && i%7 == 0 { // a late duplicate a few packets back
			if out, _, ok := r.Rewrite(seq-5, 0); !ok || out != seq-5+1000 {
				t.Fatalf("late packet %d -> %d %v", seq-5, out, ok)
			}
		}
	}
}

func TestRewriterSkipClosesTheGap(t *testing.T) {
	var r Rewriter
	r.Start(100, 9000, 500, 1000)
	mustMap := func(in, want uint16) {
		t.Helper()
		out, _, ok := r.Rewrite(in, 9000)
		if !ok || out != want {
			t.Fatalf("Rewrite(%d) = %d, %v; want %d", in, out, ok, want)
		}
	}
	mustMap(100, 500)
	mustMap(101, 501)
	if !r.Skip(102) { // a FEC packet after the frame
		t.Fatal("Skip(102) refused")
	}
	mustMap(103, 502)
	if r.Skip(105) { // not right after the last mapped: 104 may still come
		t.Fatal("Skip(105) accepted across a gap")
	}
	mustMap(106, 505)
	mustMap(104, 503) // late, in the current segment
	mustMap(101, 501) // late, in the segment before the skip
	for out, want := range map[uint16]uint16{501: 101, 502: 103, 503: 104, 505: 106} {
		if in, ok := r.Reverse(out); !ok || in != want {
			t.Errorf("Reverse(%d) = %d, %v; want %d", out, in, ok, want)
		}
	}
	if r.Skip(200) || r.Skip(106) {
		t.Error("Skip of a number already mapped or far ahead accepted")
	}
}
