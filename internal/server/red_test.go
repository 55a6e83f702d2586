package server_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// lossy drops packets of one media kind ("audio/" or "video/" prefix of
// the codec) at random with a seeded generator: incoming packets (a lossy
// downlink) when in is set, outgoing ones (a lossy uplink) otherwise.
type lossy struct {
	interceptor.NoOp
	kind string
	in   bool
	rate float64

	mu               sync.Mutex
	rng              *rand.Rand
	dropped, through int
}

func newLossy(kind string, in bool, rate float64, seed uint64) *lossy {
	return &lossy{kind: kind, in: in, rate: rate, rng: rand.New(rand.NewPCG(seed, 7))}
}

func (l *lossy) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *lossy) drop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.rng.Float64() < l.rate
	if d {
		l.dropped++
	} else {
		l.through++
	}
	return d
}

func (l *lossy) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if !l.in || !strings.HasPrefix(info.MimeType, l.kind) {
		return r
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || !l.drop() {
				return n, attr, err
			}
		}
	})
}

func (l *lossy) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if l.in || !strings.HasPrefix(info.MimeType, l.kind) {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if l.drop() {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// redAPI is a client API that also negotiates audio/red (as browsers do),
// with loss added by l and receiver reports every 200 ms.
func redAPI(t testing.TB, l *lossy) *webrtc.API {
	t.Helper()
	api, err := client.NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, _ *webrtc.SettingEngine) error {
		if err := me.RegisterDefaultCodecs(); err != nil {
			return err
		}
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 63, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mediatest.MimeRED, ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"}}, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
		if l != nil {
			ir.Add(l)
		}
		return addFastReceiverReports(ir)
	})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// addFastReceiverReports makes a client send receiver reports every 200 ms
// (besides the default interceptors' own), so that the server sizes its
// redundancy quickly.
func addFastReceiverReports(ir *interceptor.Registry) error {
	rr, err := report.NewReceiverInterceptor(report.ReceiverInterval(200 * time.Millisecond))
	if err != nil {
		return err
	}
	ir.Add(rr)
	return nil
}

// recovered is the share of frames first..last (indices) a sink has.
func recovered(sk *mediatest.Sink, first, last uint32) float64 {
	n := 0
	for i := first; i <= last; i++ {
		if sk.Has(i) {
			n++
		}
	}
	return float64(n) / float64(last-first+1)
}

// waitFrame waits until a sink has frame idx or any later one.
func waitFrame(t *testing.T, ctx context.Context, sk *mediatest.Sink, idx uint32) {
	t.Helper()
	if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool {
		for i := range ix {
			if i >= idx {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("frame %d never arrived", idx)
	}
}

// A subscriber that accepts RED gets plain Opus wrapped with redundancy
// sized to its measured loss: at 40 % random loss on its downlink it ends
// with at least 99 % of the frames.
func TestREDBuiltForLossySubscriber(t *testing.T) {
	l := newLossy("audio/", true, 0.40, 1)
	checkREDRecovery(t, redAPI(t, l), l, "")
}

// checkREDRecovery has a subscriber on api, whose audio downlink l drops,
// follow a plain Opus publisher, and checks that it ends with at least 99 %
// of the frames through l's loss (which must be 35 % or more).
func checkREDRecovery(t *testing.T, api *webrtc.API, l *lossy, what string) {
	t.Helper()
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	sub := newPeer(t, s, "room", "sub", api)
	pub := newPeer(t, s, "room", "pub", nil)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	pump(t, audio, 5*time.Millisecond)
	a := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	if !a.RED() {
		t.Fatalf("the subscriber receives %s, not RED", a.Track.Codec().MimeType)
	}
	// the redundancy follows the loss within a second or two; measure 800
	// frames (4 s) after that
	waitFrame(t, ctx, a, audio.Next()+1000)
	first := audio.Next()
	last := first + 800
	waitFrame(t, ctx, a, last+20) // the copies of the last frames arrive later
	got := recovered(a, first, last)
	l.mu.Lock()
	loss := float64(l.dropped) / float64(l.dropped+l.through)
	l.mu.Unlock()
	r, _ := s.SFU().Rooms().Get("room")
	sp, _ := r.FindParticipant("sub")
	t.Logf("downlink loss %.1f%%%s: %.2f%% of frames recovered; SFU's view: %+v", 100*loss, what, 100*got, sp.BandwidthStats())
	if loss < 0.35 {
		t.Fatalf("the link lost only %.1f%%", 100*loss)
	}
	if got < 0.99 {
		t.Fatalf("only %.2f%% of the frames at %.0f%% loss", 100*got, 100*loss)
	}
}

// A publisher sending RED with one redundant copy, as browsers do, to a
// subscriber with 40 % loss on its downlink: the SFU rebuilds the RED with
// the distance that subscriber's loss calls for, so it ends with at least
// 99 % of the frames (the publisher's single copy alone would leave about
// 16 % missing).
func TestREDFromPublisherRebuiltForLossySubscriber(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	l := newLossy("audio/", true, 0.40, 3)
	sub := newPeer(t, s, "room", "sub", redAPI(t, l))
	pub := newPeer(t, s, "room", "pub", redAPI(t, nil))
	src, err := mediatest.NewREDSource("audio-pub", "stream-pub", 1)
	if err != nil {
		t.Fatal(err)
	}
	pub.publish(ctx, src)
	pump(t, src, 5*time.Millisecond)
	a := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	if !a.RED() {
		t.Fatalf("the subscriber receives %s, not RED", a.Track.Codec().MimeType)
	}
	waitFrame(t, ctx, a, src.Next()+1000)
	first := src.Next()
	last := first + 800
	waitFrame(t, ctx, a, last+20)
	got := recovered(a, first, last)
	l.mu.Lock()
	loss := float64(l.dropped) / float64(l.dropped+l.through)
	l.mu.Unlock()
	t.Logf("publisher distance 1, downlink loss %.1f%%: %.2f%% of frames recovered", 100*loss, 100*got)
	if loss < 0.35 {
		t.Fatalf("the link lost only %.1f%%", 100*loss)
	}
	if got < 0.99 {
		t.Fatalf("only %.2f%% of the frames at %.0f%% loss", 100*got, 100*loss)
	}
}

// A publisher sending RED over a lossy uplink: a subscriber without RED
// gets plain Opus with the lost frames rebuilt from the redundancy, one
// with RED gets them too (the RED is rebuilt for it).
func TestREDFromPublisherUnwrappedOrPassed(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	plain := newPeer(t, s, "room", "plain", nil)
	withRED := newPeer(t, s, "room", "red", redAPI(t, nil))
	up := newLossy("audio/", false, 0.40, 2)
	pub := newPeer(t, s, "room", "pub", redAPI(t, up))
	src, err := mediatest.NewREDSource("audio-pub", "stream-pub", 5)
	if err != nil {
		t.Fatal(err)
	}
	pub.publish(ctx, src)
	pump(t, src, 5*time.Millisecond)
	pa := plain.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	ra := withRED.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	if pa.RED() || !ra.RED() {
		t.Fatalf("plain subscriber got %s, RED subscriber got %s", pa.Track.Codec().MimeType, ra.Track.Codec().MimeType)
	}
	waitFrame(t, ctx, pa, 100)
	first := src.Next()
	last := first + 600
	waitFrame(t, ctx, pa, last+20)
	waitFrame(t, ctx, ra, last+20)
	p, r := recovered(pa, first, last), recovered(ra, first, last)
	t.Logf("uplink loss 40%%, distance 5: plain Opus subscriber %.2f%%, RED subscriber %.2f%% of frames", 100*p, 100*r)
	if p < 0.99 || r < 0.99 {
		t.Fatalf("frames recovered: plain %.2f%%, RED %.2f%%", 100*p, 100*r)
	}
}

// A publisher that negotiated NACK for its Opus (the web client offers it)
// over an uplink losing 40 % of its audio packets: the SFU asks for the
// missing ones again, and a subscriber ends with at least 99 % of the
// frames, with no redundancy at all.
func TestAudioNACKOnPublisherLeg(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	up := newLossy("audio/", false, 0.40, 4)
	api, err := client.NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, _ *webrtc.SettingEngine) error {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}}}}, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
		ir.Add(up) // first: the answers to NACKs cross the lossy link too
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := newPeer(t, s, "room", "pub", api)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	pump(t, audio, 5*time.Millisecond)
	a := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	waitFrame(t, ctx, a, 100)
	first := audio.Next()
	last := first + 600
	waitFrame(t, ctx, a, last+20)
	got := recovered(a, first, last)
	r, _ := s.SFU().Rooms().Get("room")
	pp, _ := r.FindParticipant("pub")
	var sent uint64
	for _, tr := range pp.Published() {
		for _, l := range tr.Layers() {
			sent += l.Stats().NACKsSent
		}
	}
	up.mu.Lock()
	loss := float64(up.dropped) / float64(up.dropped+up.through)
	up.mu.Unlock()
	t.Logf("uplink loss %.1f%%: %.2f%% of frames, %d packets NACKed", 100*loss, 100*got, sent)
	if loss < 0.3 || sent == 0 {
		t.Fatalf("the uplink lost %.1f%%, the SFU NACKed %d packets", 100*loss, sent)
	}
	if got < 0.99 {
		t.Fatalf("only %.2f%% of the frames at %.0f%% uplink loss", 100*got, 100*loss)
	}
}
