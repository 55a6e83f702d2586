package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/simulcast"
)

// ErrCodecMismatch is returned by Bind when the subscriber cannot decode the
// publisher's codec.
var ErrCodecMismatch = errors.New("sfu: subscriber does not support the track's codec")

// DownTrackStats are counters of one outgoing stream.
type DownTrackStats struct {
	Packets         uint64
	Dropped         uint64 // dropped because the subscriber was too slow
	Retransmissions uint64 // packets resent in answer to NACKs
	NACKsMissed     uint64 // NACKed packets no longer in the cache
	KeyframeAsks    uint64 // PLI/FIR received from the subscriber
}

// DownTrack forwards one up track to one subscriber. It implements
// webrtc.TrackLocal. Packets reach it as references (header fields; the
// payload stays in the up track's cache); its own writer goroutine copies the
// payload into a per-write buffer, rewrites the header and writes it, so a
// slow subscriber never blocks the publisher's reader: when the queue fills,
// whole video frames are dropped.
type DownTrack struct {
	up      *UpTrack
	id      string
	stream  string
	isVideo bool
	log     *slog.Logger

	queue chan CachedPacket
	nacks chan []uint16
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	bound   atomic.Bool
	binding atomic.Pointer[binding]

	// enqueue state, owned by the up track's reader goroutine
	dropping      bool
	dropThreshold int

	// writer state, owned by the writer goroutine
	rw        simulcast.Rewriter
	lastKFAsk time.Time
	stale     bool       // a packet of the current frame was gone from the cache
	hdr       rtp.Header // reused for every write: writers consume it synchronously

	packets, dropped, rtx, nackMiss, kfAsks atomic.Uint64
}

// binding is what Bind negotiated: where and how to write.
type binding struct {
	writer webrtc.TrackLocalWriter
	ssrc   uint32
	pt     uint8
}

// DownTrackOptions configures a DownTrack.
type DownTrackOptions struct {
	// QueueSize is the number of packets that may wait for the writer
	// (default 512 for video, 64 for audio).
	QueueSize int
	Logger    *slog.Logger
}

// NewDownTrack creates a down track of up for a subscriber and starts its
// writer goroutine. It forwards nothing until it is bound to a
// PeerConnection and attached to up with up.AddDownTrack.
func NewDownTrack(up *UpTrack, o DownTrackOptions) *DownTrack {
	if o.QueueSize == 0 {
		o.QueueSize = 64
		if up.isVideo {
			o.QueueSize = 512
		}
	}
	if o.Logger == nil {
		o.Logger = up.log
	}
	d := &DownTrack{
		up:            up,
		id:            up.info.ID,
		stream:        up.info.ParticipantID,
		isVideo:       up.isVideo,
		log:           o.Logger,
		queue:         make(chan CachedPacket, o.QueueSize),
		nacks:         make(chan []uint16, 16),
		done:          make(chan struct{}),
		dropThreshold: o.QueueSize / 2,
	}
	d.wg.Add(1)
	go d.writeLoop()
	return d
}

// ID is the track ID seen by the subscriber (the up track's ID).
func (d *DownTrack) ID() string { return d.id }

// RID is empty: a down track is one stream.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's participant ID, so that a subscriber can group
// a participant's audio and video.
func (d *DownTrack) StreamID() string { return d.stream }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.up.info.Kind }

// UpTrack is the track this down track forwards.
func (d *DownTrack) UpTrack() *UpTrack { return d.up }

// Bind is called by pion when the subscriber's PeerConnection has negotiated
// this track; it picks the subscriber's payload type for the publisher's
// codec. When the subscriber accepted none that carries it, the track is
// bound but never forwards: failing Bind would fail the whole negotiation
// and cut the subscriber's other tracks.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	for _, c := range codecs {
		if !codecCarries(c, d.up.codec) {
			continue
		}
		d.binding.Store(&binding{writer: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)})
		d.bound.Store(true)
		if d.isVideo {
			d.up.RequestKeyframe()
		}
		return c, nil
	}
	d.log.Warn("subscriber cannot decode the track's codec", "codec", d.up.codec.MimeType)
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: %s", ErrCodecMismatch, d.up.codec.MimeType)
	}
	return codecs[0], nil
}

// Unbind stops forwarding.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.bound.Store(false)
	return nil
}

// Stats returns the track's counters.
func (d *DownTrack) Stats() DownTrackStats {
	return DownTrackStats{
		Packets: d.packets.Load(), Dropped: d.dropped.Load(), Retransmissions: d.rtx.Load(),
		NACKsMissed: d.nackMiss.Load(), KeyframeAsks: d.kfAsks.Load(),
	}
}

// Close stops the writer goroutine and waits for it. The caller removes the
// down track from its up track first.
func (d *DownTrack) Close() {
	d.once.Do(func() { close(d.done) })
	d.wg.Wait()
}

