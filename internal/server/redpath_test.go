package server_test

import (
	"net"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
)

// twccOnlyAPI is a client API that accepts audio/red and sends
// transport-wide feedback but no receiver reports at all, with loss added
// by l before the feedback sees the packets.
func twccOnlyAPI(t testing.TB, l *lossy) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 63, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: mediatest.MimeRED, ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"}}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	ir.Add(l) // first: the feedback interceptor reads what it lets through
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// A subscriber that sends no receiver reports (Chromium sends them for
// audio only every 5 s) still gets RED sized to its loss: the SFU reads the
// loss from its transport-wide feedback too. At 40 % random loss on its
// downlink it ends with at least 99 % of the frames; without copies it
// would have about 60 %.
func TestREDFollowsTransportLoss(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	l := newLossy("audio/", true, 0.40, 5)
	sub := newPeer(t, s, "room", "sub", twccOnlyAPI(t, l))
	pub := newPeer(t, s, "room", "pub", nil)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	pump(t, audio, 5*time.Millisecond)
	a := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	if !a.RED() {
		t.Fatalf("the subscriber receives %s, not RED", a.Track.Codec().MimeType)
	}
	waitFrame(t, ctx, a, audio.Next()+1000)
	first := audio.Next()
	last := first + 800
	waitFrame(t, ctx, a, last+20)
	got := recovered(a, first, last)
	l.mu.Lock()
	loss := float64(l.dropped) / float64(l.dropped+l.through)
	l.mu.Unlock()
	r, _ := s.SFU().Rooms().Get("room")
	sp, _ := r.FindParticipant("sub")
	t.Logf("downlink loss %.1f%%, no receiver reports: %.2f%% of frames recovered; SFU's view: %+v",
		100*loss, 100*got, sp.BandwidthStats())
	if loss < 0.35 {
		t.Fatalf("the link lost only %.1f%%", 100*loss)
	}
	if got < 0.99 {
		t.Fatalf("only %.2f%% of the frames at %.0f%% loss", 100*got, 100*loss)
	}
}
