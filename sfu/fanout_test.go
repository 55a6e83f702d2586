package sfu

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var vp8Codec = webrtc.RTPCodecParameters{PayloadType: 96,
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeVP8, ClockRate: 90000}}

// fakeWriter records what a down track writes; gate, when set, blocks each
// write until a value is received (a slow subscriber).
type fakeWriter struct {
	mu      sync.Mutex
	headers []rtp.Header
	n       atomic.Int64
	gate    chan struct{}
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
	}
	w.mu.Lock()
	w.headers = append(w.headers, *h)
	w.mu.Unlock()
	w.n.Add(1)
	return len(payload), nil
}

func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *fakeWriter) written() []rtp.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rtp.Header(nil), w.headers...)
}

type fakeCtx struct {
	w    webrtc.TrackLocalWriter
	ssrc webrtc.SSRC
}

func (c fakeCtx) CodecParameters() []webrtc.RTPCodecParameters {
	o := webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeOpus}}
	v := vp8Codec
	v.PayloadType = 100
	return []webrtc.RTPCodecParameters{o, v}
}
func (c fakeCtx) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c fakeCtx) SSRC() webrtc.SSRC                                      { return c.ssrc }
func (c fakeCtx) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c fakeCtx) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c fakeCtx) WriteStream() webrtc.TrackLocalWriter                   { return c.w }
func (c fakeCtx) ID() string                                             { return "ctx" }
func (c fakeCtx) RTCPReader() interceptor.RTCPReader                     { return nil }

func newVideoUp(plis *atomic.Int64) *UpTrack {
	return NewUpTrack(UpTrackOptions{
		Info:  TrackInfo{ID: "TR1", ParticipantID: "PA1", Kind: webrtc.RTPCodecTypeVideo, MimeType: MimeVP8},
		Codec: vp8Codec, KeyframeInterval: time.Hour,
		RequestKeyframe: func(uint32) error {
			if plis != nil {
				plis.Add(1)
			}
			return nil
		},
	})
}

// published wraps up tracks as the layers of one published track.
func published(ups ...*UpTrack) *PublishedTrack {
	pt := newPublishedTrack(ups[0].info, ups[0].codec)
	for i, u := range ups {
		pt.addLayer(i, u)
	}
	return pt
}

func bindDown(t testing.TB, up *UpTrack, w *fakeWriter, queue int) *DownTrack {
	t.Helper()
	return bindDownTo(t, published(up), w, queue)
}

func bindDownTo(t testing.TB, pt *PublishedTrack, w *fakeWriter, queue int) *DownTrack {
	t.Helper()
	d := NewDownTrack(pt, DownTrackOptions{QueueSize: queue})
	c, err := d.Bind(fakeCtx{w: w, ssrc: 4242})
	if err != nil {
		t.Fatal(err)
	}
	if c.PayloadType != 100 {
		t.Fatalf("bound payload type %d, want the subscriber's 100", c.PayloadType)
	}
	pt.attach(d)
	return d
}

// packetizer makes VP8 packets: frames of perFrame packets, the first a keyframe.
type packetizer struct {
	seq      uint16
	ts       uint32
	perFrame int
	frame    int
}

