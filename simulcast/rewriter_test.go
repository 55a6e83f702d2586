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
		seq, ts := r.Rewrite(65000+i, 4000000000+uint32(i)*3000)
		if seq != 10+i || ts != 20+uint32(i)*3000 {
			t.Fatalf("packet %d -> %d/%d", i, seq, ts)
		}
		if in, ok := r.Reverse(seq); !ok || in != 65000+i {
			t.Fatalf("reverse %d -> %d", seq, in)
		}
	}
	// an old packet (retransmission) keeps its mapping and does not move last
	if seq, _ := r.Rewrite(65000+5, 0); seq != 15 {
		t.Fatalf("old packet -> %d", seq)
	}
}

func TestRewriterSwitchSourceIsContinuous(t *testing.T) {
	var r Rewriter
	r.Start(100, 1000, 100, 1000)
	lastSeq, lastTS := r.Rewrite(150, 5000)
	r.SwitchSource(9000, 777777, 3000)
	seq, ts := r.Rewrite(9000, 777777)
	if seq != lastSeq+1 || ts != lastTS+3000 {
		t.Fatalf("after switch %d/%d, last %d/%d", seq, ts, lastSeq, lastTS)
	}
	if seq, _ := r.Rewrite(9001, 777777); seq != lastSeq+2 {
		t.Fatalf("next %d", seq)
	}
	var fresh Rewriter
	fresh.SwitchSource(5, 6, 3000)
	if s, ts := fresh.Rewrite(5, 6); !fresh.Started() || s != 5 || ts != 6 {
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
	if seq, _ := r.Rewrite(102, 1100); seq != 504 {
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
