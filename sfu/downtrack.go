package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	RTXPackets      uint64 // of those, sent on the RTX stream (RFC 4588)
	NACKsMissed     uint64 // NACKed packets no longer in the cache
	NACKsStale      uint64 // NACKed packets too old or resent too often already
	NACKsOverBudget uint64 // NACKs not answered: the connection's retransmission budget was spent
	KeyframeAsks    uint64 // PLI/FIR received from the subscriber
	LayerSwitches   uint64
	PaddingPackets  uint64 // sent to probe for bandwidth
	FECPackets      uint64 // FEC packets sent (ULPFEC or FlexFEC)
}

// DownTrack forwards one published track to one subscriber, one simulcast
// layer at a time. It implements webrtc.TrackLocal. Packets reach it as
// references (header fields; the payload stays in the layer's cache); its own
// writer goroutine copies the payload into a per-write buffer, rewrites the
// header and writes it, so a slow subscriber never blocks the publisher's
// readers: when the queue fills, whole video frames are dropped.
//
// Layer switches: SetTargetLayer names the layer wanted; the current layer
// keeps flowing until the target layer's next keyframe arrives, and the
// switch happens on that packet.
type DownTrack struct {
	src     *PublishedTrack
	id      string
	stream  string
	isVideo bool
	log     *slog.Logger
	// preferFlex: DownTrackOptions.PreferFlexFEC
	preferFlex bool

	queue chan queued
	ctrl  chan ctrlMsg // NACKs and probes, to the writer
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	bound   atomic.Bool
	binding atomic.Pointer[binding]
	current atomic.Int32 // layer being forwarded, -1 before the first keyframe
	target  atomic.Int32 // layer wanted
	paused  atomic.Bool
	pref    atomic.Int32           // the subscriber's maximum layer, -1 when it paused the track
	reason  atomic.Pointer[string] // why the target is what it is
	onLayer func(layer int, reason string)

	// enqueue state: several layer readers may call enqueue, so it is
	// guarded by emu (only packets of the current and target layers get there)
	emu           sync.Mutex
	dropping      bool
	waitKey       bool // video frames were dropped: resume at a keyframe
	dropThreshold int
	lastKFAsk     time.Time

	// writer state, owned by the writer goroutine
	rw        simulcast.Rewriter
	munger    simulcast.Munger // nil: the codec has no numbering to rewrite
	resync    bool             // packets were lost to the cache: resume at a keyframe
	resyncAsk time.Time        // when a keyframe was last asked for the resync
	hdr       rtp.Header       // reused for every write: writers consume it synchronously
	lastWrite time.Time
	layerOf   int // layer of the last packet written
	rtxAt     [rtxRecords]rtxRecord
	repeats   []rtxRepeat // copies of retransmissions still to send
	rtxSeq    uint16      // sequence number of the RTX stream

	audio        atomic.Pointer[audioState] // set by Bind for audio
	fec          atomic.Pointer[fecState]   // set by Bind for video when FEC was negotiated
	loss         atomic.Uint64              // float64 bits: the subscriber's loss (receiver reports)
	inherentLoss atomic.Pointer[float64]    // nil: not estimated (see lossRate)
	pathLoss     atomic.Uint64              // float64 bits: the connection's loss (SetPathLoss)
	rtt          atomic.Int64               // nanoseconds, from receiver reports
	// lossSmooth is owned by the RTCP reader (the only caller of HandleRTCP)
	lossSmooth float64
	probing    probeReq
	probeAt    time.Time
	probeBank  float64 // bytes of padding owed
	inFrame    bool    // the last packet written did not end its frame

	budget *RetransmitBudget // nil: unbounded
	lastSR *SenderReport     // the last one passed to a SenderReportWriter (writer goroutine)

	packets, dropped, rtx, nackMiss, kfAsks, switches, padded atomic.Uint64
	rtxStale, rtxOverBudget, rtxStream, fecSent               atomic.Uint64
}

// queued is one packet reference waiting for the writer.
type queued struct {
	p       CachedPacket
	layer   int8
	switch_ bool // first packet of a new layer: re-anchor the rewriting
	skip    bool // p.SeqNum is not media (a publisher's FEC packet): close its gap
}

