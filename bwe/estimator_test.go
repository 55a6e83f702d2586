package bwe

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// link simulates a bottleneck: a FIFO queue drained at capacity bits per
// second after a fixed propagation delay, dropping packets that would wait
// longer than maxQueue, plus optional random loss.
type link struct {
	capacity  float64
	prop      time.Duration
	maxQueue  time.Duration
	loss      float64
	rng       *rand.Rand
	busyUntil time.Time
}

// send returns the arrival time of a packet sent at t, or false if lost.
func (l *link) send(t time.Time, size int) (time.Time, bool) {
	if l.rng.Float64() < l.loss {
		return time.Time{}, false
	}
	start := t
	if l.busyUntil.After(start) {
		start = l.busyUntil
	}
	if start.Sub(t) > l.maxQueue {
		return time.Time{}, false
	}
	l.busyUntil = start.Add(time.Duration(float64(size*8) / l.capacity * float64(time.Second)))
	return l.busyUntil.Add(l.prop), true
}

// feedback builds a TWCC report for packets base..base+len(arrivals)-1;
// a zero arrival means lost. ref is the receiver's clock origin.
func feedback(base uint16, arrivals []time.Time, ref time.Time) *rtcp.TransportLayerCC {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: uint16(len(arrivals))}
	var prev time.Time
	var symbols []uint16
	for _, a := range arrivals {
		if a.IsZero() {
			symbols = append(symbols, rtcp.TypeTCCPacketNotReceived)
			continue
		}
		symbols = append(symbols, rtcp.TypeTCCPacketReceivedLargeDelta)
		if prev.IsZero() {
			refTime := a.Sub(ref) / (64 * time.Millisecond)
			fb.ReferenceTime = uint32(refTime)
			prev = ref.Add(refTime * 64 * time.Millisecond)
		}
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{
			Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: a.Sub(prev).Microseconds()})
		prev = a
	}
	fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: symbols})
	return fb
}

// layers a simulcast sender can choose from (bits per second).
var testLayers = []float64{150_000, 500_000, 1_700_000}

func pickLayer(estimate int) float64 {
	rate := testLayers[0]
	for _, r := range testLayers {
		if r <= float64(estimate) {
			rate = r
		}
	}
	return rate
}

type phase struct {
	until    time.Duration
	capacity float64
	loss     float64
}

type sample struct {
	at       time.Duration
	estimate int
	rate     float64
	dbg      string
}

// simulate runs an app-limited simulcast sender (it sends the best layer the
// estimate allows) over a link whose capacity changes by phase, with TWCC
// feedback every 50 ms. It returns the estimate and sending rate over time.
func simulate(t *testing.T, phases []phase) []sample {
	t.Helper()
	return simulateWith(t, 300*time.Millisecond, phases)
}

// simulateWith is simulate with a bottleneck queue of maxQueue.
func simulateWith(t *testing.T, maxQueue time.Duration, phases []phase) []sample {
	t.Helper()
	return simulateMedia(t, maxQueue, 1, phases)
}

