package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger() *slog.Logger {
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t testing.TB) *server.Server {
	t.Helper()
	return startServerWith(t, server.Config{})
}

func startServerWith(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	cfg.Listen, cfg.UDPIP, cfg.Logger = "127.0.0.1:0", "127.0.0.1", testLogger()
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func wsURL(s *server.Server) string {
	return strings.Replace(s.URL(), "http://", "ws://", 1) + "ws"
}

func deadline(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// peer is a test participant: a protocol client that records received
// tracks and server events.
type peer struct {
	t      testing.TB
	c      *client.Client
	mu     sync.Mutex
	sinks  []*mediatest.Sink
	events []signaling.Message
	srs    int           // RTCP sender reports received on the subscriber connection
	change chan struct{} // closed and replaced on every track or event
}

func newPeer(t testing.TB, s *server.Server, room, name string, api *webrtc.API) *peer {
	t.Helper()
	p := &peer{t: t, change: make(chan struct{})}
	c, err := client.Dial(deadline(t, 10*time.Second), wsURL(s), client.Options{
		API: api,
		OnTrack: func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
			go p.readRTCP(recv)
			sink := mediatest.NewReceiverSink(tr, recv)
			p.mu.Lock()
			p.sinks = append(p.sinks, sink)
			p.notifyLocked()
			p.mu.Unlock()
		},
		Events: func(m signaling.Message) {
			p.mu.Lock()
			p.events = append(p.events, m)
			p.notifyLocked()
			p.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	t.Cleanup(func() { _ = c.Close() })
	if room != "" {
		if _, err := c.Join(deadline(t, 10*time.Second), room, name); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *peer) readRTCP(recv *webrtc.RTPReceiver) {
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if _, ok := pkt.(*rtcp.SenderReport); ok {
				p.mu.Lock()
				p.srs++
				p.notifyLocked()
				p.mu.Unlock()
			}
		}
	}
}

func (p *peer) notifyLocked() {
	close(p.change)
	p.change = make(chan struct{})
}

// wait waits until cond holds (called with p locked).
func (p *peer) wait(ctx context.Context, what string, cond func() bool) {
	p.t.Helper()
	for {
		p.mu.Lock()
		ok := cond()
		ch := p.change
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sink waits for a received track of the given kind from a publisher
// (any publisher when from is empty).
func (p *peer) sink(ctx context.Context, kind webrtc.RTPCodecType, from string) *mediatest.Sink {
	p.t.Helper()
	var found *mediatest.Sink
	p.wait(ctx, "a "+kind.String()+" track", func() bool {
		for _, s := range p.sinks {
			if s.Track.Kind() == kind && (from == "" || s.Track.StreamID() == from) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func (p *peer) hasEvent(typ string, match func(signaling.Message) bool) bool {
	for _, e := range p.events {
		if e.Type == typ && (match == nil || match(e)) {
			return true
		}
	}
	return false
}

// publish publishes sources and starts reading their RTCP.
func (p *peer) publish(ctx context.Context, srcs ...*mediatest.Source) []*webrtc.RTPSender {
	p.t.Helper()
	tracks := make([]webrtc.TrackLocal, len(srcs))
	for i, s := range srcs {
		tracks[i] = s.Track
	}
	senders, err := p.c.Publish(ctx, tracks...)
	if err != nil {
		p.t.Fatal(err)
	}
	for i, s := range senders {
		go srcs[i].ReadRTCP(s)
	}
	return senders
}

// pump writes a frame every interval until ctx ends or stop is called.
func pump(t testing.TB, src *mediatest.Source, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := src.WriteFrame(); err != nil {
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func videoSource(t testing.TB, name string) *mediatest.Source {
	t.Helper()
	s, err := mediatest.NewVideoSource("video-"+name, "stream-"+name, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func audioSource(t testing.TB, name string) *mediatest.Source {
	t.Helper()
	s, err := mediatest.NewAudioSource("audio-"+name, "stream-"+name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeN writes n frames, pacing them by interval, and returns the first index.
func writeN(t testing.TB, src *mediatest.Source, n int, interval time.Duration) uint32 {
	t.Helper()
	first := src.Next()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if _, err := src.WriteFrame(); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	return first
}

// publishSimulcast publishes three VP8 layers (rids q, h, f) of one track
// "cam" from p, each pumped at its interval with packets of size bytes; the
// layers' frame numbers tell them apart (mediatest.LayerIndexBase). It
// returns the sources and the functions that stop each layer's pump.
func (p *peer) publishSimulcast(ctx context.Context, size int, every [3]time.Duration) ([]*mediatest.Source, []func()) {
	p.t.Helper()
	layers, err := mediatest.NewSimulcastSources("cam", "pub", []string{"q", "h", "f"}, size)
	if err != nil {
		p.t.Fatal(err)
	}
	tracks := make([]webrtc.TrackLocal, len(layers))
	for i, l := range layers {
		tracks[i] = l.Track
	}
	sender, err := p.c.PublishSimulcast(ctx, tracks...)
	if err != nil {
		p.t.Fatal(err)
	}
	// pion's sender does not add the MID and RID header extensions a
	// simulcast receiver needs: the sources add them, with negotiated ids
	var mid string
	for _, tr := range p.c.Publisher().GetTransceivers() {
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
	if mid == "" || midID == 0 || ridID == 0 {
		p.t.Fatalf("simulcast not negotiated: mid %q, extension ids %d %d", mid, midID, ridID)
	}
	stops := make([]func(), len(layers))
	for i, l := range layers {
		l.SetSimulcastHeader(mid, midID, ridID)
		go l.ReadRTCP(sender)
		stops[i] = pump(p.t, l, every[i])
	}
	return layers, stops
}
