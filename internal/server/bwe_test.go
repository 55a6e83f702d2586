package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// policer is a token-bucket bottleneck on a receiver's incoming RTP: packets
// beyond the rate are dropped before the receiver's TWCC and NACK logic see
// them, as a policed link would.
type policer struct {
	interceptor.NoOp
	rate   atomic.Int64 // bits per second; 0: unlimited
	mu     sync.Mutex
	tokens float64 // bits
	last   time.Time
}

func (p *policer) NewInterceptor(string) (interceptor.Interceptor, error) { return p, nil }

func (p *policer) admit(bits int) bool {
	rate := float64(p.rate.Load())
	if rate == 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.last.IsZero() {
		p.tokens += rate * now.Sub(p.last).Seconds()
	}
	p.last = now
	if burst := rate * 0.1; p.tokens > burst { // 100 ms of burst
		p.tokens = burst
	}
	if p.tokens < float64(bits) {
		return false
	}
	p.tokens -= float64(bits)
	return true
}

func (p *policer) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || p.admit(n*8) {
				return n, attr, err
			}
		}
	})
}

// A subscriber behind a 400 kbit/s bottleneck receives the lowest layer
// while an unconstrained one receives the top layer; when the bottleneck is
// lifted it returns to the top layer.
func TestBandwidthDrivesLayers(t *testing.T) {
	s := startServer(t) // bandwidth allocation is on by default
	ctx := deadline(t, 90*time.Second)
	pol := &policer{}
	pol.rate.Store(400_000)
	api, err := client.NewAPI(func(ir *interceptor.Registry, _ *webrtc.SettingEngine) { ir.Add(pol) })
	if err != nil {
		t.Fatal(err)
	}
	free := newPeer(t, s, "room", "free", nil)
	capped := newPeer(t, s, "room", "capped", api)
	pub := newPeer(t, s, "room", "pub", nil)

	// about 200 kbit/s, 600 kbit/s and 1.6 Mbit/s
	pub.publishSimulcast(ctx, 1000, [3]time.Duration{40 * time.Millisecond, 13 * time.Millisecond, 5 * time.Millisecond})

	fv := free.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	cv := capped.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	start := time.Now()
	waitLayer(t, ctx, fv, 2, 100)
	waitLayer(t, ctx, cv, 0, 50)
	t.Logf("capped at 400 kbit/s: lowest layer after %v; unconstrained: top layer", time.Since(start).Round(time.Millisecond))

	pol.rate.Store(0) // lift the cap
	lifted := time.Now()
	waitLayer(t, ctx, cv, 2, 50)
	t.Logf("top layer %v after lifting the cap", time.Since(lifted).Round(time.Millisecond))
}

// BenchmarkAdaptationTimeline runs the simulcast issue's scenario once per
// iteration: three layers published; a subscriber link capped at 2 Mbit/s,
// lowered to 600 kbit/s, then uncapped. It reports the time to downgrade,
// the time back to the top layer, the longest gap between received frames
// and the keyframe requests sent upstream, and logs the estimate over time.
//
//	go test ./internal/server -run '^$' -bench AdaptationTimeline -benchtime 1x -v
func BenchmarkAdaptationTimeline(b *testing.B) {
	for i := 0; i < b.N; i++ {
		adaptationTimeline(b)
	}
}

