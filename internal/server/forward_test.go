package server_test

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/signaling"
)

// One publisher, three subscribers: every frame sent once all are receiving
// reaches every subscriber, audio and video, with continuous sequence numbers.
func TestOnePublisherThreeSubscribers(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)

	var subs []*peer
	for _, n := range []string{"s1", "s2", "s3"} {
		subs = append(subs, newPeer(t, s, "room", n, nil))
	}
	pub := newPeer(t, s, "room", "pub", nil)
	video, audio := videoSource(t, "pub"), audioSource(t, "pub")
	pub.publish(ctx, video, audio)

	stopV, stopA := pump(t, video, 5*time.Millisecond), pump(t, audio, 5*time.Millisecond)
	var vs, as []*mediatest.Sink
	for _, sp := range subs {
		v := sp.sink(ctx, webrtc.RTPCodecTypeVideo, pub.c.ID())
		a := sp.sink(ctx, webrtc.RTPCodecTypeAudio, pub.c.ID())
		if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
			t.Fatal("video never arrived:", err)
		}
		if err := a.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
			t.Fatal("audio never arrived:", err)
		}
		vs, as = append(vs, v), append(as, a)
	}
	stopV()
	stopA()

	const n = 300
	firstV := video.Next()
	firstA := audio.Next()
	tick := time.NewTicker(2 * time.Millisecond) // pacing: 500 frames/s of each kind
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if _, err := video.WriteFrame(); err != nil {
			t.Fatal(err)
		}
		if _, err := audio.WriteFrame(); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	for i := range subs {
		if err := vs[i].WaitRange(ctx, firstV, firstV+n); err != nil {
			t.Fatalf("subscriber %d: video frames missing: got %d", i, vs[i].Count())
		}
		if err := as[i].WaitRange(ctx, firstA, firstA+n); err != nil {
			t.Fatalf("subscriber %d: audio frames missing: got %d", i, as[i].Count())
		}
		seqs := vs[i].Seqs()
		for j := 1; j < len(seqs); j++ {
			if d := seqs[j] - seqs[j-1]; d != 1 {
				t.Fatalf("subscriber %d: sequence jumps by %d at %d", i, d, j)
			}
		}
	}
}

// A subscriber that joins mid-stream starts on a keyframe; one that leaves
// does not disturb the others; the room tells everyone.
func TestSubscriberJoinsAndLeavesMidStream(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)

	pub := newPeer(t, s, "room", "pub", nil)
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	pump(t, video, 5*time.Millisecond)

	a := newPeer(t, s, "room", "a", nil)
	va := a.sink(ctx, webrtc.RTPCodecTypeVideo, pub.c.ID())
	if err := va.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 10 }); err != nil {
		t.Fatal(err)
	}

	plisBefore := video.PLIs()
	b := newPeer(t, s, "room", "b", nil)
	vb := b.sink(ctx, webrtc.RTPCodecTypeVideo, pub.c.ID())
	if err := vb.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 10 }); err != nil {
		t.Fatal(err)
	}
	if video.PLIs() <= plisBefore {
		t.Errorf("a new subscriber should make the SFU ask the publisher for a keyframe")
	}
	a.wait(ctx, "participantJoined b", func() bool {
		return a.hasEvent(signaling.TypeParticipantJoined, func(m signaling.Message) bool { return m.Participant.Name == "b" })
	})

	bID := b.c.ID()
	if err := b.c.Leave(); err != nil {
		t.Log("leave:", err)
	}
	a.wait(ctx, "participantLeft b", func() bool {
		return a.hasEvent(signaling.TypeParticipantLeft, func(m signaling.Message) bool { return m.Participant.ID == bID })
	})
	// a keeps receiving after b left
	n := va.Count()
	if err := va.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > n+50 }); err != nil {
		t.Fatal("remaining subscriber stopped receiving:", err)
	}
}

// Two rooms never receive each other's media or events.
func TestRoomsAreIsolated(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	type roomPeers struct{ pub, sub *peer }
	rooms := map[string]*roomPeers{}
	for _, r := range []string{"r1", "r2"} {
		rp := &roomPeers{pub: newPeer(t, s, r, "pub-"+r, nil), sub: newPeer(t, s, r, "sub-"+r, nil)}
		src := videoSource(t, r)
		rp.pub.publish(ctx, src)
		pump(t, src, 5*time.Millisecond)
		rooms[r] = rp
	}
	for r, rp := range rooms {
		v := rp.sub.sink(ctx, webrtc.RTPCodecTypeVideo, rp.pub.c.ID())
		if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 20 }); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	for r, rp := range rooms {
		rp.sub.mu.Lock()
		for _, sk := range rp.sub.sinks {
			if sk.Track.StreamID() != rp.pub.c.ID() {
				t.Errorf("%s: received a track of %s", r, sk.Track.StreamID())
			}
		}
		for _, e := range rp.sub.events {
			if e.Track != nil && e.Track.ParticipantID != rp.pub.c.ID() {
				t.Errorf("%s: told about track of %s", r, e.Track.ParticipantID)
			}
			if e.Participant != nil && e.Participant.Name != "pub-"+r {
				t.Errorf("%s: told about participant %s", r, e.Participant.Name)
			}
		}
		rp.sub.mu.Unlock()
	}
}