// enqueue hands a packet reference to the writer without blocking. It is
// called only by the up track's reader goroutine. A video frame is dropped
// whole when the queue is more than half full at its first packet, and the
// rest of a frame is dropped when the queue overflows in its middle.
func (d *DownTrack) enqueue(p CachedPacket) {
	if !d.bound.Load() {
		return
	}
	if p.FrameStart {
		d.dropping = d.isVideo && len(d.queue) >= d.dropThreshold
	}
	if d.dropping {
		d.dropped.Add(1)
		return
	}
	select {
	case d.queue <- p:
	default:
		d.dropped.Add(1)
		d.dropping = d.isVideo
	}
}

func (d *DownTrack) writeLoop() {
	defer d.wg.Done()
	buf := make([]byte, maxPacketSize)
	for {
		select {
		case <-d.done:
			return
		case p := <-d.queue:
			d.forward(p, buf)
		case seqs := <-d.nacks:
			d.retransmit(seqs, buf)
		}
	}
}

func (d *DownTrack) forward(p CachedPacket, buf []byte) {
	if !d.rw.Started() {
		if !p.Keyframe {
			d.askKeyframe()
			return
		}
		d.rw.Start(p.SeqNum, p.Timestamp, uint16(rand.Uint32()), rand.Uint32())
	}
	if p.FrameStart {
		d.stale = false
	}
	hdr, n, ok := d.up.cache.Get(p.SeqNum, buf)
	if !ok || d.stale {
		// The writer fell so far behind that the packet was overwritten:
		// drop the rest of its frame too rather than send a partial frame.
		d.stale = d.isVideo
		d.dropped.Add(1)
		return
	}
	seq, ts := d.rw.Rewrite(hdr.SeqNum, hdr.Timestamp)
	if d.write(hdr, seq, ts, buf[:n]) {
		d.packets.Add(1)
	}
}

func (d *DownTrack) askKeyframe() {
	now := time.Now()
	if now.Sub(d.lastKFAsk) < 100*time.Millisecond {
		return
	}
	d.lastKFAsk = now
	d.up.RequestKeyframe()
}

func (d *DownTrack) retransmit(seqs []uint16, buf []byte) {
	for _, out := range seqs {
		in, ok := d.rw.Reverse(out)
		if !ok {
			continue
		}
		hdr, n, ok := d.up.cache.Get(in, buf)
		if !ok {
			d.nackMiss.Add(1)
			continue
		}
		seq, ts := d.rw.Rewrite(hdr.SeqNum, hdr.Timestamp)
		if d.write(hdr, seq, ts, buf[:n]) {
			d.rtx.Add(1)
		}
	}
}

func (d *DownTrack) write(hdr CachedPacket, seq uint16, ts uint32, payload []byte) bool {
	b := d.binding.Load()
	if b == nil {
		return false
	}
	d.hdr = rtp.Header{
		Version:        2,
		Padding:        hdr.PaddingSize > 0,
		PaddingSize:    hdr.PaddingSize,
		Marker:         hdr.Marker,
		PayloadType:    b.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           b.ssrc,
	}
	_, err := b.writer.WriteRTP(&d.hdr, payload)
	return err == nil
}

// HandleRTCP processes RTCP from the subscriber about this track: NACKs are
// answered from the up track's cache by the writer goroutine, PLI and FIR
// become (coalesced) keyframe requests to the publisher.
func (d *DownTrack) HandleRTCP(pkts []rtcp.Packet) {
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			d.kfAsks.Add(1)
			d.up.RequestKeyframe()
		case *rtcp.TransportLayerNack:
			var seqs []uint16
			for _, pair := range p.Nacks {
				seqs = append(seqs, pair.PacketList()...)
			}
			select {
			case d.nacks <- seqs:
			case <-d.done:
			default: // writer is saturated: the subscriber will ask again
			}
		}
	}
}

// RTCPLoop reads RTCP for this track from its sender until the sender stops.
// Reading is also what drives pion's interceptors (sender reports).
func (d *DownTrack) RTCPLoop(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		d.HandleRTCP(pkts)
	}
}

// h264Compatible reports whether two H264 fmtp lines describe the same
// packetization mode and profile.
func h264Compatible(a, b string) bool {
	get := func(fmtp, key string) string {
		for _, kv := range strings.Split(fmtp, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			if strings.EqualFold(k, key) {
				return strings.ToLower(v)
			}
		}
		return ""
	}
	pm := func(s string) string {
		if v := get(s, "packetization-mode"); v != "" {
			return v
		}
		return "0"
	}
	prof := func(s string) string {
		v := get(s, "profile-level-id")
		if len(v) >= 4 {
			return v[:4]
		}
		return v
	}
	return pm(a) == pm(b) && prof(a) == prof(b)
}