func adaptationTimeline(b *testing.B) {
	s := startServer(b)
	ctx := deadline(b, 3*time.Minute)
	pol := &policer{}
	pol.rate.Store(2_000_000)
	api, err := client.NewAPI(func(ir *interceptor.Registry, _ *webrtc.SettingEngine) { ir.Add(pol) })
	if err != nil {
		b.Fatal(err)
	}
	sub := newPeer(b, s, "room", "sub", api)
	pub := newPeer(b, s, "room", "pub", nil)
	layers, _ := pub.publishSimulcast(ctx, 1000, [3]time.Duration{40 * time.Millisecond, 13 * time.Millisecond, 5 * time.Millisecond})
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	r, _ := s.SFU().Rooms().Get("room")
	sp, _ := r.FindParticipant("sub")

	stop := make(chan struct{})
	var timeline []string
	var tlMu sync.Mutex
	start := time.Now()
	go func() { // the estimate over time
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				st := sp.BandwidthStats()
				fs := v.Frames()
				layer := -1
				if len(fs) > 0 {
					layer = layerOf(fs[len(fs)-1])
				}
				var ds sfu.DownTrackStats
				for _, d := range sp.Subscriptions() {
					if d.Kind() == webrtc.RTPCodecTypeVideo {
						ds = d.Stats()
					}
				}
				tlMu.Lock()
				timeline = append(timeline, fmt.Sprintf("%5.1fs cap %5d kbit/s estimate %5d kbit/s layer %d queue %v loss %.2f sent %d rtx %d padding %d",
					time.Since(start).Seconds(), pol.rate.Load()/1000, st.Estimate/1000, layer,
					st.QueueDelay.Round(time.Millisecond), st.Loss, ds.Packets, ds.Retransmissions, ds.PaddingPackets))
				tlMu.Unlock()
			}
		}
	}()
	plis := func() int {
		n := 0
		for _, l := range layers {
			n += l.PLIs()
		}
		return n
	}
	waitLayerTB(b, ctx, v, 2, 100) // settled on the top layer at 2 Mbit/s
	settled := time.Since(start)
	plisBefore := plis()
	firstGapCheck := len(v.Frames())

	pol.rate.Store(600_000)
	lowered := time.Now()
	waitBelowTB(b, ctx, v, 2, 20) // the middle layer (about 650 kbit/s) does not fit either
	down := runStart(v, func(l int) bool { return l < 2 }).Sub(lowered)
	waitFor(ctx, 10*time.Second)

	pol.rate.Store(0)
	uncapped := time.Now()
	waitLayerTB(b, ctx, v, 2, 50)
	up := runStart(v, func(l int) bool { return l == 2 }).Sub(uncapped)
	close(stop)

	arr := v.Arrivals()[firstGapCheck:]
	var gap time.Duration
	for i := 1; i < len(arr); i++ {
		gap = max(gap, arr[i].Sub(arr[i-1]))
	}
	b.ReportMetric(down.Seconds(), "s-to-downgrade")
	b.ReportMetric(up.Seconds(), "s-to-top-again")
	b.ReportMetric(float64(gap.Milliseconds()), "ms-longest-gap")
	b.ReportMetric(float64(plis()-plisBefore), "keyframe-requests")
	tlMu.Lock()
	b.Logf("top layer at 2 Mbit/s after %v; down %v after lowering to 600 kbit/s; top again %v after uncapping; longest gap %v; %d keyframe requests upstream",
		settled.Round(time.Millisecond), down.Round(time.Millisecond), up.Round(time.Millisecond), gap, plis()-plisBefore)
	for _, l := range timeline {
		b.Log(l)
	}
	tlMu.Unlock()
}

// runStart is when the final run of frames whose layer satisfies in began
// (the arrival of its first frame).
func runStart(sk *mediatest.Sink, in func(layer int) bool) time.Time {
	fs, arr := sk.Frames(), sk.Arrivals()
	i := len(fs) - 1
	for i > 0 && in(layerOf(fs[i-1])) {
		i--
	}
	return arr[i]
}

// waitBelowTB waits until the last n frames received came from layers
// below layer.
func waitBelowTB(t testing.TB, ctx context.Context, sk *mediatest.Sink, layer, n int) {
	t.Helper()
	for {
		fs := sk.Frames()
		run := 0
		for i := len(fs) - 1; i >= 0 && layerOf(fs[i]) < layer; i-- {
			run++
		}
		if run >= n {
			return
		}
		count := sk.Count()
		if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > count }); err != nil {
			t.Fatalf("timed out waiting for a layer below %d", layer)
		}
	}
}

// waitFor lets time pass (the steady phase of a timeline), bounded by ctx.
func waitFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// With bandwidth for only one video, a screen share is kept and the camera
// paused; the subscriber is told why.
func TestScreenShareBeforeCamera(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	pol := &policer{}
	pol.rate.Store(450_000)
	api, err := client.NewAPI(func(ir *interceptor.Registry, _ *webrtc.SettingEngine) { ir.Add(pol) })
	if err != nil {
		t.Fatal(err)
	}
	sub := newPeer(t, s, "room", "sub", api)
	pub := newPeer(t, s, "room", "pub", nil)
	cam, screen := videoSource(t, "cam"), videoSource(t, "screen")
	pub.c.SetSource(cam.Track.ID(), "camera")
	pub.c.SetSource(screen.Track.ID(), "screen")
	pub.publish(ctx, cam, screen)
	pump(t, cam, 30*time.Millisecond)    // about 270 kbit/s
	pump(t, screen, 30*time.Millisecond) // about 270 kbit/s
	var screenID, camID string
	sub.wait(ctx, "trackPublished with sources", func() bool {
		for _, e := range sub.events {
			if e.Type == signaling.TypeTrackPublished && e.Track != nil {
				switch e.Track.Source {
				case "screen":
					screenID = e.Track.ID
				case "camera":
					camID = e.Track.ID
				}
			}
		}
		return screenID != "" && camID != ""
	})
	sub.wait(ctx, "camera paused for bandwidth", func() bool { return sub.layerEvent(camID, -1, "bandwidth") })
	sub.mu.Lock()
	screenPaused := sub.layerEvent(screenID, -1, "")
	sub.mu.Unlock()
	if screenPaused {
		t.Fatal("the screen share was paused before the camera")
	}
	sk := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	for _, x := range sub.sinks {
		if x.Track.ID() == screenID {
			sk = x
		}
	}
	n := sk.Count()
	if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > n+20 }); err != nil {
		t.Fatal("the screen share stopped")
	}
}
