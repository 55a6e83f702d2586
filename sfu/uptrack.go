package sfu

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
	"github.com/chorus-sfu/chorus/simulcast"
)

// RTPSource is where an up track reads its packets from (a *webrtc.TrackRemote
// in production, a synthetic source in tests and benchmarks).
type RTPSource interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// NACKSender asks the publisher to resend packets of stream ssrc.
type NACKSender func(ssrc uint32, seqs []uint16) error

// KeyframeRequester sends one keyframe request (PLI) to the publisher.
type KeyframeRequester func(ssrc uint32) error

// UpTrackStats are counters of one incoming stream.
type UpTrackStats struct {
	Packets          uint64
	Bytes            uint64
	KeyframeRequests uint64 // PLIs actually sent upstream
	Malformed        uint64
	NACKsSent        uint64 // packets asked for again
	// Duplicates: packets received again (a publisher's RTX padding
	// resends old packets to probe its uplink), or too old to be stored
	// without overwriting newer ones; neither is forwarded
	Duplicates uint64
	// FECPackets: the publisher's ULPFEC packets received; FECRecovered:
	// media packets rebuilt from them
	FECPackets, FECRecovered uint64
	// Repairs: retransmissions (RTX) handed in as they arrived (rtxtap.go)
	Repairs uint64
}

// UpTrack is one incoming stream from a publisher. A single reader goroutine
// stores each packet once in the packet cache and hands a reference to every
// subscribed down track from a copy-on-write list, without holding a lock
// while down tracks write. Retransmissions come in on the RTX stream's own
// goroutine (rtxtap.go), which takes the reader's place under readMu.
type UpTrack struct {
	info       TrackInfo
	codec      webrtc.RTPCodecParameters
	isVideo    bool
	cache      *PacketCache
	isKeyframe keyframeFunc
	requestKF  KeyframeRequester
	sr         atomic.Pointer[SenderReport] // the publisher's last sender report
	// newest and lastKey are the sequence numbers of the newest packet and
	// of the first packet of the newest keyframe, | seqValid once seen
	newest, lastKey atomic.Uint32
	sendNACK        NACKSender // nil: no NACKs to the publisher
	rtt             func() time.Duration
	nacks           nackTracker
	nackWG          sync.WaitGroup // the NACK timer goroutine
	nackKick        chan struct{}  // wakes the NACK loop (video)
	log             *slog.Logger

	ssrc       atomic.Uint32
	lastPacket atomic.Int64  // unix nanoseconds of the last packet
	size       atomic.Uint32 // width<<16 | height of the last keyframe
	layer      int           // simulcast layer index, set before ReadLoop starts
	downs      atomic.Pointer[[]*DownTrack]
	rateMu     sync.Mutex // guards the bitrate meter
	rateAt     time.Time
	rateBytes  uint64
	rate       float64

	mu    sync.Mutex // serialises changes of downs, and guards kf and kfTimer
	kf    keyframeLimiter
	timer *time.Timer
	done  chan struct{}

	packets, bytes, plis, malformed, nacksSent, duplicates atomic.Uint64
	fecPackets, fecRecovered, repairs                      atomic.Uint64

	fec *upFEC // publisher FEC (RED and ULPFEC negotiated); nil: none

	// reader state, owned by the reader goroutine (and, under readMu, by
	// the RTX tap that hands retransmissions in: rtxtap.go)
	readMu   sync.Mutex
	lastPT   atomic.Uint32 // payload type of the last packet read
	havePrev bool
	lastTS   uint32
	lastSeq  uint16
}

// UpTrackOptions configures an UpTrack.
type UpTrackOptions struct {
	Info  TrackInfo
	Codec webrtc.RTPCodecParameters
	// CacheSize is the number of packets kept for retransmission
	// (default 1024 for video, 256 for audio).
	CacheSize int
	// KeyframeInterval is the minimum time between two PLIs sent upstream
	// (default 500 ms).
	KeyframeInterval time.Duration
	RequestKeyframe  KeyframeRequester
	// SendNACK, if set, is used to ask for missing packets: always for
	// video, for audio only when the publisher negotiated NACK for it
	// (Codec's feedback; browsers protect audio with RED otherwise).
	SendNACK NACKSender
	// RTT, if set, gives the round trip to the publisher (0: unknown), which
	// times the NACKs' retries.
	RTT func() time.Duration
	// REDPayloadType and FECPayloadType, both non-zero for a video stream,
	// are the publisher's video RED and ULPFEC payload types: its media may
	// come wrapped in RED and be protected by ULPFEC (upfec.go), whose
	// computation left the FECMutable header extensions out.
	REDPayloadType, FECPayloadType uint8
	FECMutable                     []fec.MutableExtension
	Logger                         *slog.Logger
}