func (p *packetizer) frameAt(key bool) [][]byte {
	var out [][]byte
	p.ts += 3000
	for i := 0; i < p.perFrame; i++ {
		b := make([]byte, 12+6)
		b[0] = 0x80
		b[1] = 96
		if i == p.perFrame-1 {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint16(b[2:], p.seq)
		binary.BigEndian.PutUint32(b[4:], p.ts)
		binary.BigEndian.PutUint32(b[8:], 1234)
		if i == 0 {
			b[12] = 0x10
		}
		b[13] = 0x01
		if key {
			b[13] = 0x00
		}
		binary.BigEndian.PutUint32(b[14:], uint32(p.frame))
		p.seq++
		out = append(out, b)
	}
	p.frame++
	return out
}

func waitCount(t testing.TB, w *fakeWriter, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.n.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("writer got %d packets, want %d", w.n.Load(), n)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

func TestFanOutRewritesContinuously(t *testing.T) {
	var plis atomic.Int64
	up := newVideoUp(&plis)
	up.ssrc.Store(1234)
	w1, w2 := &fakeWriter{}, &fakeWriter{}
	d1 := bindDown(t, up, w1, 0)
	defer d1.Close()
	if plis.Load() != 1 {
		t.Fatalf("binding a video down track sent %d keyframe requests, want 1", plis.Load())
	}
	pz := &packetizer{seq: 65530, perFrame: 3}
	for _, b := range pz.frameAt(false) { // no keyframe yet: nothing forwarded
		up.handlePacket(b)
	}
	for f := 0; f < 10; f++ {
		for _, b := range pz.frameAt(f == 0) {
			up.handlePacket(b)
		}
	}
	d2 := bindDown(t, up, w2, 0) // joins mid-stream
	defer d2.Close()
	for f := 0; f < 5; f++ {
		for _, b := range pz.frameAt(f == 2) {
			up.handlePacket(b)
		}
	}
	waitCount(t, w1, 45)
	waitCount(t, w2, 9) // from the keyframe at frame 2 on
	for name, w := range map[string]*fakeWriter{"first": w1, "late": w2} {
		hs := w.written()
		for i, h := range hs {
			if h.SSRC != 4242 || h.PayloadType != 100 {
				t.Fatalf("%s: packet %d not rewritten: %+v", name, i, h)
			}
			if i > 0 && h.SequenceNumber != hs[i-1].SequenceNumber+1 {
				t.Fatalf("%s: sequence gap at %d: %d after %d", name, i, h.SequenceNumber, hs[i-1].SequenceNumber)
			}
			if i > 0 && h.Timestamp-hs[i-1].Timestamp != 0 && h.Timestamp-hs[i-1].Timestamp != 3000 {
				t.Fatalf("%s: timestamp step %d", name, h.Timestamp-hs[i-1].Timestamp)
			}
		}
	}
	if up.DownTrackCount() != 2 {
		t.Fatal("down track count")
	}
	up.RemoveDownTrack(d2)
	if up.DownTrackCount() != 1 {
		t.Fatal("remove failed")
	}
}

// A slow subscriber drops whole frames and never blocks the reader or the
// other subscribers.
func TestSlowSubscriberDropsWholeFrames(t *testing.T) {
	up := newVideoUp(nil)
	fast, slow := &fakeWriter{}, &fakeWriter{gate: make(chan struct{})}
	df := bindDown(t, up, fast, 4096) // never fills in this burst
	ds := bindDown(t, up, slow, 64)
	pz := &packetizer{perFrame: 5}
	const frames = 150 // 750 packets: within the cache, so only queue overflow drops
	done := make(chan struct{})
	go func() { // the reader: must finish although slow never writes
		for f := 0; f < frames; f++ {
			for _, b := range pz.frameAt(f%50 == 0) {
				up.handlePacket(b)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader was blocked by a slow subscriber")
	}
	waitCount(t, fast, frames*5)
	if ds.Stats().Dropped == 0 {
		t.Fatal("the slow subscriber dropped nothing")
	}
	close(slow.gate) // let the slow writer drain what it queued
	deadline := time.Now().Add(10 * time.Second)
	for st := ds.Stats(); st.Packets+st.Dropped < frames*5; st = ds.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("slow subscriber stuck: %+v", st)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	df.Close()
	ds.Close()
	// every frame the slow subscriber got is whole
	perTS := map[uint32]int{}
	for _, h := range slow.written() {
		perTS[h.Timestamp]++
	}
	for ts, n := range perTS {
		if n != 5 {
			var seqs []uint16
			for _, h := range slow.written() {
				if h.Timestamp == ts {
					seqs = append(seqs, h.SequenceNumber)
				}
			}
			t.Fatalf("frame %d: %d of 5 packets written: %v (%d frames)", ts, n, seqs, len(perTS))
		}
	}
	// dropped frames leave no sequence gap for the subscriber to NACK
	hs := slow.written()
	for i := 1; i < len(hs); i++ {
		if hs[i].SequenceNumber != hs[i-1].SequenceNumber+1 {
			t.Fatalf("sequence gap after dropped frames: %d then %d", hs[i-1].SequenceNumber, hs[i].SequenceNumber)
		}
	}
	t.Logf("slow subscriber: %d whole frames written, %d packets dropped", len(perTS), ds.Stats().Dropped)
}

func TestNACKServedFromCache(t *testing.T) {
	up := newVideoUp(nil)
	w := &fakeWriter{}
	d := bindDown(t, up, w, 0)
	defer d.Close()
	pz := &packetizer{seq: 100, perFrame: 4}
	for f := 0; f < 5; f++ {
		for _, b := range pz.frameAt(f == 0) {
			up.handlePacket(b)
		}
	}
	waitCount(t, w, 20)
	hs := w.written()
	lost := []uint16{hs[3].SequenceNumber, hs[7].SequenceNumber}
	d.HandleRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers(lost)},
		&rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{hs[0].SequenceNumber - 500})}})
	waitCount(t, w, 22)
	hs = w.written()
	if hs[20].SequenceNumber != lost[0] || hs[21].SequenceNumber != lost[1] || hs[20].Timestamp != hs[3].Timestamp {
		t.Fatalf("retransmissions %+v %+v", hs[20], hs[21])
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Stats().NACKsMissed != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", d.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if st := d.Stats(); st.Retransmissions != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeyframeRequestsCoalesce(t *testing.T) {
	var plis atomic.Int64
	up := newVideoUp(&plis)
	up.ssrc.Store(1)
	up.kf.interval = 50 * time.Millisecond
	for i := 0; i < 100; i++ {
		up.RequestKeyframe()
	}
	if plis.Load() != 1 {
		t.Fatalf("%d immediate PLIs", plis.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for plis.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the merged deferred PLI never went out")
		}
		time.Sleep(time.Millisecond)
	}
	if plis.Load() != 2 {
		t.Fatalf("%d PLIs, want 2", plis.Load())
	}
}

