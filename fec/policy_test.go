package fec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestProtectionFor(t *testing.T) {
	for l := 0.0; l <= 1.0; l += 0.05 {
		if p := ProtectionFor(l, NACKOnlyRTT-time.Millisecond); !p.Off() {
			t.Fatalf("FEC at loss %.2f on a %v path: %+v", l, NACKOnlyRTT-time.Millisecond, p)
		}
	}
	for _, rtt := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond} {
		prev := 0.0
		for l := 0.0; l <= 1.0; l += 0.005 {
			p := ProtectionFor(l, rtt)
			if err := p.Validate(); err != nil {
				t.Fatalf("loss %.3f rtt %v: %v", l, rtt, err)
			}
			if l < MinLoss && !p.Off() {
				t.Fatalf("FEC at loss %.3f: %+v", l, p)
			}
			if l >= MinLoss && p.Off() {
				t.Fatalf("no FEC at loss %.3f", l)
			}
			if p.Rate() < prev-1e-9 {
				t.Fatalf("rate falls with loss at %.3f, rtt %v: %v < %v", l, rtt, p.Rate(), prev)
			}
			if p.Rate() > 0.5+1e-9 {
				t.Fatalf("rate %.2f above the cap", p.Rate())
			}
			prev = p.Rate()
		}
	}
	// more RTT, more protection
	for _, l := range []float64{0.02, 0.05, 0.1} {
		a := ProtectionFor(l, 20*time.Millisecond).Rate()
		b := ProtectionFor(l, 100*time.Millisecond).Rate()
		c := ProtectionFor(l, 300*time.Millisecond).Rate()
		if a > b || b > c {
			t.Fatalf("loss %.2f: rates %.3f %.3f %.3f not rising with RTT", l, a, b, c)
		}
	}
	// the examples of the documentation
	for _, c := range []struct {
		loss float64
		rtt  time.Duration
		want Protection
	}{
		{0.005, time.Second, Protection{}},
		{0.02, 100 * time.Millisecond, Protection{1, 14}},
		{0.05, 100 * time.Millisecond, Protection{4, 20}},
		{0.10, 100 * time.Millisecond, Protection{12, 24}},
		{0.40, 100 * time.Millisecond, Protection{12, 24}},
		{0.05, 20 * time.Millisecond, Protection{1, 13}},
		{0.10, 20 * time.Millisecond, Protection{4, 24}},
		{0.20, 20 * time.Millisecond, Protection{8, 24}},
		{math.NaN(), 0, Protection{}},
	} {
		if got := ProtectionFor(c.loss, c.rtt); got != c.want {
			t.Errorf("ProtectionFor(%v, %v) = %+v, want %+v", c.loss, c.rtt, got, c.want)
		}
	}
}

func TestOverhead(t *testing.T) {
	if o := (Protection{}).Overhead(); o <= 0 || o > 0.001 {
		t.Fatalf("off: %v (RED byte only)", o)
	}
	p := Protection{FEC: 3, Group: 10}
	o := p.Overhead()
	want := (3*(1200.0+19) + 10) / (10 * 1200)
	if math.Abs(o-want) > 1e-12 || o < p.Rate() {
		t.Fatalf("overhead %v, want %v", o, want)
	}
	if p.OverheadFor(300) <= o {
		t.Fatal("smaller packets should cost relatively more header")
	}
}

// Random (independent) loss on the wire, media and FEC alike, through the
// whole path: Encoder (frames of 1-8 packets, default MaxFrames), RED-style
// sequence numbering, Decoder. Residual loss is the share of media packets
// neither received nor recovered.
func TestSimulation(t *testing.T) {
	levels := []Protection{{}, {1, 10}, {3, 10}, {5, 10}, {12, 24}}
	nFrames := 6000
	if testing.Short() {
		nFrames = 1500
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n%-6s %-14s %9s %10s %10s %9s\n", "loss", "protection", "FEC/media", "residual", "expected*", "reduction")
	for _, loss := range []float64{0.10, 0.20, 0.40} {
		ls := append(append([]Protection(nil), levels...), ProtectionFor(loss, 100*time.Millisecond))
		for li, prot := range ls {
			res, rate := simulate(t, prot, loss, nFrames, uint64(loss*1000)+uint64(li))
			name := fmt.Sprintf("%d/%d", prot.FEC, prot.Group)
			if prot.Off() {
				name = "none"
			}
			if li == len(ls)-1 {
				name += " (policy)"
			}
			exp := loss
			if !prot.Off() {
				s := float64(prot.Group) / float64(prot.FEC)
				exp = loss * (1 - math.Pow(1-loss, s))
			}
			fmt.Fprintf(&tab, "%-6.2f %-14s %9.3f %9.2f%% %9.2f%% %8.1fx\n", loss, name, rate, 100*res, 100*exp, loss/math.Max(res, 1e-9))
			if prot.Off() {
				if math.Abs(res-loss) > 0.02 {
					t.Errorf("no FEC at %.2f: residual %.3f", loss, res)
				}
				continue
			}
			if res >= loss {
				t.Errorf("%s at %.2f loss: residual %.3f not below the loss", name, loss, res)
			}
			if loss == 0.10 && prot.Rate() >= 0.5 && res > 0.03 {
				t.Errorf("%s at 10%% loss: residual %.3f", name, res)
			}
		}
	}
	fmt.Fprintf(&tab, "* p*(1-(1-p)^s) for full groups of s = Group/FEC media packets per FEC packet\n")
	t.Log(tab.String())
}

// simulate returns the residual media loss and the FEC/media packet ratio.
func simulate(t *testing.T, prot Protection, loss float64, nFrames int, seed uint64) (residual, fecRate float64) {
	r := rand.New(rand.NewPCG(seed, 42))
	drop := rand.New(rand.NewPCG(seed, 43))
	enc, err := NewEncoder(EncoderConfig{Protection: prot})
	if err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder(DecoderConfig{})
	seq := uint16(r.Uint32())
	var media, fecN, got int
	pkt := make([]byte, 12+100)
	for f := range nFrames {
		n := 1 + r.IntN(8)
		for i := range n {
			pkt[0], pkt[1] = 0x80, 96
			if i == n-1 {
				pkt[1] |= 0x80
			}
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], uint32(f*3000))
			binary.BigEndian.PutUint32(pkt[8:], 1)
			seq++
			media++
			fecs, err := enc.Add(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if drop.Float64() >= loss {
				got++
				rec, _ := dec.AddMedia(pkt)
				got += len(rec)
			}
			for _, fp := range fecs {
				fecN++
				if drop.Float64() >= loss {
					rec, _ := dec.AddFEC(seq, 1, fp)
					got += len(rec)
				}
				seq++
			}
		}
	}
	return 1 - float64(got)/float64(media), float64(fecN) / float64(media)
}