// NewUpTrack creates an up track; call ReadLoop to start forwarding.
func NewUpTrack(o UpTrackOptions) *UpTrack {
	isVideo := o.Info.Kind == webrtc.RTPCodecTypeVideo
	if o.CacheSize == 0 {
		o.CacheSize = 256
		if isVideo {
			o.CacheSize = 1024
		}
	}
	if o.KeyframeInterval == 0 {
		o.KeyframeInterval = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RequestKeyframe == nil {
		o.RequestKeyframe = func(uint32) error { return nil }
	}
	t := &UpTrack{
		info:       o.Info,
		codec:      o.Codec,
		isVideo:    isVideo,
		cache:      NewPacketCache(o.CacheSize),
		isKeyframe: keyframeDetector(o.Codec.MimeType),
		requestKF:  o.RequestKeyframe,
		sendNACK:   o.SendNACK,
		rtt:        o.RTT,
		log:        o.Logger.With("track", o.Info.ID, "kind", o.Info.Kind.String()),
		kf:         keyframeLimiter{interval: o.KeyframeInterval},
		done:       make(chan struct{}),
		nackKick:   make(chan struct{}, 1),
	}
	t.downs.Store(&[]*DownTrack{})
	if !isVideo && !hasFeedback(o.Codec.RTCPFeedback, "nack", "") {
		t.sendNACK = nil // the publisher would not answer
	}
	t.nacks.audio = !isVideo
	if isVideo && o.REDPayloadType != 0 && o.FECPayloadType != 0 {
		t.fec = newUpFEC(o.REDPayloadType, o.FECPayloadType, o.FECMutable)
	}
	return t
}

// Info describes the track this stream belongs to.
func (t *UpTrack) Info() TrackInfo { return t.info }

// Layer is the stream's simulcast layer index (0 when not simulcast).
func (t *UpTrack) Layer() int { return t.layer }

// Bitrate is the stream's rate in bits per second, measured over at least
// half a second up to now.
func (t *UpTrack) Bitrate(now time.Time) int {
	t.rateMu.Lock()
	defer t.rateMu.Unlock()
	if dt := now.Sub(t.rateAt); dt >= 500*time.Millisecond {
		b := t.bytes.Load()
		if !t.rateAt.IsZero() {
			r := float64(b-t.rateBytes) * 8 / dt.Seconds()
			if t.rate == 0 {
				t.rate = r
			} else {
				t.rate = 0.5*t.rate + 0.5*r
			}
		}
		t.rateAt, t.rateBytes = now, b
	}
	return int(t.rate)
}

func (t *UpTrack) activeSince(since time.Time) bool {
	return t.lastPacket.Load() >= since.UnixNano()
}

// Size is the coded size of the layer's last keyframe (0, 0 before one
// was seen or when the codec's keyframes do not say).
func (t *UpTrack) Size() (w, h int) {
	v := t.size.Load()
	return int(v >> 16), int(v & 0xFFFF)
}

// Codec is the publisher's negotiated codec.
func (t *UpTrack) Codec() webrtc.RTPCodecParameters { return t.codec }

// Cache is the track's packet cache.
func (t *UpTrack) Cache() *PacketCache { return t.cache }

// Done is closed when the reader loop has ended.
func (t *UpTrack) Done() <-chan struct{} { return t.done }

// Stats returns the track's counters.
func (t *UpTrack) Stats() UpTrackStats {
	return UpTrackStats{
		Packets: t.packets.Load(), Bytes: t.bytes.Load(),
		KeyframeRequests: t.plis.Load(), Malformed: t.malformed.Load(), NACKsSent: t.nacksSent.Load(),
		Duplicates: t.duplicates.Load(), FECPackets: t.fecPackets.Load(), FECRecovered: t.fecRecovered.Load(),
		Repairs: t.repairs.Load(),
	}
}

// ReadLoop reads packets until src fails, then closes Done. It is the one
// reader goroutine of this track.
func (t *UpTrack) ReadLoop(src RTPSource) {
	defer t.stop()
	if t.sendNACK != nil {
		t.nackWG.Add(1)
		go t.nackLoop()
	}
	buf := make([]byte, maxPacketSize+64)
	for {
		n, _, err := src.Read(buf)
		if errors.Is(err, io.ErrShortBuffer) { // an oversized packet: skip it
			t.malformed.Add(1)
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.log.Debug("up track read ended", "err", err)
			}
			return
		}
		t.readMu.Lock()
		t.handlePacket(buf[:n])
		t.readMu.Unlock()
	}
}