// ctrlMsg is a NACK (seqs) or a probe request for the writer.
type ctrlMsg struct {
	nack  []uint16
	probe probeReq
}

// probeReq asks the writer to add rate bits per second of duplicate packets
// until until, to let the bandwidth estimator test a higher rate.
type probeReq struct {
	rate  int
	until time.Time
}

// Probe makes the down track send rate bits per second more than its media
// for dur, as padding-only packets sent along with the media it forwards.
func (d *DownTrack) Probe(rate int, dur time.Duration) {
	select {
	case d.ctrl <- ctrlMsg{probe: probeReq{rate: rate, until: time.Now().Add(dur)}}:
	default:
	}
}

// binding is what Bind negotiated: where and how to write.
type binding struct {
	writer webrtc.TrackLocalWriter
	ssrc   uint32
	pt     uint8
	// retransmissions go on their own stream when the subscriber
	// negotiated RTX (RFC 4588); rtxSSRC 0: resent on the media stream
	rtxSSRC uint32
	rtxPT   uint8
}

// DownTrackOptions configures a DownTrack.
type DownTrackOptions struct {
	// QueueSize is the number of packets that may wait for the writer
	// (default 512 for video, 64 for audio).
	QueueSize int
	// Layer is the initial target layer (default: the highest).
	Layer int
	// OnLayer is called (from a media goroutine: it must not block) when
	// the forwarded layer changes; -1 means nothing is forwarded (paused).
	OnLayer func(layer int, reason string)
	// Retransmit bounds the retransmissions of the subscriber's connection
	// (shared by its down tracks); nil: unbounded.
	Retransmit *RetransmitBudget
	// PreferFlexFEC protects video with FlexFEC rather than ULPFEC in RED
	// when the subscriber negotiated both (videofec.go).
	PreferFlexFEC bool
	Logger        *slog.Logger
}