func TestKeyframeLimiter(t *testing.T) {
	k := keyframeLimiter{interval: time.Second}
	t0 := time.Unix(1000, 0)
	if send, _ := k.request(t0); !send {
		t.Fatal("first request not sent")
	}
	send, delay := k.request(t0.Add(200 * time.Millisecond))
	if send || delay != 800*time.Millisecond {
		t.Fatalf("second request: send=%v delay=%v", send, delay)
	}
	if send, delay := k.request(t0.Add(300 * time.Millisecond)); send || delay != 0 {
		t.Fatal("third request should merge into the pending one")
	}
	if !k.fire(t0.Add(time.Second)) {
		t.Fatal("the deferred request did not fire")
	}
	if k.fire(t0.Add(time.Second)) {
		t.Fatal("fired twice")
	}
	if send, delay := k.request(t0.Add(1500 * time.Millisecond)); send || delay != 500*time.Millisecond {
		t.Fatalf("after fire: send=%v delay=%v", send, delay)
	}
	if send, _ := (&keyframeLimiter{interval: time.Second, last: t0}).request(t0.Add(2 * time.Second)); !send {
		t.Fatal("request after the interval not sent")
	}
	// an immediate request cancels a pending deferred one
	k2 := keyframeLimiter{interval: time.Second}
	k2.request(t0)
	k2.request(t0.Add(100 * time.Millisecond))
	if send, _ := k2.request(t0.Add(1100 * time.Millisecond)); !send {
		t.Fatal("request after the interval not sent")
	}
	if k2.fire(t0.Add(1100 * time.Millisecond)) {
		t.Fatal("the deferred request fired after an immediate one")
	}
}

func TestBindRejectsUnsupportedCodec(t *testing.T) {
	up := NewUpTrack(UpTrackOptions{Info: TrackInfo{ID: "x", Kind: webrtc.RTPCodecTypeVideo},
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeH264}}})
	d := NewDownTrack(published(up), DownTrackOptions{})
	defer d.Close()
	// binding succeeds (failing would fail the subscriber's whole
	// negotiation) but the track never forwards
	if _, err := d.Bind(fakeCtx{w: &fakeWriter{}}); err != nil {
		t.Fatal(err)
	}
	if d.bound.Load() {
		t.Fatal("H264 bound to a VP8-only subscriber")
	}
}