// nackLoop sends the due NACKs until the track ends. Audio is checked
// every audioNackTick (its losses are found by the clock: markOverdue).
// Video sleeps until the next request is due, and is woken when a packet
// reveals a gap or leaves a frame unfinished (nackKick): the first request
// for a lost packet goes out at once, and each retry right on time.
func (t *UpTrack) nackLoop() {
	defer t.nackWG.Done()
	var tick <-chan time.Time
	if t.nacks.audio {
		ticker := time.NewTicker(audioNackTick)
		defer ticker.Stop()
		tick = ticker.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var seqs []uint16
	for {
		select {
		case <-t.done:
			return
		case <-tick:
		case <-timer.C:
		case <-t.nackKick:
		}
		now := time.Now()
		if t.rtt != nil {
			rtt := t.rtt()
			t.nacks.mu.Lock()
			t.nacks.rtt = rtt
			t.nacks.mu.Unlock()
		}
		var next time.Time
		seqs, next = t.nacks.dueNext(now, seqs[:0])
		if len(seqs) > 0 {
			t.nacksSent.Add(uint64(len(seqs)))
			if err := t.sendNACK(t.ssrc.Load(), seqs); err != nil {
				t.log.Debug("NACK not sent", "err", err)
			}
		}
		if !t.nacks.audio {
			wait := time.Hour // nothing pending: a kick comes first
			if !next.IsZero() {
				wait = max(next.Sub(now), time.Millisecond)
			}
			timer.Reset(wait)
		}
	}
}

func (t *UpTrack) stop() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	close(t.done)
	t.nackWG.Wait()
}

// handlePacket stores one packet and fans it out. Called only by the reader.
func (t *UpTrack) handlePacket(b []byte) {
	if len(b) >= 2 {
		t.lastPT.Store(uint32(b[1] & 0x7F))
	}
	if t.fec != nil {
		t.handleRED(b)
		return
	}
	t.handleMedia(b)
}

// handleMedia stores one media packet and fans it out.
func (t *UpTrack) handleMedia(b []byte) {
	r, err := parseRTP(b)
	if err != nil {
		t.malformed.Add(1)
		return
	}
	t.ssrc.Store(r.ssrc)
	at := time.Now()
	now := at.UnixNano()
	t.noteArrival(r.seq, !t.isVideo || r.marker, at)
	t.lastPacket.Store(now)
	t.packets.Add(1)
	t.bytes.Add(uint64(len(b)))

	inOrder := !t.havePrev || seqNewer(r.seq, t.lastSeq)
	if !inOrder {
		// A packet behind the newest: a retransmission the SFU asked for,
		// or one it already has (publishers probe their uplink with RTX
		// copies of old packets). Only a missing one is stored and handed
		// on; one older than the cache reaches would overwrite a newer one.
		if _, have := t.cache.Header(r.seq); have || t.lastSeq-r.seq >= uint16(t.cache.Size()) {
			t.duplicates.Add(1)
			return
		}
	}
	frameStart := !t.havePrev || (inOrder && r.timestamp != t.lastTS)
	if inOrder {
		t.havePrev, t.lastSeq, t.lastTS = true, r.seq, r.timestamp
	}
	p := CachedPacket{
		SeqNum:      r.seq,
		Timestamp:   r.timestamp,
		Marker:      r.marker,
		PayloadType: r.payloadType,
		PaddingSize: r.paddingSize,
		FrameStart:  frameStart || !t.isVideo,
		Keyframe:    !t.isVideo || (len(r.payload) > 0 && t.isKeyframe(r.payload)),
		Arrival:     now,
	}
	if t.isVideo && p.Keyframe && frameStart {
		t.keyframeArrived()
		if w, h, ok := simulcast.FrameSize(t.codec.MimeType, r.payload); ok {
			t.size.Store(uint32(w)<<16 | uint32(h))
		}
	}
	if !t.cache.Put(p, r.payload) {
		t.malformed.Add(1)
		return
	}
	if inOrder {
		t.newest.Store(uint32(r.seq) | seqValid)
	}
	if t.isVideo && p.Keyframe && frameStart {
		t.lastKey.Store(uint32(r.seq) | seqValid)
	}
	for _, d := range *t.downs.Load() {
		d.enqueue(t.layer, p)
	}
}