// NewDownTrack creates a down track of src for a subscriber and starts its
// writer goroutine. It forwards nothing until it is bound to a
// PeerConnection and attached to src.
func NewDownTrack(src *PublishedTrack, o DownTrackOptions) *DownTrack {
	isVideo := src.info.Kind == webrtc.RTPCodecTypeVideo
	if o.QueueSize == 0 {
		o.QueueSize = 64
		if isVideo {
			o.QueueSize = 512
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Layer == 0 && isVideo {
		o.Layer = MaxLayers - 1
	}
	d := &DownTrack{
		src:           src,
		id:            src.info.ID,
		stream:        src.info.ParticipantID,
		isVideo:       isVideo,
		munger:        simulcast.NewMunger(src.codec.MimeType),
		log:           o.Logger.With("track", src.info.ID),
		queue:         make(chan queued, o.QueueSize),
		ctrl:          make(chan ctrlMsg, 16),
		done:          make(chan struct{}),
		dropThreshold: o.QueueSize / 2,
		onLayer:       o.OnLayer,
		budget:        o.Retransmit,
		preferFlex:    o.PreferFlexFEC,
	}
	if d.onLayer == nil {
		d.onLayer = func(int, string) {}
	}
	d.current.Store(-1)
	d.target.Store(int32(o.Layer))
	d.pref.Store(MaxLayers - 1)
	reason := simulcast.ReasonBest
	d.reason.Store(&reason)
	d.wg.Add(1)
	go d.writeLoop()
	return d
}

// ID is the track ID seen by the subscriber (the published track's ID).
func (d *DownTrack) ID() string { return d.id }

// RID is empty: a down track is one stream whatever the layer.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's participant ID, so that a subscriber can group
// a participant's audio and video.
func (d *DownTrack) StreamID() string { return d.stream }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.src.info.Kind }

// Source is the published track this down track forwards.
func (d *DownTrack) Source() *PublishedTrack { return d.src }

// CurrentLayer is the layer being forwarded (-1 before the first keyframe).
func (d *DownTrack) CurrentLayer() int { return int(d.current.Load()) }

// TargetLayer is the layer the down track is switching to (or is on).
func (d *DownTrack) TargetLayer() int { return int(d.target.Load()) }

// SetTargetLayer asks for layer l (for reason, reported with the layer
// change): forwarding moves to it at its next keyframe, which is requested
// from the publisher (once per layer however many subscribers ask). A
// negative l pauses the track.
func (d *DownTrack) SetTargetLayer(l int, reason string) {
	old := d.reason.Swap(&reason)
	if l < 0 {
		if !d.paused.Swap(true) {
			d.emu.Lock()
			d.current.Store(-1)
			d.emu.Unlock()
			d.onLayer(-1, reason)
		}
		return
	}
	if l >= MaxLayers {
		l = MaxLayers - 1
	}
	wasPaused := d.paused.Swap(false)
	if d.target.Swap(int32(l)) == int32(l) && !wasPaused {
		if cur := d.CurrentLayer(); cur >= 0 && cur == d.wantedLayer() && (old == nil || *old != reason) {
			d.onLayer(cur, reason) // same layer, new reason
		}
		return
	}
	if w := d.wantedLayer(); w >= 0 && int(d.current.Load()) != w && d.bound.Load() {
		d.src.Layer(w).RequestKeyframe()
	}
}

// Reason says why the target layer is what it is.
func (d *DownTrack) Reason() string {
	if r := d.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// Bind is called by pion when the subscriber's PeerConnection has negotiated
// this track; it picks the subscriber's payload type for the publisher's
// codec. When the subscriber accepted none that carries it, the track is
// bound but never forwards: failing Bind would fail the whole negotiation
// and cut the subscriber's other tracks.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	if !d.isVideo && isAudioPair(d.src.codec.MimeType, d.src.codec.MimeType) {
		if c, mode, opusPT, ok := chooseAudio(d.src.codec, codecs); ok {
			d.setupAudio(mode, opusPT)
			d.binding.Store(&binding{writer: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)})
			d.bound.Store(true)
			return c, nil
		}
	}
	for _, c := range codecs {
		if !codecCarries(c, d.src.codec) {
			continue
		}
		b := &binding{writer: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)}
		if rtxSSRC := uint32(ctx.SSRCRetransmission()); rtxSSRC != 0 {
			apt := fmt.Sprintf("apt=%d", c.PayloadType)
			for _, r := range codecs {
				if strings.EqualFold(r.MimeType, webrtc.MimeTypeRTX) && fmtpHas(r.SDPFmtpLine, apt) {
					b.rtxSSRC, b.rtxPT = rtxSSRC, uint8(r.PayloadType)
				}
			}
		}
		if d.isVideo {
			d.setupFEC(ctx)
		}
		d.binding.Store(b)
		d.bound.Store(true)
		if w := d.wantedLayer(); w >= 0 && d.isVideo {
			d.src.Layer(w).RequestKeyframe()
		}
		return c, nil
	}
	d.log.Warn("subscriber cannot decode the track's codec", "codec", d.src.codec.MimeType)
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: %s", ErrCodecMismatch, d.src.codec.MimeType)
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
		Packets: d.packets.Load(), Dropped: d.dropped.Load(), Retransmissions: d.rtx.Load(), RTXPackets: d.rtxStream.Load(),
		NACKsMissed: d.nackMiss.Load(), NACKsStale: d.rtxStale.Load(), NACKsOverBudget: d.rtxOverBudget.Load(), KeyframeAsks: d.kfAsks.Load(), LayerSwitches: d.switches.Load(),
		PaddingPackets: d.padded.Load(), FECPackets: d.fecSent.Load(),
	}
}

// Close stops the writer goroutine and waits for it. The caller detaches
// the down track from its source first.
func (d *DownTrack) Close() {
	d.once.Do(func() { close(d.done) })
	d.wg.Wait()
}