// simulateMedia is simulateWith where the media runs at share of the
// layers' nominal rates, and a probe pads from what was sent when it
// started (as the SFU does: SentRate) up to 105 % of its rate.
func simulateMedia(t *testing.T, maxQueue time.Duration, share float64, phases []phase) []sample {
	t.Helper()
	var padFrom float64 // the sent rate when the running probe started
	e := NewEstimator(Config{Initial: 300_000})
	start := time.Unix(1_700_000_000, 0)
	recvClock := time.Unix(0, 0).Add(5 * time.Hour) // the receiver's unrelated clock
	l := &link{prop: 20 * time.Millisecond, maxQueue: maxQueue, rng: rand.New(rand.NewPCG(1, 2))}
	const size = 1200
	var seq uint16
	var pending []time.Time // arrivals (sender clock) of packets since the last feedback
	pendingBase := seq
	var out []sample
	next := start
	lastFB := start
	end := start.Add(phases[len(phases)-1].until)
	for now := start; now.Before(end); now = now.Add(time.Millisecond) {
		for _, p := range phases {
			if now.Sub(start) < p.until {
				l.capacity, l.loss = p.capacity, p.loss
				break
			}
		}
		layerRate := pickLayer(e.Estimate())
		rate := layerRate * share
		// probe for the next layer up when the estimate does not reach it
		for _, r := range testLayers {
			if r > layerRate {
				if e.CanProbe(int(r), now) {
					padFrom = float64(e.SentRate(now))
					e.StartProbe(int(r), now)
				}
				break
			}
		}
		if pr := float64(e.ProbeRate(now)); pr > 0 {
			if share == 1 {
				rate = max(rate, pr) // media plus padding, exactly
			} else {
				rate += max(0, 1.05*pr-padFrom)
			}
		}
		for !next.After(now) {
			e.OnPacketSent(seq, size, next)
			arr, ok := l.send(next, size)
			if ok {
				pending = append(pending, arr)
			} else {
				pending = append(pending, time.Time{})
			}
			seq++
			next = next.Add(time.Duration(float64(size*8) / rate * float64(time.Second)))
		}
		if now.Sub(lastFB) >= 50*time.Millisecond && len(pending) > 0 {
			// report what has arrived by now (the rest waits for the next report)
			n := 0
			for n < len(pending) && (pending[n].IsZero() || !pending[n].After(now)) {
				n++
			}
			if n > 0 {
				arrivals := make([]time.Time, n)
				for i, a := range pending[:n] {
					if !a.IsZero() {
						arrivals[i] = recvClock.Add(a.Sub(start))
					}
				}
				e.OnFeedback(feedback(pendingBase, arrivals, recvClock), now.Add(20*time.Millisecond))
				pending = pending[n:]
				pendingBase += uint16(n)
			}
			lastFB = now
			st := e.Stats()
			out = append(out, sample{at: now.Sub(start), estimate: e.Estimate(), rate: layerRate,
				dbg: fmt.Sprintf("probe %d state %v q %v loss %.2f rl %.2f base %.2f", e.ProbeRate(now), e.state, st.QueueDelay, st.Loss, e.reportLoss, e.lossBase)})
		}
	}
	return out
}

func firstAt(s []sample, from time.Duration, cond func(sample) bool) (time.Duration, bool) {
	for _, x := range s {
		if x.at >= from && cond(x) {
			return x.at - from, true
		}
	}
	return 0, false
}

// The adaptation scenario of the simulcast issue: capped at 2 Mbit/s, lowered
// to 600 kbit/s, then uncapped.
func TestEstimatorFollowsCapacity(t *testing.T) {
	s := simulate(t, []phase{
		{until: 15 * time.Second, capacity: 2_000_000},
		{until: 30 * time.Second, capacity: 600_000},
		{until: 45 * time.Second, capacity: 10_000_000},
	})
	up, ok := firstAt(s, 0, func(x sample) bool { return x.rate == testLayers[2] })
	if !ok {
		t.Fatal("never reached the top layer on a 2 Mbit/s link")
	}
	down, ok := firstAt(s, 15*time.Second, func(x sample) bool { return x.rate < 600_000 })
	if !ok || down > time.Second {
		t.Fatalf("downgrade after the drop to 600 kbit/s took %v (ok=%v), want <= 1 s", down, ok)
	}
	back, ok := firstAt(s, 30*time.Second, func(x sample) bool { return x.rate == testLayers[2] })
	if !ok || back > 5*time.Second {
		t.Fatalf("return to the top layer took %v (ok=%v), want <= 5 s", back, ok)
	}
	// steady 600 kbit/s: the middle layer, without oscillating
	switches := 0
	for i := 1; i < len(s); i++ {
		if s[i].at > 20*time.Second && s[i].at < 30*time.Second && s[i].rate != s[i-1].rate {
			switches++
		}
	}
	if switches > 0 {
		t.Fatalf("%d layer changes in 10 s on a steady 600 kbit/s link", switches)
	}
	t.Logf("top layer after %v; down %v after the drop; top again %v after uncapping; %d changes on the steady link",
		up, down, back, switches)
}