func TestH264Compatible(t *testing.T) {
	a := "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	if !h264Compatible(a, "profile-level-id=42e034;packetization-mode=1") {
		t.Fatal("same profile, other level should match")
	}
	if h264Compatible(a, "profile-level-id=42e01f") {
		t.Fatal("packetization modes differ")
	}
	if h264Compatible(a, "packetization-mode=1;profile-level-id=640c1f") {
		t.Fatal("profiles differ")
	}
}

// Publishers probe their uplink with RTX copies of packets already sent: a
// packet the cache holds is not forwarded again, one older than the cache
// reaches is not stored (it would overwrite a newer one), and a missing one
// (a retransmission the SFU asked for) is forwarded.
func TestUpTrackDropsDuplicates(t *testing.T) {
	up := newVideoUp(nil)
	up.ssrc.Store(1234)
	w := &fakeWriter{}
	d := bindDown(t, up, w, 0)
	defer d.Close()
	pz := &packetizer{seq: 100, perFrame: 2}
	var sent [][]byte
	for f := 0; f < 4; f++ {
		sent = append(sent, pz.frameAt(f == 0)...)
	}
	missing := sent[5] // lost on the way in, asked for again later
	for i, b := range sent {
		if i != 5 {
			up.handlePacket(b)
		}
	}
	waitCount(t, w, 7)
	up.handlePacket(sent[1]) // an RTX padding copy of a packet we have
	up.handlePacket(sent[0])
	up.handlePacket(missing) // the retransmission that repairs the gap
	waitCount(t, w, 8)
	// far behind the newest: older than the cache can hold
	old := append([]byte(nil), sent[2]...)
	binary.BigEndian.PutUint16(old[2:], 100-uint16(up.cache.Size()))
	up.handlePacket(old)
	// a frame after them all: once it is out, nothing else can be queued
	for _, b := range pz.frameAt(false) {
		up.handlePacket(b)
	}
	waitCount(t, w, 10)
	if got := w.n.Load(); got != 10 {
		t.Fatalf("forwarded %d packets, want 10 (7 first sent, the repair, the last frame)", got)
	}
	if st := up.Stats(); st.Duplicates != 3 {
		t.Fatalf("counted %d duplicates, want 3", st.Duplicates)
	}
	if _, ok := up.cache.Header(100 - uint16(up.cache.Size())); ok {
		t.Fatal("a packet older than the cache was stored")
	}
}

// A track an operator muted forwards nothing; once unmuted it resumes at a
// keyframe with sequence numbers that continue without a gap (a gap would
// be NACKed back into the muted media).
func TestBlockedTrackResumesAtKeyframe(t *testing.T) {
	up := newVideoUp(nil)
	up.ssrc.Store(1234)
	w := &fakeWriter{}
	pt := published(up)
	d := bindDownTo(t, pt, w, 0)
	defer d.Close()
	pz := &packetizer{seq: 1, perFrame: 2}
	for f := 0; f < 3; f++ {
		for _, b := range pz.frameAt(f == 0) {
			up.handlePacket(b)
		}
	}
	waitCount(t, w, 6)
	pt.blocked.Store(true)
	for f := 0; f < 3; f++ {
		for _, b := range pz.frameAt(false) {
			up.handlePacket(b)
		}
	}
	pt.blocked.Store(false)
	for _, b := range pz.frameAt(false) { // a delta frame: not decodable, not sent
		up.handlePacket(b)
	}
	for _, b := range pz.frameAt(true) {
		up.handlePacket(b)
	}
	waitCount(t, w, 8)
	hs := w.written()
	if len(hs) != 8 {
		t.Fatalf("%d packets written, want 6 before the mute and the 2 of the keyframe after", len(hs))
	}
	for i := 1; i < len(hs); i++ {
		if hs[i].SequenceNumber != hs[i-1].SequenceNumber+1 {
			t.Fatalf("gap after the mute: %d then %d", hs[i-1].SequenceNumber, hs[i].SequenceNumber)
		}
	}
}