// enqueue hands a packet reference of one layer to the writer without
// blocking. It is called by the layers' reader goroutines. Packets of layers
// other than the current one are ignored, except the target layer's
// keyframe, which switches. A video frame is dropped whole when the queue is
// more than half full at its first packet, and the rest of a frame is
// dropped when the queue overflows in its middle.
func (d *DownTrack) enqueue(layer int, p CachedPacket) {
	if !d.bound.Load() || d.paused.Load() {
		return
	}
	if d.src.blocked.Load() {
		// muted by an operator: nothing goes out, and the stream resumes
		// at a keyframe, re-anchored (no gap for the subscriber to NACK
		// back into the blocked media)
		d.emu.Lock()
		d.waitKey = true
		d.emu.Unlock()
		return
	}
	cur, tgt := int(d.current.Load()), d.wantedLayer()
	if layer != cur && layer != tgt {
		return
	}
	d.emu.Lock()
	defer d.emu.Unlock()
	if d.paused.Load() { // paused while this packet was on its way here
		return
	}
	sw := false
	if cur = int(d.current.Load()); layer != cur {
		if !p.Keyframe || !p.FrameStart {
			d.askKeyframeLocked(layer)
			return
		}
		d.current.Store(int32(layer))
		d.dropping = false
		sw = true
		d.log.Debug("layer switch", "from", cur, "to", layer)
		if cur >= 0 {
			d.switches.Add(1)
		}
		if d.isVideo {
			d.onLayer(layer, d.Reason())
		}
	}
	if d.waitKey {
		// After dropped frames the next ones cannot be decoded: resume at a
		// keyframe, with the sequence numbers re-anchored so that the
		// subscriber sees no gap to NACK.
		if !p.Keyframe || !p.FrameStart {
			d.dropped.Add(1)
			d.askKeyframeLocked(layer)
			return
		}
		sw = true
	}
	if p.FrameStart {
		d.dropping = d.isVideo && len(d.queue) >= d.dropThreshold
	}
	if d.dropping {
		d.dropVideoLocked(layer)
		return
	}
	select {
	case d.queue <- queued{p: p, layer: int8(layer), switch_: sw}:
		d.waitKey = false
	default:
		if d.isVideo {
			d.dropping = true
			d.dropVideoLocked(layer)
		} else {
			d.dropped.Add(1)
		}
	}
}

// skip tells the writer that the source's sequence number seq of layer
// is not media (a publisher's FEC packet, consumed by the SFU): it is taken
// out of the outgoing numbering, so the subscriber sees no gap to NACK. A
// skip that cannot be queued is lost: the subscriber then sees a gap that
// is never filled, which costs it a few NACKs.
func (d *DownTrack) skip(layer int, seq uint16) {
	if !d.bound.Load() || d.paused.Load() || layer != int(d.current.Load()) {
		return
	}
	d.emu.Lock()
	defer d.emu.Unlock()
	if d.waitKey || d.dropping {
		return
	}
	select {
	case d.queue <- queued{p: CachedPacket{SeqNum: seq}, layer: int8(layer), skip: true}:
	default:
	}
}

// dropVideoLocked drops a video packet and makes the down track wait for
// the next keyframe, which it asks for.
func (d *DownTrack) dropVideoLocked(layer int) {
	d.dropped.Add(1)
	if !d.waitKey {
		d.waitKey = true
		d.lastKFAsk = time.Time{}
		d.log.Debug("dropping video until a keyframe", "layer", layer, "queued", len(d.queue))
	}
	d.askKeyframeLocked(layer)
}

// wantedLayer is the target layer if the publisher sends it, else the
// nearest existing layer below it, else above it.
func (d *DownTrack) wantedLayer() int {
	t := int(d.target.Load())
	for l := t; l >= 0; l-- {
		if d.src.layers[l].Load() != nil {
			return l
		}
	}
	for l := t + 1; l < MaxLayers; l++ {
		if d.src.layers[l].Load() != nil {
			return l
		}
	}
	return -1
}

// askKeyframeLocked asks layer l for a keyframe, at most every 100 ms from
// this down track (the up track merges requests from all subscribers).
func (d *DownTrack) askKeyframeLocked(l int) {
	now := time.Now()
	if now.Sub(d.lastKFAsk) < 100*time.Millisecond {
		return
	}
	d.lastKFAsk = now
	if u := d.src.Layer(l); u != nil {
		u.RequestKeyframe()
	}
}

