package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/simulcast"
)

// The capped subscriber's link in these tests: a token bucket with a
// 6 KB burst and a 24 KB drop-tail queue (640 ms at 300 kbit/s, 96 ms at
// 2 Mbit/s).
var cappedLink = vnetLink{burstBytes: 6_000, queueBytes: 24_000}

// Simulcast layers of about 200 kbit/s, 600 kbit/s and 1.6 Mbit/s.
var vnetLayers = [3]time.Duration{40 * time.Millisecond, 13 * time.Millisecond, 5 * time.Millisecond}

// vnetRoom is a room on a vnet: an unconstrained subscriber, a subscriber
// behind the shaped link and a simulcast publisher.
type vnetRoom struct {
	net          *vnetTopo
	srv          *server.Server
	free, capped *peer
	fv, cv       *mediatest.Sink
	trackID      string
	start        time.Time
}

func newVnetRoom(t *testing.T, ctx context.Context, rate int) *vnetRoom {
	t.Helper()
	v := newVnetTopo(t, rate, cappedLink)
	s := v.startServer()
	r := &vnetRoom{net: v, srv: s}
	r.free = newPeer(t, s, "room", "free", v.api(vnetFreeIP))
	r.capped = newPeer(t, s, "room", "capped", v.api(vnetCappedIP))
	pub := newPeer(t, s, "room", "pub", v.api(vnetPubIP))
	r.start = time.Now()
	layers, stops := pub.publishSimulcast(ctx, 1000, vnetLayers)
	for i, l := range layers { // constant rates, whatever the machine's load
		stops[i]()
		steadyPump(t, l, vnetLayers[i])
	}
	r.fv = r.free.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	r.cv = r.capped.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	r.trackID = r.cv.Track.ID()
	return r
}

// One subscriber on an unconstrained link receives the top layer while one
// behind a 300 kbit/s link settles on the lowest, and is told why.
func TestVnetCappedSubscriberGetsLowestLayer(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	r := newVnetRoom(t, ctx, 300_000)
	tl := r.net.sampleTimeline(t, r.srv, "capped", r.cv, 250*time.Millisecond)
	defer func() {
		if t.Failed() || testing.Verbose() {
			tl.log(t)
		}
	}()

	waitLayer(t, ctx, r.fv, 2, 100)
	r.free.wait(ctx, "layerChanged 2 best", func() bool { return r.free.layerEvent(r.trackID, 2, simulcast.ReasonBest) })
	waitLayer(t, ctx, r.cv, 0, 50)
	r.capped.wait(ctx, "layerChanged 0 bandwidth", func() bool {
		return r.capped.layerEvent(r.trackID, 0, simulcast.ReasonBandwidth)
	})
	settled := time.Since(r.start)
	// settled: the next 3 s of frames are all from the lowest layer
	r.waitStays(t, ctx, r.cv, 0, 75)
	t.Logf("300 kbit/s subscriber on the lowest layer %v after publishing; stayed there for 75 more frames",
		settled.Round(time.Millisecond))
	r.checkContinuity(t)
}

// stallShadow is how long the media's timing stays disturbed after the
// test process was not scheduled for a while (estimates and layer bitrates
// are measured over windows of that order).
const stallShadow = 3 * time.Second

// waitStays waits for the next n frames and fails if any of them is not
// from layer. A window spoilt by a stall of the test process (in it or
// within stallShadow before it) is measured again.
func (r *vnetRoom) waitStays(t *testing.T, ctx context.Context, sk *mediatest.Sink, layer, n int) {
	t.Helper()
	for {
		begin := time.Now()
		from := len(sk.Frames())
		c := sk.Count()
		if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= c+n }); err != nil {
			t.Fatalf("timed out waiting for %d frames on layer %d (%v)", n, layer, r.net.stalls)
		}
		bad := -1
		fs := sk.Frames()[from:]
		for i, f := range fs {
			if layerOf(f) != layer {
				bad = i
				break
			}
		}
		if bad < 0 {
			return
		}
		if st := r.net.stalls.longest(begin.Add(-stallShadow)); st > 0 {
			t.Logf("left layer %d for layer %d after a %v stall of the test process: measuring again",
				layer, layerOf(fs[bad]), st.Round(time.Millisecond))
			continue
		}
		t.Fatalf("left layer %d for layer %d %d frames after settling", layer, layerOf(fs[bad]), bad)
	}
}

