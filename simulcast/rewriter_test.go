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
