package server_test

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/sfu"
)

// TestPublisherFECRepairsUplinkLoss: a publisher that protects its VP8 with
// ULPFEC in RED (as Chrome does, sized by the loss the SFU reports) sends
// through 20 % random loss on its uplink with a 50 ms round trip. The SFU
// rebuilds lost packets from the FEC, NACKs the rest, and forwards plain
// VP8: a subscriber that negotiated neither RED nor FEC ends with at least
// 99 % of the video packets sent, and sees no gap where the FEC packets
// were numbered.
func TestPublisherFECRepairsUplinkLoss(t *testing.T) {
	n := newLRNet(t, lrLeg{lrPubIP, lrSFUIP}, 0.2, 42)
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: lrSFUIP, Net: n.nets[lrSFUIP],
		Logger: testLogger(), PublisherFEC: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", n.api(t, lrSubIP, lrPlainCodecs))
	pub := newPeer(t, s, "room", "pub", n.api(t, lrPubIP, lrFECPublisherCodecs))
	video := newLRVideoSource(t, "video-pub", "stream-pub", true, false)
	senders, err := pub.c.Publish(ctx, video.Track)
	if err != nil {
		t.Fatal(err)
	}
	go video.readRTCP(senders[0])
	n.seedStream(uint32(senders[0].GetParameters().Encodings[0].SSRC), 2)
	lrEvery(t, lrFrameInterval, video.writeFrame)
	sv := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")

	upStats := func() (st sfu.UpTrackStats) {
		if room, ok := s.SFU().Rooms().Get("room"); ok {
			if pp, ok := room.FindParticipant("pub"); ok {
				for _, tr := range pp.Published() {
					for _, u := range tr.Layers() {
						st = u.Stats()
					}
				}
			}
		}
		return st
	}
	// FEC starts once a receiver report has told the publisher the loss
	for upStats().FECPackets == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no FEC packet reached the SFU")
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
	v0 := video.next()
	lrWaitT(t, 3*time.Second)
	v1 := video.next()
	lrWaitT(t, time.Second) // the last frames' repairs

	got := firstArrivals(sv)
	sent, missing := 0, 0
	for f := v0; f < v1; f++ {
		for part := 0; part < video.frame(f).parts; part++ {
			sent++
			if _, ok := got[f*lrMaxParts+uint32(part)]; !ok {
				missing++
			}
		}
	}
	if sent == 0 || float64(sent-missing) < 0.99*float64(sent) {
		t.Errorf("subscriber got %d of %d video packets, want at least 99 %%", sent-missing, sent)
	}
	st := upStats()
	if st.FECPackets == 0 || st.FECRecovered == 0 {
		t.Errorf("the SFU got %d FEC packets and rebuilt %d packets from them; want both above 0", st.FECPackets, st.FECRecovered)
	}
	// plain VP8 to the subscriber, numbered without the FEC packets: the
	// sequence numbers it received span the media packets sent and at most
	// the FEC packets that never reached the SFU (their numbers cannot be
	// told from lost media), not every FEC packet's
	seqs := sv.Seqs()
	if len(seqs) > 0 {
		lo, hi := seqs[0], seqs[0]
		for _, q := range seqs {
			if int16(q-lo) < 0 {
				lo = q
			}
			if int16(q-hi) > 0 {
				hi = q
			}
		}
		media := 0
		for f := uint32(0); f < video.next(); f++ {
			media += video.frame(f).parts
		}
		video.mu.Lock()
		fecSent := int(video.fec.enc.Stats().FECPackets)
		video.mu.Unlock()
		if span := int(hi-lo) + 1; span > media+fecSent/2 {
			t.Errorf("the subscriber's sequence numbers span %d for %d media packets (%d FEC packets sent): FEC numbers were not taken out",
				span, media, fecSent)
		}
	}
	t.Logf("video packets %d, missing %d; publisher FEC %d, rebuilt %d, NACKs sent %d", sent, missing, st.FECPackets, st.FECRecovered, st.NACKsSent)
}

// lrWaitT waits d (a test's phases are timed like the benchmark's).
func lrWaitT(t *testing.T, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}