// A 300 kbit/s link carries the lowest layer, steadily.
func TestEstimatorSettlesOnASlowLink(t *testing.T) {
	s := simulate(t, []phase{{until: 30 * time.Second, capacity: 300_000}})
	for _, x := range s {
		if x.at > 5*time.Second && x.rate != testLayers[0] {
			t.Fatalf("at %v sending %v on a 300 kbit/s link", x.at, x.rate)
		}
	}
	if est := s[len(s)-1].estimate; est < 150_000 || est > 450_000 {
		t.Fatalf("estimate %d on a 300 kbit/s link", est)
	}
}

// Random loss that stays when the sender slows down is the path's, not
// congestion: within ten seconds the estimator tolerates it and the top
// layer returns, and stays.
func TestEstimatorLearnsRandomLoss(t *testing.T) {
	s := simulate(t, []phase{
		{until: 5 * time.Second, capacity: 10_000_000},
		{until: 25 * time.Second, capacity: 10_000_000, loss: 0.4},
	})
	for _, x := range s {
		if x.at > 15*time.Second && x.rate != testLayers[2] {
			t.Fatalf("at %v sending %v under 40%% random loss on a 10 Mbit/s link (estimate %d)", x.at, x.rate, x.estimate)
		}
	}
}

// A bottleneck that drops instead of queuing (a policer): its loss goes
// away at the lower rate, so it is congestion, and the estimator stays
// below it instead of learning the loss as the path's.
func TestEstimatorPolicedLink(t *testing.T) {
	s := simulateWith(t, 5*time.Millisecond, []phase{
		{until: 10 * time.Second, capacity: 2_000_000},
		{until: 30 * time.Second, capacity: 600_000},
	})
	down, ok := firstAt(s, 10*time.Second, func(x sample) bool { return x.rate < 600_000 })
	if !ok || down > time.Second {
		t.Fatalf("downgrade after the drop to 600 kbit/s took %v (ok=%v)", down, ok)
	}
	top := 0
	for _, x := range s {
		if x.at > 15*time.Second && x.rate == testLayers[2] {
			top++
		}
	}
	if top > 0 {
		t.Fatalf("the top layer was sent %d times over a 600 kbit/s policer", top)
	}
}

func TestEstimatorIgnoresUnknownAndEmptyFeedback(t *testing.T) {
	e := NewEstimator(Config{})
	e.OnFeedback(&rtcp.TransportLayerCC{}, time.Unix(1, 0))
	e.OnFeedback(feedback(500, []time.Time{time.Unix(2, 0), {}}, time.Unix(0, 0)), time.Unix(3, 0))
	if e.Estimate() != 1_000_000 || e.Stats().Loss != 0 {
		t.Fatalf("feedback about packets never sent changed the estimate: %+v", e.Stats())
	}
	// truncated deltas do not panic
	e.OnPacketSent(1, 100, time.Unix(1, 0))
	e.OnPacketSent(2, 100, time.Unix(1, 0))
	fb := feedback(1, []time.Time{time.Unix(5, 0), time.Unix(5, 0)}, time.Unix(0, 0))
	fb.RecvDeltas = fb.RecvDeltas[:1]
	e.OnFeedback(fb, time.Unix(6, 0))
}

func FuzzFeedback(f *testing.F) {
	fb := feedback(10, []time.Time{time.Unix(1, 0), {}, time.Unix(1, 1000)}, time.Unix(0, 0))
	b, _ := fb.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts, err := rtcp.Unmarshal(data)
		if err != nil {
			return
		}
		e := NewEstimator(Config{})
		for i := uint16(0); i < 40; i++ {
			e.OnPacketSent(i, 1000, time.Unix(0, int64(i)*1e6))
		}
		for _, p := range pkts {
			if cc, ok := p.(*rtcp.TransportLayerCC); ok {
				e.OnFeedback(cc, time.Unix(2, 0))
			}
		}
		if est := e.Estimate(); est < 100_000 || est > 20_000_000 {
			t.Fatalf("estimate %d outside its bounds", est)
		}
	})
}

