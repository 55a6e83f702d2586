package server_test

import (
	"net"
	"testing"

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
	l := newLossy("audio/", true, 0.40, 5)
	checkREDRecovery(t, twccOnlyAPI(t, l), l, ", no receiver reports")
}