// padInterval paces a probe's padding between frames, so a probe's rate
// does not depend on the frame rate.
const padInterval = 5 * time.Millisecond

func (d *DownTrack) writeLoop() {
	defer d.wg.Done()
	buf := make([]byte, maxPacketSize+2) // +2: room for an RTX header
	var pacer *time.Ticker
	var tick <-chan time.Time // nil unless a probe runs or copies of resends are due
	defer func() {
		if pacer != nil {
			pacer.Stop()
		}
	}()
	startPacer := func() {
		if pacer == nil {
			pacer = time.NewTicker(padInterval)
		} else {
			pacer.Reset(padInterval)
		}
		tick = pacer.C
	}
	for {
		select {
		case <-d.done:
			return
		case q := <-d.queue:
			d.forward(q, buf)
			// drain what else is queued with plain receives, cheaper than
			// another select; control messages wait at most a batch
			for i := 0; i < 64 && len(d.queue) > 0; i++ {
				d.forward(<-d.queue, buf)
			}
		case m := <-d.ctrl:
			if m.nack != nil {
				d.retransmit(m.nack, buf)
				if len(d.repeats) > 0 && tick == nil {
					startPacer()
				}
				continue
			}
			d.probing, d.probeAt, d.probeBank = m.probe, time.Now(), 0
			if m.probe.rate <= 0 {
				continue // stopped: the pacer stops at its next tick
			}
			startPacer()
		case now := <-tick:
			if len(d.repeats) > 0 {
				d.sendRepeats(now, buf)
			}
			if d.probing.rate == 0 {
				if len(d.repeats) == 0 {
					pacer.Stop()
					tick = nil
				}
				continue
			}
			if !d.inFrame {
				d.pad(now)
			}
		}
	}
}

func (d *DownTrack) forward(q queued, buf []byte) {
	p := q.p
	if q.skip {
		if int(q.layer) == d.layerOf && !d.resync {
			d.rw.Skip(p.SeqNum)
		}
		return
	}
	up := d.src.Layer(int(q.layer))
	if up == nil {
		d.dropped.Add(1)
		return
	}
	hdr, n, ok := up.cache.Get(p.SeqNum, buf)
	if !ok {
		// The writer fell so far behind that the packet was overwritten:
		// drop until the next keyframe rather than send undecodable frames.
		d.dropped.Add(1)
		if d.isVideo && !d.resync {
			d.resync = true
			d.log.Debug("packet gone from the cache: waiting for a keyframe", "layer", q.layer)
			up.RequestKeyframe()
		}
		return
	}
	switched := q.switch_
	if d.resync {
		if !p.Keyframe || !p.FrameStart {
			d.dropped.Add(1)
			if now := time.Now(); now.Sub(d.resyncAsk) > 300*time.Millisecond {
				d.resyncAsk = now // ask again: the first request may be lost
				up.RequestKeyframe()
			}
			return
		}
		d.resync, switched = false, true
	}
	now := time.Now()
	if switched {
		if !d.rw.Started() {
			d.rw.Start(hdr.SeqNum, hdr.Timestamp, uint16(rand.Uint32()), rand.Uint32())
		} else {
			d.rw.SwitchSource(hdr.SeqNum, hdr.Timestamp, d.tsGap(now))
		}
		if d.munger != nil {
			d.munger.Switch(buf[:n])
		}
		d.layerOf = int(q.layer)
	} else if int(q.layer) != d.layerOf {
		d.dropped.Add(1) // a straggler of the previous layer
		return
	}
	d.lastWrite = now
	if d.isVideo {
		d.send(hdr, buf[:n], &d.packets)
	} else {
		d.sendAudio(hdr, buf[:n])
	}
	d.inFrame = d.isVideo && !hdr.Marker
	d.passSenderReport(up)
	if d.probing.rate > 0 && hdr.Marker {
		// only between frames: a padding packet inside a frame's sequence
		// range makes the frame unassemblable for the receiver
		d.pad(now)
	}
}