// When feedback stops after it has been flowing, the estimate halves every
// second instead of being kept (or forgotten, which would lift the limit).
func TestEstimatorFeedbackTimeout(t *testing.T) {
	e := NewEstimator(Config{Initial: 2_000_000})
	t0 := time.Unix(100, 0)
	e.CheckFeedback(t0.Add(5 * time.Second))
	if e.Estimate() != 2_000_000 || e.HasFeedback() {
		t.Fatal("no feedback ever: nothing to time out")
	}
	e.OnPacketSent(1, 1000, t0)
	e.OnPacketSent(2, 1000, t0.Add(time.Millisecond))
	e.OnFeedback(feedback(1, []time.Time{time.Unix(0, 1e6), time.Unix(0, 2e6)}, time.Unix(0, 0)), t0.Add(10*time.Millisecond))
	before := e.Estimate()
	e.CheckFeedback(t0.Add(3 * time.Second))
	if e.Estimate() != before {
		t.Fatal("decreased although nothing was sent since the feedback")
	}
	e.OnPacketSent(3, 1000, t0.Add(20*time.Millisecond)) // sent, never acknowledged
	e.CheckFeedback(t0.Add(500 * time.Millisecond))
	if e.Estimate() != before {
		t.Fatal("decreased before the timeout")
	}
	for i := 1; i <= 3; i++ {
		e.CheckFeedback(t0.Add(time.Duration(i)*time.Second + 20*time.Millisecond))
	}
	if got := e.Estimate(); got != before/8 || !e.HasFeedback() {
		t.Fatalf("after 3 s without feedback: %d (was %d), has feedback %v", got, before, e.HasFeedback())
	}
	// on a path losing 40 % (of the reports too) a second's gap is a run of
	// lost reports: the timeout stretches to 1 s / 0.6
	lossy := NewEstimator(Config{Initial: 2_000_000})
	lossy.OnPacketSent(1, 1000, t0)
	lossy.OnPacketSent(2, 1000, t0.Add(time.Millisecond))
	lossy.OnFeedback(feedback(1, []time.Time{time.Unix(0, 1e6), time.Unix(0, 2e6)}, time.Unix(0, 0)), t0.Add(10*time.Millisecond))
	lossy.loss = 0.4
	lossy.OnPacketSent(3, 1000, t0.Add(20*time.Millisecond))
	was := lossy.Estimate()
	if lossy.CheckFeedback(t0.Add(1500 * time.Millisecond)); lossy.Estimate() != was {
		t.Fatal("a 1.5 s gap on a 40 % lossy path halved the estimate")
	}
	if lossy.CheckFeedback(t0.Add(1700 * time.Millisecond)); lossy.Estimate() != was/2 {
		t.Fatal("a 1.7 s gap on a 40 % lossy path did not halve the estimate")
	}
}

// A receiver whose CPU stalls stamps the packets of the stall late, all at
// once when it runs again: that is not a queue on the path, and the estimate
// must not fall for it. A queue that persists still lowers it.
func TestEstimatorIgnoresReceiverStall(t *testing.T) {
	run := func(stall, queued time.Duration) (before, after int) {
		e := NewEstimator(Config{Initial: 1_000_000})
		t0 := time.Unix(1_700_000_000, 0)
		ref := time.Unix(0, 0)
		const prop = 20 * time.Millisecond
		var seq uint16
		var base uint16
		var arrivals []time.Time
		stallAt := 3 * time.Second
		for ms := 0; ms < 5000; ms++ {
			now := t0.Add(time.Duration(ms) * time.Millisecond)
			if ms%5 == 0 { // 1200 bytes every 5 ms: 1.9 Mbit/s
				e.OnPacketSent(seq, 1200, now)
				seq++
				at := time.Duration(ms)*time.Millisecond + prop
				rel := time.Duration(ms) * time.Millisecond
				switch {
				case rel >= stallAt && rel < stallAt+stall:
					at = stallAt + stall + prop // stamped when the receiver runs again
				case rel >= stallAt && rel < stallAt+queued:
					at += (rel - stallAt) / 4 // a queue growing by 250 µs per ms
				}
				arrivals = append(arrivals, ref.Add(at))
			}
			if ms%50 == 49 {
				e.OnFeedback(feedback(base, arrivals, ref), now.Add(prop))
				base, arrivals = seq, nil
			}
			if ms == int(stallAt/time.Millisecond)-1 {
				before = e.Estimate()
			}
		}
		return before, e.Estimate()
	}
	if b, a := run(90*time.Millisecond, 0); a < b {
		t.Errorf("a 90 ms receiver stall lowered the estimate from %d to %d", b, a)
	}
	if b, a := run(0, time.Second); a >= b {
		t.Errorf("a queue growing for a second left the estimate at %d (was %d)", a, b)
	}
}