// noteArrival tells the NACK generator of a packet; ends: it ends its
// frame. The NACK loop is woken when a request is due sooner than planned.
func (t *UpTrack) noteArrival(seq uint16, ends bool, at time.Time) {
	if t.sendNACK == nil {
		return
	}
	if t.nacks.receivedPacket(seq, ends, at) && t.isVideo {
		select {
		case t.nackKick <- struct{}{}:
		default:
		}
	}
}

func seqNewer(a, b uint16) bool { return a != b && a-b < 0x8000 }

// AddDownTrack subscribes d to this track and asks for a keyframe so that
// the new subscriber can start decoding promptly.
func (t *UpTrack) AddDownTrack(d *DownTrack) {
	t.mu.Lock()
	old := *t.downs.Load()
	next := make([]*DownTrack, len(old), len(old)+1)
	copy(next, old)
	next = append(next, d)
	t.downs.Store(&next)
	t.mu.Unlock()
}

// RemoveDownTrack unsubscribes d. Packets already handed to d may still be
// written by d's writer until d is closed.
func (t *UpTrack) RemoveDownTrack(d *DownTrack) {
	t.mu.Lock()
	old := *t.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	t.downs.Store(&next)
	t.mu.Unlock()
}

// DownTrackCount is the number of subscribers.
func (t *UpTrack) DownTrackCount() int { return len(*t.downs.Load()) }

// RequestKeyframe asks the publisher for a keyframe. Requests from any
// number of subscribers are merged: at most one PLI per KeyframeInterval.
func (t *UpTrack) RequestKeyframe() {
	if !t.isVideo {
		return
	}
	t.mu.Lock()
	send, delay := t.kf.request(time.Now())
	if send && t.timer != nil {
		t.timer.Stop()
	}
	if delay > 0 {
		select {
		case <-t.done:
		default:
			t.timer = time.AfterFunc(delay, t.fireDeferred)
		}
	}
	t.mu.Unlock()
	if send {
		t.sendPLI()
	}
}

// keyframeArrived cancels a deferred keyframe request: the keyframe it
// would ask for is here.
func (t *UpTrack) keyframeArrived() {
	t.mu.Lock()
	if t.kf.pending {
		t.kf.pending = false
		if t.timer != nil {
			t.timer.Stop()
		}
	}
	t.mu.Unlock()
}

func (t *UpTrack) fireDeferred() {
	t.mu.Lock()
	fire := t.kf.fire(time.Now())
	t.mu.Unlock()
	if !fire {
		return
	}
	select {
	case <-t.done:
	default:
		t.sendPLI()
	}
}

func (t *UpTrack) sendPLI() {
	ssrc := t.ssrc.Load()
	if ssrc == 0 {
		return
	}
	t.plis.Add(1)
	t.log.Debug("keyframe request to the publisher", "layer", t.layer)
	if err := t.requestKF(ssrc); err != nil {
		t.log.Debug("keyframe request failed", "err", err)
	}
}

// hasFeedback reports whether fb lists the RTCP feedback typ with param.
func hasFeedback(fb []webrtc.RTCPFeedback, typ, param string) bool {
	for _, f := range fb {
		if strings.EqualFold(f.Type, typ) && strings.EqualFold(f.Parameter, param) {
			return true
		}
	}
	return false
}