// tsGap is the timestamp advance across a layer switch: the wall-clock
// time since the last packet written, at least one tick.
func (d *DownTrack) tsGap(now time.Time) uint32 {
	rate := d.src.codec.ClockRate
	if rate == 0 {
		rate = 90000
	}
	gap := uint32(now.Sub(d.lastWrite).Seconds() * float64(rate))
	if d.lastWrite.IsZero() || gap == 0 {
		gap = 1
	}
	return gap
}

// send rewrites and writes one packet whose payload is in payload.
func (d *DownTrack) send(hdr CachedPacket, payload []byte, counter *atomic.Uint64) {
	seq, ts, ok := d.rw.Rewrite(hdr.SeqNum, hdr.Timestamp)
	if !ok { // too late: its number may belong to another packet by now
		d.dropped.Add(1)
		return
	}
	if d.munger != nil {
		d.munger.Munge(payload)
	}
	if d.isVideo {
		if d.writeVideo(hdr, seq, ts, payload) {
			counter.Add(1)
		}
	} else if d.write(hdr, seq, ts, payload) {
		counter.Add(1)
	}
}

// paddingSize is the padding of one probe packet (the most RTP allows).
const paddingSize = 255

// pad sends padding-only packets while a probe runs, inserted into the
// outgoing sequence (receivers drop them after counting them, which is
// what the bandwidth estimator needs).
func (d *DownTrack) pad(now time.Time) {
	if now.After(d.probing.until) {
		d.probing = probeReq{}
		return
	}
	d.probeBank += float64(d.probing.rate) / 8 * now.Sub(d.probeAt).Seconds()
	d.probeAt = now
	if !d.rw.Started() {
		return // nothing forwarded yet: padding would start the numbering
	}
	b := d.binding.Load()
	if b == nil {
		return
	}
	for i := 0; i < 32 && d.probeBank >= paddingSize; i++ {
		// on the media stream: pion receivers do not count padding sent on
		// an RTX stream in their bandwidth feedback
		seq, ts := d.rw.Insert()
		d.hdr = rtp.Header{Version: 2, Padding: true, PaddingSize: paddingSize,
			PayloadType: b.pt, SequenceNumber: seq, Timestamp: ts, SSRC: b.ssrc}
		if _, err := b.writer.WriteRTP(&d.hdr, nil); err != nil {
			return
		}
		d.probeBank -= paddingSize + 12
		d.padded.Add(1)
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
			d.log.Debug("subscriber asks for a keyframe", "layer", d.CurrentLayer())
			if u := d.src.Layer(d.CurrentLayer()); u != nil {
				u.RequestKeyframe()
			} else if w := d.wantedLayer(); w >= 0 {
				d.src.Layer(w).RequestKeyframe()
			}
		case *rtcp.ReceiverReport:
			d.noteReceiverReport(p)
		case *rtcp.TransportLayerNack:
			seqs := nackList(p)
			select {
			case d.ctrl <- ctrlMsg{nack: seqs}:
			case <-d.done:
			default: // writer is saturated: the subscriber will ask again
			}
		}
	}
}

// maxNACKList bounds the packets one NACK may ask for (the cache holds no
// more than this of a stream anyway).
const maxNACKList = 1024

// nackList is the distinct sequence numbers a NACK asks for, at most
// maxNACKList of them: a client repeating numbers must not multiply work.
func nackList(p *rtcp.TransportLayerNack) []uint16 {
	var seqs []uint16
	for _, pair := range p.Nacks {
		for _, s := range pair.PacketList() {
			if len(seqs) == maxNACKList {
				return seqs
			}
			if !slices.Contains(seqs[max(0, len(seqs)-32):], s) {
				seqs = append(seqs, s)
			}
		}
	}
	return seqs
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

// fmtpHas reports whether an fmtp line holds the parameter kv ("apt=96").
func fmtpHas(fmtp, kv string) bool {
	for _, p := range strings.Split(fmtp, ";") {
		if strings.EqualFold(strings.TrimSpace(p), kv) {
			return true
		}
	}
	return false
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
