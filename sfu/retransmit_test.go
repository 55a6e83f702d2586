package sfu

import (
	"github.com/pion/rtcp"
	"math"
	"testing"
	"time"
)

func TestRTXHoldoffFollowsRTT(t *testing.T) {
	for _, c := range []struct {
		rtt, want time.Duration
	}{
		{0, rtxHoldoffUnknown},
		{time.Millisecond, rtxHoldoffMin},
		{20 * time.Millisecond, 10 * time.Millisecond},
		{50 * time.Millisecond, 25 * time.Millisecond},
		{300 * time.Millisecond, rtxHoldoffMax},
	} {
		var d DownTrack
		d.rtt.Store(int64(c.rtt))
		if got := d.rtxHoldoff(); got != c.want {
			t.Errorf("rtt %v: holdoff %v, want %v", c.rtt, got, c.want)
		}
	}
}

func TestRTXCopies(t *testing.T) {
	for _, c := range []struct {
		loss float64
		want int
	}{{0, 1}, {0.01, 1}, {0.06, 2}, {0.2, 3}, {0.3, 4}, {0.4, 5}, {0.6, 6}, {0.8, maxRTXCopies}, {math.NaN(), 1}} {
		if got := rtxCopies(c.loss); got != c.want {
			t.Errorf("loss %v: %d copies, want %d", c.loss, got, c.want)
		}
	}
}

// On a path with 40 % loss a NACKed packet goes out rtxCopies times, the
// copies rtxCopyGap apart; on a clean path once.
func TestNACKCopiesOnLossyPath(t *testing.T) {
	for _, loss := range []float64{0, 0.4} {
		up := newVideoUp(nil)
		w := &fakeWriter{}
		d := bindDown(t, up, w, 0)
		d.loss.Store(math.Float64bits(loss))
		pz := &packetizer{seq: 100, perFrame: 4}
		for f := 0; f < 5; f++ {
			for _, b := range pz.frameAt(f == 0) {
				up.handlePacket(b)
			}
		}
		waitCount(t, w, 20)
		lost := w.written()[6].SequenceNumber
		start := time.Now()
		d.HandleRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{lost})}})
		want := rtxCopies(loss)
		waitCount(t, w, int64(20+want))
		took := time.Since(start)
		for _, h := range w.written()[20:] {
			if h.SequenceNumber != lost {
				t.Fatalf("loss %v: resent %d, want %d", loss, h.SequenceNumber, lost)
			}
		}
		if min := time.Duration(want-1) * rtxCopyGap; took < min {
			t.Fatalf("loss %v: %d copies within %v, want them %v apart", loss, want, took, rtxCopyGap)
		}
		d.Close()
		if n := len(w.written()); n != 20+want {
			t.Fatalf("loss %v: %d packets resent, want %d", loss, n-20, want)
		}
	}
}

// The budget serves first resends before repeats, and repeats before
// unasked copies: each kind stops at its own floor of the bucket.
func TestRetransmitBudgetKinds(t *testing.T) {
	t0 := time.Unix(100, 0)
	count := func(kind ResendKind) int {
		var b RetransmitBudget
		b.SetEstimate(1_000_000, 0) // 250 kbit/s: a 50 kbit bucket (200 ms)
		n := 0
		for b.Take(100, t0, kind) { // 800 bits each, no time passing
			n++
		}
		return n
	}
	first, repeat, cp := count(FirstResend), count(RepeatResend), count(CopyResend)
	if first != 62 || repeat != 31 || cp != 15 {
		t.Fatalf("packets of 800 bits from a full 50 kbit bucket: first %d, repeat %d, copy %d; want 62, 31, 15", first, repeat, cp)
	}
	var b RetransmitBudget
	b.SetEstimate(1_000_000, 0)
	for b.Take(100, t0, CopyResend) {
	}
	if !b.Take(100, t0, RepeatResend) || !b.Take(100, t0, FirstResend) {
		t.Fatal("copies used the room kept for asked resends")
	}
	// refills with time
	if !b.Take(100, t0.Add(50*time.Millisecond), CopyResend) {
		t.Fatal("no copy after 50 ms of refill")
	}
}

// On a path whose loss is inherent the budget grows with the loss, beyond
// the estimate if need be (the estimate of an app-limited sender is not
// the capacity); without inherent loss it is a quarter of the estimate.
func TestRetransmitBudgetInherentLoss(t *testing.T) {
	for _, c := range []struct {
		loss float64
		want float64
	}{{0, 250_000}, {0.1, 550_000}, {0.4, 1_450_000}, {0.8, 2_000_000}} {
		var b RetransmitBudget
		b.SetEstimate(1_000_000, c.loss)
		if math.Abs(b.rate-c.want) > 1 {
			t.Errorf("inherent loss %v: %v bit/s, want %v", c.loss, b.rate, c.want)
		}
	}
}
