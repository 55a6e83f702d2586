package server_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
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

	layers, err := mediatest.NewSimulcastSources("cam", "pub", []string{"q", "h", "f"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	tracks := make([]webrtc.TrackLocal, len(layers))
	for i, l := range layers {
		tracks[i] = l.Track
	}
	sender, err := pub.c.PublishSimulcast(ctx, tracks...)
	if err != nil {
		t.Fatal(err)
	}
	var mid string
	for _, tr := range pub.c.Publisher().GetTransceivers() {
		if tr.Sender() == sender {
			mid = tr.Mid()
		}
	}
	var midID, ridID int
	for _, h := range sender.GetParameters().HeaderExtensions {
		switch h.URI {
		case sdp.SDESMidURI:
			midID = h.ID
		case sdp.SDESRTPStreamIDURI:
			ridID = h.ID
		}
	}
	// about 200 kbit/s, 600 kbit/s and 1.6 Mbit/s
	for i, every := range []time.Duration{40 * time.Millisecond, 13 * time.Millisecond, 5 * time.Millisecond} {
		layers[i].SetSimulcastHeader(mid, midID, ridID)
		go layers[i].ReadRTCP(sender)
		pump(t, layers[i], every)
	}

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
