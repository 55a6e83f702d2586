package server_test

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// dropper is an interceptor that drops chosen incoming video packets the
// first time they arrive, as loss on the wire would.
type dropper struct {
	interceptor.NoOp
	mu      sync.Mutex
	every   uint16
	dropped map[uint16]bool
}

func (d *dropper) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropper) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dropped)
}

func (d *dropper) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if !strings.HasPrefix(info.MimeType, "video/") {
		return r
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || n < 4 {
				return n, attr, err
			}
			seq := binary.BigEndian.Uint16(b[2:4])
			if b[0]&0x20 != 0 { // padding (a bandwidth probe): not media, never NACKed
				return n, attr, err
			}
			d.mu.Lock()
			drop := seq%d.every == 0 && !d.dropped[seq]
			if drop {
				d.dropped[seq] = true
			}
			d.mu.Unlock()
			if !drop {
				return n, attr, err
			}
		}
	})
}

func subscriptionStats(t *testing.T, s *server.Server, room, name string) sfu.DownTrackStats {
	t.Helper()
	r, ok := s.SFU().Rooms().Get(room)
	if !ok {
		t.Fatalf("room %s not found", room)
	}
	p, ok := r.FindParticipant(name)
	if !ok {
		t.Fatalf("participant %s not found", name)
	}
	var total sfu.DownTrackStats
	for _, d := range p.Subscriptions() {
		st := d.Stats()
		total.Packets += st.Packets
		total.Retransmissions += st.Retransmissions
		total.RTXPackets += st.RTXPackets
		total.FECPackets += st.FECPackets
		total.KeyframeAsks += st.KeyframeAsks
		total.Dropped += st.Dropped
	}
	return total
}

// A subscriber's lost packets are NACKed and answered from the publisher's
// packet cache, so that it ends with every frame.
func TestNACKAnsweredFromCache(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	d := &dropper{every: 17, dropped: map[uint16]bool{}}
	api, err := client.NewAPI(func(ir *interceptor.Registry, se *webrtc.SettingEngine) {
		ir.Add(d)
		// The dropper sits after SRTP decryption, so the retransmission
		// carries a sequence number SRTP has already seen.
		se.DisableSRTPReplayProtection(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	sub := newPeer(t, s, "room", "sub", api)
	pub := newPeer(t, s, "room", "pub", nil)
	dropped := sendThroughLoss(t, ctx, s, pub, sub, d)
	if dropped < 10 {
		t.Fatalf("the dropper dropped only %d packets", dropped)
	}
	// the writer counts a retransmission after writing it: the frame may
	// arrive first
	st := subscriptionStats(t, s, "room", "sub")
	for st.Retransmissions < uint64(dropped) {
		select {
		case <-ctx.Done():
			t.Fatalf("retransmissions %d < %d dropped among the 200 frames", st.Retransmissions, dropped)
		case <-time.After(10 * time.Millisecond): // polling interval
		}
		st = subscriptionStats(t, s, "room", "sub")
	}
	// the subscriber negotiated RTX (pion's default codecs): resent on it
	if st.RTXPackets != st.Retransmissions {
		t.Fatalf("%d of %d retransmissions on the RTX stream", st.RTXPackets, st.Retransmissions)
	}
	t.Logf("dropped %d, retransmitted %d (on RTX)", d.count(), st.Retransmissions)
}

// Keyframe requests from many subscribers become one rate-limited request
// to the publisher.
func TestManyPLIsBecomeOneUpstream(t *testing.T) {
	s := startServerWith(t, server.Config{KeyframeInterval: time.Second})
	ctx := deadline(t, 30*time.Second)
	pub := newPeer(t, s, "room", "pub", nil)
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	pump(t, video, 5*time.Millisecond)

	var subs []*peer
	for _, n := range []string{"a", "b", "c"} {
		p := newPeer(t, s, "room", n, nil)
		v := p.sink(ctx, webrtc.RTPCodecTypeVideo, "")
		if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, p)
	}
	r, _ := s.SFU().Rooms().Get("room")
	pp, _ := r.FindParticipant("pub")
	up := pp.Published()[0].Layer(0)
	before := up.Stats().KeyframeRequests
	select { // forget earlier requests
	case <-video.PLISignal():
	default:
	}

	const perSub = 10
	for _, p := range subs {
		p.mu.Lock()
		ssrc := uint32(p.sinks[0].Track.SSRC())
		p.mu.Unlock()
		for i := 0; i < perSub; i++ {
			if err := p.c.Subscriber().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// wait until the SFU has seen all the subscribers' requests
	for _, n := range []string{"a", "b", "c"} {
		for subscriptionStats(t, s, "room", n).KeyframeAsks < perSub {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: the SFU saw only %d PLIs", n, subscriptionStats(t, s, "room", n).KeyframeAsks)
			case <-time.After(10 * time.Millisecond): // polling interval
			}
		}
	}
	select {
	case <-video.PLISignal():
	case <-ctx.Done():
		t.Fatal("the publisher never received the keyframe request")
	}
	// At most one request goes up now and one merged request at the end of
	// the interval (a request pending from the subscribers' joins may be it).
	sent := up.Stats().KeyframeRequests - before
	if sent < 1 || sent > 2 {
		t.Fatalf("%d subscriber PLIs became %d upstream PLIs, want 1 or 2", 3*perSub, sent)
	}
}

// BindLocalStream drops chosen outgoing video packets the first time they
// are sent (the publisher's NACK responder, closer to the application, has
// already cached them and resends them through here).
func (d *dropper) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(info.MimeType, "video/") {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		d.mu.Lock()
		drop := h.SequenceNumber%d.every == 0 && !d.dropped[h.SequenceNumber]
		if drop {
			d.dropped[h.SequenceNumber] = true
		}
		d.mu.Unlock()
		if drop {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// Packets lost between publisher and SFU are NACKed by the SFU, resent by
// the publisher and forwarded, so the subscriber ends with every frame.
func TestSFUNacksPublisher(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	d := &dropper{every: 13, dropped: map[uint16]bool{}}
	api, err := client.NewAPI(func(ir *interceptor.Registry, _ *webrtc.SettingEngine) { ir.Add(d) })
	if err != nil {
		t.Fatal(err)
	}
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", api)
	if dropped := sendThroughLoss(t, ctx, s, pub, sub, d); dropped < 10 {
		t.Fatalf("the dropper dropped only %d packets", dropped)
	}
}

// sendThroughLoss publishes video from pub, waits until sub receives it,
// then sends 200 frames while d drops some, and waits until sub has every
// one of them. It returns how many packets d dropped during the 200 frames.
func sendThroughLoss(t *testing.T, ctx context.Context, s *server.Server, pub, sub *peer, d *dropper) int {
	t.Helper()
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	stop := pump(t, video, 5*time.Millisecond)
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
		t.Fatal(err)
	}
	stop()
	droppedBefore := d.count()
	first := writeN(t, video, 200, 2*time.Millisecond)
	dropped := d.count() - droppedBefore
	// later packets reveal a loss among the last ones
	stopTail := pump(t, video, 5*time.Millisecond)
	defer stopTail()
	if err := v.WaitRange(ctx, first, first+200); err != nil {
		missing := 0
		for i := first; i < first+200; i++ {
			if !v.Has(i) {
				missing++
			}
		}
		t.Fatalf("lost frames were not recovered: %d of 200 missing (dropped %d); server: %+v",
			missing, dropped, subscriptionStats(t, s, "room", "sub"))
	}
	return dropped
}