// SenderReport is a publisher's RTCP sender report: the wall-clock time of
// an RTP timestamp on the publisher's clock.
type SenderReport struct {
	NTP     uint64 // NTP timestamp (RFC 3550: seconds since 1900 << 32 | fraction)
	RTPTime uint32
}

// Time is the report's NTP timestamp as a time.Time.
func (r SenderReport) Time() time.Time {
	const ntpEpochOffset = 2208988800 // 1900 to 1970
	secs := int64(r.NTP>>32) - ntpEpochOffset
	nanos := int64((r.NTP & 0xFFFFFFFF) * uint64(time.Second) >> 32)
	return time.Unix(secs, nanos)
}

// noteSenderReport keeps a sender report of this stream.
func (t *UpTrack) noteSenderReport(sr *rtcp.SenderReport) {
	if ssrc := t.ssrc.Load(); ssrc != 0 && sr.SSRC != ssrc {
		return
	}
	t.sr.Store(&SenderReport{NTP: sr.NTPTime, RTPTime: sr.RTPTime})
}

// LastSenderReport is the publisher's last sender report for this stream
// (nil before the first).
func (t *UpTrack) LastSenderReport() *SenderReport { return t.sr.Load() }

// seqValid marks a sequence number stored in an atomic.Uint32.
const seqValid = 1 << 16

// History a down track attached with AddDownTrackWithHistory may be
// handed: no more than fits comfortably in its queue (and a recorder's), no
// keyframe older than historyMaxAge.
const (
	historyMaxVideo = 256 // packets
	historyMaxAudio = 50  // packets: 1 s of 20 ms frames
	historyMaxAge   = 3 * time.Second
)

// AddDownTrackWithHistory subscribes d like AddDownTrack, first handing it
// what the cache holds of the recent past: for video, the packets from the
// newest keyframe on (if it is recent enough: historyMaxVideo,
// historyMaxAge); for audio, those that arrived at or after since (unix
// nanoseconds, at most historyMaxAudio). A recorder attached this way starts
// with the keyframe the publisher already sent instead of waiting for the
// next one. Packets that arrive while it is attached may be handed twice (a
// down track's rewriter and a recorder's jitter buffer drop duplicates). It
// returns the arrival time of the first packet handed (0: none). No lock is
// held while packets are handed: d may ask this track for a keyframe.
func (t *UpTrack) AddDownTrackWithHistory(d *DownTrack, since int64) int64 {
	var first int64
	newest := t.newest.Load()
	if newest&seqValid != 0 {
		to := uint16(newest)
		if from, ok := t.historyStart(to, since); ok {
			first = t.replay(d, from, to)
		}
	}
	t.AddDownTrack(d)
	// packets stored between the replay and the new list: hand them too
	if now := t.newest.Load(); now&seqValid != 0 && newest&seqValid != 0 && uint16(now) != uint16(newest) &&
		uint16(now)-uint16(newest) < uint16(historyMaxVideo) {
		t.replay(d, uint16(newest)+1, uint16(now))
	}
	return first
}

// historyStart is where AddDownTrackWithHistory's replay starts.
func (t *UpTrack) historyStart(newest uint16, since int64) (uint16, bool) {
	if t.isVideo {
		k := t.lastKey.Load()
		if k&seqValid == 0 || newest-uint16(k) >= historyMaxVideo {
			return 0, false
		}
		h, ok := t.cache.Header(uint16(k))
		if !ok || time.Now().UnixNano()-h.Arrival > int64(historyMaxAge) {
			return 0, false
		}
		return uint16(k), true
	}
	from, ok := newest, false
	for i := uint16(0); i < historyMaxAudio; i++ {
		h, have := t.cache.Header(newest - i)
		if !have {
			continue // lost on the way in: look further back
		}
		if h.Arrival < since {
			break
		}
		from, ok = newest-i, true
	}
	return from, ok
}

// replay hands d the cached packets from..to (what is still cached) and
// returns the first one's arrival time.
func (t *UpTrack) replay(d *DownTrack, from, to uint16) int64 {
	var first int64
	for s := from; ; s++ {
		if h, ok := t.cache.Header(s); ok {
			if first == 0 {
				first = h.Arrival
			}
			d.enqueue(t.layer, h)
		}
		if s == to {
			break
		}
	}
	return first
}