// Subscribers get RTCP sender reports (for lip sync) and publishers get
// receiver reports (for their congestion control), as browsers expect.
func TestRTCPReportsFlow(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	video, audio := videoSource(t, "pub"), audioSource(t, "pub")
	pub.publish(ctx, video, audio)
	pump(t, video, 5*time.Millisecond)
	pump(t, audio, 20*time.Millisecond)
	sub.wait(ctx, "two sender reports", func() bool { return sub.srs >= 2 })
	for video.ReceiverReports() == 0 || audio.ReceiverReports() == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("publisher got %d video and %d audio receiver reports", video.ReceiverReports(), audio.ReceiverReports())
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
}

// The publisher connection's round trip is measured from ICE checks; it
// paces the SFU's NACKs to publishers.
func TestPublisherRTTMeasured(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	pub := newPeer(t, s, "room", "pub", nil)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	pump(t, audio, 20*time.Millisecond)
	r, _ := s.SFU().Rooms().Get("room")
	p, ok := r.FindParticipant("pub")
	if !ok {
		t.Fatal("publisher not in the room")
	}
	for p.PublisherRTT() <= 0 {
		select {
		case <-ctx.Done():
			t.Fatal("publisher RTT never measured")
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
	if rtt := p.PublisherRTT(); rtt > time.Second {
		t.Fatalf("loopback RTT %v", rtt)
	}
}

// VP9 and H264 are forwarded when publisher and subscriber both offer them.
func TestForwardsVP9AndH264(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	var srcs []*mediatest.Source
	for _, c := range []webrtc.RTPCodecCapability{
		{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"},
		{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
	} {
		src, err := mediatest.NewVideoSourceCodec(c, "v-"+c.MimeType[6:], "pub", 800)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	pub.publish(ctx, srcs...)
	for _, src := range srcs {
		pump(t, src, 5*time.Millisecond)
	}
	got := map[string]bool{}
	sub.wait(ctx, "two video tracks", func() bool { return len(sub.sinks) == 2 })
	for _, sk := range sub.sinks {
		if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 20 }); err != nil {
			t.Fatalf("%s: no frames", sk.Track.Codec().MimeType)
		}
		got[sk.Track.Codec().MimeType] = true
	}
	if !got[webrtc.MimeTypeVP9] || !got[webrtc.MimeTypeH264] {
		t.Fatalf("received codecs %v", got)
	}
}

// Muting is relayed to the others.
func TestMuteIsRelayed(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	pump(t, audio, 20*time.Millisecond)
	sub.wait(ctx, "trackPublished", func() bool { return sub.hasEvent(signaling.TypeTrackPublished, nil) })
	muted := true
	if err := pub.c.Send(signaling.Message{Type: signaling.TypeMute, TrackID: audio.Track.ID(), Muted: &muted}); err != nil {
		t.Fatal(err)
	}
	sub.wait(ctx, "trackMuted", func() bool {
		return sub.hasEvent(signaling.TypeTrackMuted, func(m signaling.Message) bool {
			return m.Track.Muted && m.Track.PublisherTrackID == audio.Track.ID() && m.Track.ParticipantID == pub.c.ID()
		})
	})
	r, _ := s.SFU().Rooms().Get("room")
	for _, p := range r.Participants() {
		for _, tr := range p.Tracks {
			if !tr.Muted {
				t.Fatalf("room state lost the mute: %+v", tr)
			}
		}
	}
}

// Four participants all publish audio and video and each receives the
// other three's tracks.
func TestEveryoneReceivesEveryone(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	names := []string{"a", "b", "c", "d"}
	peers := map[string]*peer{}
	for _, n := range names {
		p := newPeer(t, s, "mesh", n, nil)
		v, a := videoSource(t, n), audioSource(t, n)
		p.publish(ctx, v, a)
		pump(t, v, 10*time.Millisecond)
		pump(t, a, 20*time.Millisecond)
		peers[n] = p
	}
	for _, n := range names {
		for _, other := range names {
			if other == n {
				continue
			}
			for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
				sk := peers[n].sink(ctx, kind, peers[other].c.ID())
				if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 5 }); err != nil {
					t.Fatalf("%s gets no %s from %s", n, kind, other)
				}
			}
		}
		peers[n].mu.Lock()
		got := len(peers[n].sinks)
		peers[n].mu.Unlock()
		if got != 6 {
			t.Fatalf("%s received %d tracks, want 6", n, got)
		}
	}
}

// A publisher that stops a track (renegotiating without it) unpublishes it
// for everyone; its other track keeps flowing.
func TestStoppedTrackIsUnpublished(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	video, audio := videoSource(t, "pub"), audioSource(t, "pub")
	senders := pub.publish(ctx, video, audio)
	stopV := pump(t, video, 5*time.Millisecond)
	pump(t, audio, 20*time.Millisecond)
	vs := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	as := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	if err := vs.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 5 }); err != nil {
		t.Fatal(err)
	}
	stopV()
	if err := pub.c.Unpublish(ctx, senders[0]); err != nil {
		t.Fatal(err)
	}
	sub.wait(ctx, "trackUnpublished video", func() bool {
		return sub.hasEvent(signaling.TypeTrackUnpublished, func(m signaling.Message) bool { return m.Track.Kind == "video" })
	})
	sub.mu.Lock()
	audioGone := sub.hasEvent(signaling.TypeTrackUnpublished, func(m signaling.Message) bool { return m.Track.Kind == "audio" })
	sub.mu.Unlock()
	if audioGone {
		t.Fatal("audio was unpublished too")
	}
	n := as.Count()
	if err := as.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > n+10 }); err != nil {
		t.Fatal("audio stopped after the video was unpublished")
	}
}
