package sfu

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// statsRoom is an SFU with one room whose participants are wired by hand:
// no PeerConnections, no control loops, media handed to the up tracks
// directly.
type statsRoom struct {
	sfu  *SFU
	room *Room
}

func newStatsRoom(t *testing.T) *statsRoom {
	t.Helper()
	s, err := New(Config{UDPIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &statsRoom{sfu: s, room: s.rooms.GetOrCreate("stats")}
}

func (sr *statsRoom) join(t *testing.T, name string, publish, subscribe bool) *Participant {
	t.Helper()
	p := newParticipant(sr.sfu, sr.room, JoinOptions{Name: name, Publish: publish, Subscribe: subscribe, Listener: NopListener{}})
	if err := sr.room.addParticipant(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// publish makes pub publish a video track with the given up tracks as layers.
func (sr *statsRoom) publish(pub *Participant, ups ...*UpTrack) *PublishedTrack {
	for i, u := range ups {
		u.info.ParticipantID = pub.id
		u.ssrc.Store(uint32(500 + i)) // known: keyframe requests go out
	}
	pt := published(ups...)
	sr.room.publish(pt)
	return pt
}

// subscribe gives sub a down track of pt writing to w.
func subscribeTo(t *testing.T, sub *Participant, pt *PublishedTrack, w *fakeWriter, queue int) *DownTrack {
	t.Helper()
	d := bindDownTo(t, pt, w, queue)
	sub.mu.Lock()
	sub.subs[pt.info.ID] = &subscription{down: d, maxLayer: MaxLayers - 1}
	sub.mu.Unlock()
	return d
}

func waitSnapshot(t *testing.T, s *SFU, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap := s.Snapshot()
		if ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: snapshot %+v", what, snap.Totals)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// twoAcks is transport-wide feedback acknowledging sequence numbers 1 and 2.
func twoAcks() *rtcp.TransportLayerCC {
	recv := uint16(rtcp.TypeTCCPacketReceivedLargeDelta)
	return &rtcp.TransportLayerCC{BaseSequenceNumber: 1, PacketStatusCount: 2,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.StatusVectorChunk{
			SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: []uint16{recv, recv}}},
		RecvDeltas: []*rtcp.RecvDelta{{Type: recv, Delta: 1000}, {Type: recv, Delta: 1000}}}
}

func TestSnapshotCountsFlow(t *testing.T) {
	sr := newStatsRoom(t)
	pub := sr.join(t, "pub", true, false)
	sub := sr.join(t, "sub", false, true)
	ups := []*UpTrack{newVideoUp(nil), newVideoUp(nil)}
	pt := sr.publish(pub, ups...)
	w := &fakeWriter{}
	d := subscribeTo(t, sub, pt, w, 0) // wants the top layer: 1

	s0 := sr.sfu.Snapshot()
	if s0.Rooms != 1 || s0.Participants != 2 || s0.Tracks["video"] != 1 || s0.Tracks["audio"] != 0 || s0.Subscriptions != 1 {
		t.Fatalf("structure: %+v", s0)
	}
	if len(s0.Streams) != 3 {
		t.Fatalf("%d streams, want 2 layers and 1 down track", len(s0.Streams))
	}
	if s0.Totals.PacketsIn != 0 || s0.Totals.PLIsSent != 1 {
		t.Fatalf("before media: %+v (binding asks layer 1 for a keyframe)", s0.Totals)
	}
	if len(s0.BandwidthEstimates) != 0 {
		t.Fatalf("estimates without feedback: %v", s0.BandwidthEstimates)
	}

	pz := []*packetizer{{seq: 10, perFrame: 2}, {seq: 5000, perFrame: 2}}
	for f := 0; f < 5; f++ {
		for l, u := range ups {
			for _, b := range pz[l].frameAt(f == 0) {
				u.handlePacket(b)
			}
		}
	}
	waitCount(t, w, 10) // layer 1 only
	s1 := waitSnapshot(t, sr.sfu, "layer 1 forwarded", func(s Snapshot) bool { return s.Totals.PacketsOut == 10 })
	if s1.Totals.PacketsIn != 20 || s1.Totals.BytesIn != 20*18 {
		t.Fatalf("in: %+v", s1.Totals)
	}

	// down to layer 0: a keyframe request, then a switch at its keyframe
	d.SetTargetLayer(0, "test")
	for _, b := range pz[0].frameAt(true) {
		ups[0].handlePacket(b)
	}
	next := pz[0].frameAt(false)
	for _, b := range append(next, next[1]) { // the last packet twice
		ups[0].handlePacket(b)
	}
	waitCount(t, w, 14)
	// the subscriber lost the last packet and asks for a keyframe
	hs := w.written()
	d.HandleRTCP(append(nackFor(hs[13].SequenceNumber), &rtcp.PictureLossIndication{}))
	waitCount(t, w, 15)

	// the subscriber's connection has an estimate once feedback came
	now := time.Now()
	sub.bw.sent(1, 1200, now)
	sub.bw.sent(2, 1200, now.Add(time.Millisecond))
	sub.bw.feedback(twoAcks(), now.Add(20*time.Millisecond))

	s2 := waitSnapshot(t, sr.sfu, "retransmitted", func(s Snapshot) bool { return s.Totals.Retransmissions == 1 })
	want := Counters{
		PacketsIn: 25, BytesIn: 25 * 18, PLIsSent: 2, Duplicates: 1,
		PacketsOut: 14, NACKsReceived: 1, KeyframeRequests: 1, Retransmissions: 1, LayerSwitches: 1,
	}
	if s2.Totals != want {
		t.Fatalf("totals\n got %+v\nwant %+v", s2.Totals, want)
	}
	var sum Counters
	for _, st := range s2.Streams {
		sum.Add(st.Counters)
	}
	if sum != s2.Totals {
		t.Fatalf("streams sum to %+v, totals %+v", sum, s2.Totals)
	}
	if len(s2.BandwidthEstimates) != 1 || s2.BandwidthEstimates[0] <= 0 {
		t.Fatalf("estimates %v, want the subscriber's", s2.BandwidthEstimates)
	}
	pub.bw.mu.Lock()
	created := pub.bw.est != nil
	pub.bw.mu.Unlock()
	if created {
		t.Fatal("the snapshot created an estimator for a publish-only participant")
	}

	// the streams keep their keys while they live
	keys := func(s Snapshot) string {
		var k []string
		for _, st := range s.Streams {
			k = append(k, st.Key)
		}
		return strings.Join(k, ",")
	}
	if k0, k2 := keys(s0), keys(s2); len(k0) == 0 || len(strings.Split(k0, ",")) != len(strings.Split(k2, ",")) {
		t.Fatalf("stream keys changed: %q then %q", k0, k2)
	}
	for _, k := range strings.Split(keys(s2), ",") {
		if !strings.Contains(keys(s0), k) {
			t.Fatalf("stream key %q is new", k)
		}
	}

	// the subscriber leaves: its down track's counters go with it
	sub.Close()
	s3 := sr.sfu.Snapshot()
	if s3.Participants != 1 || s3.Subscriptions != 0 || s3.Totals.PacketsOut != 0 || s3.Totals.PacketsIn != 25 || len(s3.BandwidthEstimates) != 0 {
		t.Fatalf("after the subscriber left: %+v", s3)
	}
}

func TestSnapshotCountsSlowSubscriberDrops(t *testing.T) {
	sr := newStatsRoom(t)
	pub := sr.join(t, "pub", true, false)
	sub := sr.join(t, "slow", false, true)
	up := newVideoUp(nil)
	pt := sr.publish(pub, up)
	w := &fakeWriter{gate: make(chan struct{})}
	subscribeTo(t, sub, pt, w, 4)
	pz := &packetizer{perFrame: 3}
	for f := 0; f < 10; f++ {
		for _, b := range pz.frameAt(f == 0) {
			up.handlePacket(b)
		}
	}
	snap := sr.sfu.Snapshot()
	close(w.gate) // let the writer go before the room closes
	if snap.Totals.Dropped == 0 || snap.Totals.PacketsIn != 30 {
		t.Fatalf("slow subscriber: %+v", snap.Totals)
	}
}
