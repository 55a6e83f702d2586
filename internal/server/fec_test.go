package server_test

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
)

// fecCodecs are what a browser negotiates for receiving Opus and VP8 with
// video RED and ULPFEC. RTX is left out: pion's NACK generator does not see
// packets repaired on an RTX stream and would NACK them again and again (a
// browser does see them), so retransmissions come on the media stream.
func fecCodecs(me *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	for _, c := range []webrtc.RTPCodecParameters{
		{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}},
		{PayloadType: 122, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/red", ClockRate: 90000}},
		{PayloadType: 123, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/ulpfec", ClockRate: 90000}},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}

// A subscriber that negotiated RED and ULPFEC and loses 10 % of the
// packets on its 50 ms round trip (a vnet link; FEC is off on paths
// shorter than fec.NACKOnlyRTT) gets FEC sized to that loss: lost packets
// are rebuilt from it (exactly: a wrong rebuild would show as a frame
// number never sent), and with NACK for the rest it ends with at least 99 %
// of the frames (every one, unless the machine is loaded).
func TestVideoFECRecoversLoss(t *testing.T) {
	n := newLRNet(t, lrLeg{lrSFUIP, lrSubIP}, 0.10, 3)
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: lrSFUIP, Net: n.nets[lrSFUIP], Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := deadline(t, 30*time.Second)
	rr, err := report.NewReceiverInterceptor(report.ReceiverInterval(200 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	sub := newPeer(t, s, "room", "sub", n.api(t, lrSubIP, fecCodecs, rr))
	pub := newPeer(t, s, "room", "pub", n.api(t, lrPubIP, lrPlainCodecs))
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	pump(t, video, 5*time.Millisecond)
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	waitFrame(t, ctx, v, 200) // the loss is measured and FEC turned on
	first := video.Next()
	last := first + 600
	// 200 frames (1 s) later every repair of the range has had its chances
	waitFrame(t, ctx, v, last+200)
	if got := recovered(v, first, last); got < 0.99 {
		red, fecs, rec := v.FECStats()
		st := subscriptionStats(t, s, "room", "sub")
		r, _ := s.SFU().Rooms().Get("room")
		sp, _ := r.FindParticipant("sub")
		for _, d := range sp.Subscriptions() {
			t.Logf("%+v", d.Stats())
		}
		var missing []uint32
		for i := first; i <= last; i++ {
			if !v.Has(i) {
				missing = append(missing, i)
			}
		}
		t.Logf("missing %v; bandwidth %+v", missing, sp.BandwidthStats())
		t.Fatalf("frames %d..%d: %.2f%% received, want 99%%; RED %d FEC %d rebuilt %d; sent %d rtx %d fec %d",
			first, last, 100*got, red, fecs, rec, st.Packets, st.Retransmissions, st.FECPackets)
	}
	red, fecs, rec := v.FECStats()
	st := subscriptionStats(t, s, "room", "sub")
	t.Logf("RED packets %d, of which FEC %d; rebuilt from FEC %d; retransmissions %d; FEC sent %d", red, fecs, rec,
		st.Retransmissions, st.FECPackets)
	if fecs == 0 || rec == 0 {
		t.Fatalf("no FEC recovery: %d FEC packets received, %d packets rebuilt", fecs, rec)
	}
	for _, idx := range v.Frames() {
		if idx > video.Next() {
			t.Fatalf("frame %d was never sent: a wrong rebuild", idx)
		}
	}
}
