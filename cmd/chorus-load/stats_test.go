package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	if h.percentile(50) != 0 {
		t.Fatal("an empty histogram has no percentile")
	}
	for i := 1; i <= 50; i++ { // exact below 64 µs
		h.record(time.Duration(i) * time.Microsecond)
	}
	for p, want := range map[float64]time.Duration{50: 25 * time.Microsecond, 90: 45 * time.Microsecond,
		100: 50 * time.Microsecond, 1: time.Microsecond} {
		if got := h.percentile(p); got != want {
			t.Errorf("p%g = %v, want %v", p, got, want)
		}
	}

	// against sorted samples: within the buckets' 1/64 resolution
	var g histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
		all = append(all, d)
		g.record(d)
	}
	slices.Sort(all)
	for _, p := range []float64{50, 90, 99, 99.9} {
		exact := all[int(float64(len(all))*p/100+0.999999)-1]
		got := g.percentile(p)
		if diff := float64(got-exact) / float64(exact); diff > 0.02 || diff < -0.02 {
			t.Errorf("p%g = %v, exact %v", p, got, exact)
		}
	}
	if g.percentile(100) != all[len(all)-1] {
		t.Errorf("max %v, want %v", g.percentile(100), all[len(all)-1])
	}
	if g.count() != uint64(len(all)) {
		t.Errorf("count %d", g.count())
	}
}

func TestBuckets(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < numBuckets-1; i++ {
		lo, hi := bucketRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, after %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: [%d, %d] maps to %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	if bucketOf(1<<62) != numBuckets-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}

func TestStamp(t *testing.T) {
	s := formatStamp("ab12", 123456789, 7, 3)
	if ns, ok := parseStamp(s, "ab12"); !ok || ns != 123456789 {
		t.Fatalf("parse %q = %d %v", s, ns, ok)
	}
	for _, bad := range []string{s[:len("chorus-load ab12 t=")], "hello", "chorus-load ab13 t=5 n=1.1",
		"chorus-load ab12 t=-5 n=1.1", "chorus-load ab12 t=x"} {
		if _, ok := parseStamp(bad, "ab12"); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, ok := parseStamp(s, "ab1"); ok {
		t.Error("a stamp of another run was accepted")
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"100/s": 100, "100": 100, "600/m": 10, "0.5/s": 0.5} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0/s", "-1", "10/h", "x/s", "NaN"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}

func TestProcParsing(t *testing.T) {
	stat := []byte("4242 (chorus (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 1000 123456 789 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
	ticks, err := parseProcStat(stat)
	if err != nil || ticks != 325 {
		t.Fatalf("parseProcStat = %d, %v", ticks, err)
	}
	if _, err := parseProcStat([]byte("4242 (x) S 1")); err == nil {
		t.Fatal("a short stat line was accepted")
	}
	status := []byte("Name:\tchorus\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t9\n")
	if rss, err := parseVmRSS(status); err != nil || rss != 2048*1024 {
		t.Fatalf("parseVmRSS = %d, %v", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
	if d, err := procCPU("self"); err != nil || d < 0 {
		t.Fatalf("procCPU(self) = %v, %v", d, err)
	}
}

func TestVP8Packets(t *testing.T) {
	pkts := vp8Packets(2500, true)
	if len(pkts) != 3 {
		t.Fatalf("%d packets", len(pkts))
	}
	if pkts[0][0] != 0x10 || pkts[0][1]&0x01 != 0 || pkts[1][0] != 0 || pkts[2][0] != 0 {
		t.Fatal("descriptor or keyframe bit wrong")
	}
	total := 0
	for _, p := range pkts {
		total += len(p) - 1
		if len(p) > maxVideoPayload+1 {
			t.Fatalf("packet of %d bytes", len(p))
		}
	}
	if total != 2500 {
		t.Fatalf("frame of %d bytes", total)
	}
	if d := vp8Packets(500, false); len(d) != 1 || d[0][1]&0x01 != 1 {
		t.Fatal("an inter frame must have P set")
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"-clients", "10", "-join-rate", "600/m", "-media", "-publishers", "2"}, nil)
	if err != nil || o.cfg.joinRate != 10 || o.cfg.publishers != 2 || !o.cfg.media {
		t.Fatalf("%+v %v", o.cfg, err)
	}
	for _, bad := range [][]string{{"-publishers", "1"}, {"-clients", "0"}, {"-join-rate", "fast"}, {"-chat-senders", "2000"}} {
		if _, err := parseArgs(bad, discard{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