// Media lighter than its layers' nominal rates (as a browser's often is):
// probes pad from the rate actually sent, and are judged by what they sent,
// so the estimate climbs to the top layer within seconds once the link
// allows it.
func TestEstimatorProbesWithLightMedia(t *testing.T) {
	s := simulateMedia(t, 300*time.Millisecond, 0.85, []phase{
		{until: 10 * time.Second, capacity: 360_000},
		{until: 25 * time.Second, capacity: 20_000_000},
	})
	up, ok := firstAt(s, 10*time.Second, func(x sample) bool { return x.rate == testLayers[2] })
	if !ok || up > 5*time.Second {
		for _, x := range s {
			if x.at >= 9*time.Second && x.at < 20*time.Second {
				t.Logf("%v est %d rate %.0f %s", x.at, x.estimate, x.rate, x.dbg)
			}
		}
		t.Fatalf("top layer %v after the link opened (found %v), want within 5 s", up, ok)
	}
	t.Logf("top layer %v after the link opened", up)
}

// When the link collapses (the estimate falls by more than a third), no
// probe starts for probeAfterCollapse: the bottleneck has just drained and
// carries the lower layer's keyframe. A decrease that is not a collapse
// does not hold probes back.
func TestEstimatorNoProbeAfterCollapse(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		name          string
		from, receive float64
		wantCollapse  bool
	}{{"collapse", 2_000_000, 300_000, true}, {"mild", 1_000_000, 900_000, false}} {
		e := NewEstimator(Config{Initial: int(c.from)})
		e.receiveRate = c.receive
		e.queueDelay, e.prevDelay = 2*overuseDelay, overuseDelay
		e.overuseSince, e.overuseReports = t0.Add(-time.Second), 5
		e.update(t0)
		if e.state != StateDecrease || (e.lastCollapse == t0) != c.wantCollapse {
			t.Fatalf("%s: state %v, estimate %d, collapse recorded %v", c.name, e.state, e.Estimate(), e.lastCollapse == t0)
		}
		// the queue has drained, the decrease is over
		e.queueDelay, e.state = 0, StateHold
		rate := e.Estimate() * 2
		early := e.CanProbe(rate, t0.Add(probeAfterCollapse/2))
		late := e.CanProbe(rate, t0.Add(probeAfterCollapse+time.Millisecond))
		if early == c.wantCollapse || !late {
			t.Fatalf("%s: may probe %v after %v, %v after %v", c.name, early, probeAfterCollapse/2, late, probeAfterCollapse)
		}
	}
}

// After a link falls to 300 kbit/s the estimator goes on probing within
// seconds: the delay baseline of the fast period (shorter serialization)
// must not read as a standing queue that holds it for baseWindow.
func TestEstimatorProbesAgainAfterCollapse(t *testing.T) {
	s := simulate(t, []phase{
		{until: 10 * time.Second, capacity: 2_000_000},
		{until: 20 * time.Second, capacity: 300_000},
	})
	again, ok := firstAt(s, 10*time.Second+probeAfterCollapse, func(x sample) bool {
		var probe int
		_, err := fmt.Sscanf(x.dbg, "probe %d", &probe)
		return err == nil && probe > 0
	})
	if !ok || again > 3*time.Second {
		t.Fatalf("first probe %v after the collapse's quiet time (found %v), want within 3 s", again, ok)
	}
	t.Logf("probing again %v after the collapse's quiet time", again)
}