// Lowering the capped subscriber's link to 300 kbit/s moves it down to the
// lowest layer; raising it again brings it back to the top layer.
func TestVnetCapChangesMoveLayer(t *testing.T) {
	ctx := deadline(t, 45*time.Second)
	r := newVnetRoom(t, ctx, vnetUnlimited)
	tl := r.net.sampleTimeline(t, r.srv, "capped", r.cv, 250*time.Millisecond)
	defer func() {
		if t.Failed() || testing.Verbose() {
			tl.log(t)
		}
	}()
	waitLayer(t, ctx, r.fv, 2, 100)
	waitLayer(t, ctx, r.cv, 2, 100)
	t.Logf("both subscribers on the top layer %v after publishing", time.Since(r.start).Round(time.Millisecond))

	r.net.setRate(300_000)
	lowered, seen := time.Now(), r.capped.eventCount()
	waitLayer(t, ctx, r.cv, 0, 25)
	down := time.Since(lowered)
	r.capped.wait(ctx, "layerChanged 0 bandwidth", func() bool {
		return r.capped.layerEventAfter(seen, r.trackID, 0, simulcast.ReasonBandwidth)
	})
	r.waitStays(t, ctx, r.cv, 0, 50)

	r.net.setRate(vnetUnlimited)
	raised, seen := time.Now(), r.capped.eventCount()
	waitLayer(t, ctx, r.cv, 2, 25)
	up := time.Since(raised)
	r.capped.wait(ctx, "layerChanged 2 best", func() bool {
		return r.capped.layerEventAfter(seen, r.trackID, 2, simulcast.ReasonBest)
	})
	r.waitStays(t, ctx, r.cv, 2, 100)
	t.Logf("lowest layer %v after lowering the cap to 300 kbit/s; top layer %v after lifting it",
		down.Round(time.Millisecond), up.Round(time.Millisecond))
	r.checkContinuity(t)
}

func (p *peer) eventCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// layerEventAfter reports whether a layerChanged event came after the
// first n events (called with p locked).
func (p *peer) layerEventAfter(n int, trackID string, layer int, reason string) bool {
	for _, e := range p.events[n:] {
		if e.Type == signaling.TypeLayerChanged && e.TrackID == trackID && e.Layer != nil && *e.Layer == layer &&
			e.Reason == reason {
			return true
		}
	}
	return false
}

// checkContinuity checks the capped subscriber's stream on the wire and as
// received.
func (r *vnetRoom) checkContinuity(t *testing.T) {
	t.Helper()
	ssrc, rtxSSRC := uint32(r.cv.Track.SSRC()), uint32(r.cv.Track.RtxSSRC())
	seqs := r.cv.Seqs()
	tss, frames := r.cv.Timestamps(), r.cv.Frames()
	// everything received had been sent before: the wire is read after
	sent := r.net.wire.packets(ssrc)
	rtx, pad := checkWireContinuity(t, sent)
	lost, recovered := checkReceivedContinuity(t, seqs, tss, frames, sent)
	if rtxSSRC != 0 {
		rtx += len(r.net.wire.packets(rtxSSRC))
	}
	padding := map[uint16]bool{}
	for _, p := range sent {
		padding[p.seq] = p.padding
	}
	recvPad := 0
	for _, s := range seqs {
		if padding[s] {
			recvPad++
		}
	}
	t.Logf("continuous: %d packets sent (%d padding), %d retransmissions; %d received (%d padding); %d lost on the link, %d of them recovered",
		len(sent), pad, rtx, len(seqs), recvPad, lost, recovered)
}

// The stream the capped subscriber receives stays one stream through
// switches down (top to middle to lowest) and back up (lowest to top):
// continuous sequence numbers, probe padding included, and increasing
// timestamps.
func TestVnetStreamContinuousAcrossSwitches(t *testing.T) {
	ctx := deadline(t, 45*time.Second)
	r := newVnetRoom(t, ctx, vnetUnlimited)
	tl := r.net.sampleTimeline(t, r.srv, "capped", r.cv, 250*time.Millisecond)
	defer func() {
		if t.Failed() || testing.Verbose() {
			tl.log(t)
		}
	}()
	waitLayer(t, ctx, r.cv, 2, 50)
	steps := []struct {
		rate, layer int
	}{{1_000_000, 1}, {300_000, 0}, {vnetUnlimited, 2}}
	for _, st := range steps {
		r.net.setRate(st.rate)
		at := time.Now()
		waitLayer(t, ctx, r.cv, st.layer, 25)
		t.Logf("cap %d kbit/s: layer %d after %v", st.rate/1000, st.layer, time.Since(at).Round(time.Millisecond))
	}
	r.checkContinuity(t)
}
