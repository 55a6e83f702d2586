package recorder

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ErrClosed is returned when writing to a track that was removed or whose
// recorder was closed, and by AddTrack after Close.
var ErrClosed = errors.New("recorder: closed")

// keyframeInterval is the least time between two keyframe requests of a
// track while it waits for a keyframe.
const keyframeInterval = 500 * time.Millisecond

// TrackOptions describes a track to record.
type TrackOptions struct {
	// ID is the publisher's track ID. It only goes into the metadata.
	ID string
	// Codec is the codec of the packets written to the track: Opus, VP8,
	// VP9 or H264. ClockRate defaults to 48000 (audio) or 90000 (video),
	// Channels to 2.
	Codec webrtc.RTPCodecCapability
	// PayloadType is the payload type BindContext offers (default 111 for
	// audio, 96 for video). Packets are not filtered by payload type.
	PayloadType webrtc.PayloadType
	// RequestKeyframe asks the publisher for a keyframe (video only). It is
	// called from the recorder's goroutine, at most once per 500 ms while
	// the track waits for a keyframe, and must not block.
	RequestKeyframe func()
	// Drops, if set, also counts the packets this track drops (a counter
	// shared by many tracks, e.g. a Manager's).
	Drops *atomic.Uint64
}

// TrackStats are a track's counters.
type TrackStats struct {
	Packets          uint64 // packets accepted into the queue
	PacketsDropped   uint64 // packets dropped: queue full, or foreign SSRC
	PacketsLate      uint64 // duplicates and packets too late to be reordered
	Gaps             uint64 // runs of lost packets
	Frames           uint64 // frames written to a file
	FramesDropped    uint64 // frames not written: incomplete, corrupt, or waiting for a keyframe
	KeyframeRequests uint64
}

// TrackRecorder receives one track's RTP packets. It implements
// webrtc.TrackLocalWriter: WriteRTP and Write copy the packet into a
// bounded queue and return at once; when the queue is full the packet is
// dropped and counted. The packets are processed by the goroutine of the
// ParticipantRecorder the track belongs to.
type TrackRecorder struct {
	p          *ParticipantRecorder
	id         string
	codec      codec
	rate       int64
	chans      int
	pt         webrtc.PayloadType
	capab      webrtc.RTPCodecCapability
	bindSSRC   webrtc.SSRC
	requestKey func()
	log        *slog.Logger
	now        func() time.Time

	// media path
	free       chan *packet // packets not in use
	queue      chan *packet // packets waiting for the recorder's goroutine
	ssrc       atomic.Uint64
	closed     atomic.Bool
	removed    atomic.Bool
	overflowed atomic.Bool  // a packet was dropped since the goroutine last looked
	dropLogAt  atomic.Int64 // unix ns of the last overflow log line
	dropsToLog atomic.Uint64

	srMu  sync.Mutex
	sr    senderReport
	srNew bool

	packets, dropped, late, gaps   atomic.Uint64
	sharedDrops                    *atomic.Uint64 // nil: none
	frames, framesDropped, keyReqs atomic.Uint64

	// owned by the participant's goroutine
	jb          *jitter
	lateRun     int
	unwrap      tsUnwrap
	clock       clockMap
	hasSR       bool
	cur         *frame
	spare       []*frame
	pending     []*frame
	pendHead    int
	lossPending bool
	waitKey     bool
	lastPic     int32
	lastPicBits uint8
	lastKeyReq  time.Time
	ready       bool
	lastFrameAt time.Time // arrival of the last frame queued for the file
	lastWall    time.Time // capture time of the last frame queued
	flushed     bool      // removed and drained
	slot        *slot
	width       int
	height      int
	sps, pps    []byte
	avcC        []byte
	badLog      limiter
	srLog       limiter
}

type senderReport struct {
	ntp time.Time
	ts  uint32
}

// drop counts a dropped packet.
func (t *TrackRecorder) drop() {
	t.dropped.Add(1)
	if t.sharedDrops != nil {
		t.sharedDrops.Add(1)
	}
}

func newTrack(p *ParticipantRecorder, c codec, o TrackOptions) *TrackRecorder {
	rate, chans := int64(o.Codec.ClockRate), int(o.Codec.Channels)
	if rate == 0 {
		rate = 90000
		if !c.video() {
			rate = 48000
		}
	}
	if chans == 0 {
		chans = 2
	}
	pt := o.PayloadType
	if pt == 0 {
		pt = 96
		if !c.video() {
			pt = 111
		}
	}
	capab := o.Codec
	capab.ClockRate = uint32(rate)
	if !c.video() {
		capab.Channels = uint16(chans)
	}
	t := &TrackRecorder{
		capab: capab, p: p, id: o.ID, codec: c, rate: rate, chans: chans, pt: pt, requestKey: o.RequestKeyframe,
		log: p.log.With("track", o.ID, "codec", c.mime()), now: p.o.Now,
		free: make(chan *packet, p.o.QueueSize), queue: make(chan *packet, p.o.QueueSize),
		jb: newJitter(p.o.QueueSize, p.o.JitterDelay), waitKey: c.video(), lastPic: -1,
		bindSSRC: webrtc.SSRC(randUint32()), sharedDrops: o.Drops,
	}
	for range p.o.QueueSize {
		t.free <- &packet{}
	}
	return t
}

// ID returns the track ID given in TrackOptions.
func (t *TrackRecorder) ID() string { return t.id }

// WriteRTP queues a copy of one packet. It never blocks; when the queue is
// full the packet is dropped (counted in Stats, logged at most every 5 s).
// Packets of another SSRC than the first one written are dropped.
func (t *TrackRecorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	if !t.sameSSRC(h.SSRC) {
		t.drop()
		return 0, nil
	}
	if h.Padding && h.PaddingSize == 0 && len(payload) > 0 {
		// padding still inside the payload: its last byte is its length
		n := int(payload[len(payload)-1])
		payload = payload[:len(payload)-min(n, len(payload))]
	}
	var p *packet
	select {
	case p = <-t.free:
	default:
		t.overflow()
		return 0, nil
	}
	p.seq, p.ts, p.marker, p.arrival = h.SequenceNumber, h.Timestamp, h.Marker, t.now()
	if cap(p.buf) < len(payload) {
		p.buf = make([]byte, len(payload), max(len(payload), 1500))
	}
	p.payload = p.buf[:len(payload)]
	copy(p.payload, payload)
	t.queue <- p // never blocks: there are as many packets as queue slots
	t.packets.Add(1)
	t.p.poke()
	return h.MarshalSize() + len(payload) + int(h.PaddingSize), nil
}

// Write queues one marshalled RTP packet; see WriteRTP.
func (t *TrackRecorder) Write(b []byte) (int, error) {
	var pkt rtp.Packet
	if err := pkt.Unmarshal(b); err != nil {
		t.drop()
		return 0, err
	}
	if _, err := t.WriteRTP(&pkt.Header, pkt.Payload); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (t *TrackRecorder) sameSSRC(ssrc uint32) bool {
	v := uint64(ssrc) | 1<<32
	if cur := t.ssrc.Load(); cur != 0 {
		return cur == v
	}
	return t.ssrc.CompareAndSwap(0, v) || t.ssrc.Load() == v
}

func (t *TrackRecorder) overflow() {
	t.drop()
	t.overflowed.Store(true)
	t.dropsToLog.Add(1)
	now := t.now().UnixNano()
	last := t.dropLogAt.Load()
	if (last == 0 || now-last >= int64(5*time.Second)) && t.dropLogAt.CompareAndSwap(last, now) {
		t.log.Warn("recording queue full, dropping packets", "dropped", t.dropsToLog.Swap(0))
	}
}

// SenderReport gives the track's latest RTCP sender report, translated
// into the timestamps of the packets written to this track: the capture
// time ntp corresponds to RTP timestamp rtpTS. It lets the recorder line
// the tracks of one participant up as they were captured.
func (t *TrackRecorder) SenderReport(ntp time.Time, rtpTS uint32) {
	t.srMu.Lock()
	t.sr, t.srNew = senderReport{ntp: ntp, ts: rtpTS}, true
	t.srMu.Unlock()
	t.p.poke()
}

func (t *TrackRecorder) takeSR() (senderReport, bool) {
	t.srMu.Lock()
	defer t.srMu.Unlock()
	ok := t.srNew
	t.srNew = false
	return t.sr, ok
}

// Stats returns the track's counters.
func (t *TrackRecorder) Stats() TrackStats {
	return TrackStats{
		Packets: t.packets.Load(), PacketsDropped: t.dropped.Load(), PacketsLate: t.late.Load(),
		Gaps: t.gaps.Load(), Frames: t.frames.Load(), FramesDropped: t.framesDropped.Load(),
		KeyframeRequests: t.keyReqs.Load(),
	}
}

// The rest runs on the participant's goroutine.

// drain processes the queued packets. flush releases everything held by
// the jitter buffer, declaring the missing packets lost.
func (t *TrackRecorder) drain(now time.Time, flush bool) {
	overflow := t.overflowed.Swap(false)
	for done := false; !done; {
		select {
		case p := <-t.queue:
			t.receive(p, now)
		default:
			done = true
		}
	}
	t.release(now, flush || overflow)
}

func (t *TrackRecorder) receive(p *packet, now time.Time) {
	p.ext = t.jb.extend(p.seq)
	for t.jb.full(p.ext) {
		if !t.jb.waiting() {
			t.onLoss(t.jb.jump(p.ext))
			break
		}
		q, lost := t.jb.pop(now, true)
		t.deliver(q, lost)
	}
	if !t.jb.insert(p) {
		t.late.Add(1)
		t.free <- p
		if t.lateRun++; t.lateRun > 64 && !t.jb.waiting() {
			// a long run of "old" packets: the numbering restarted
			t.jb.restart()
			t.lateRun = 0
		}
		return
	}
	t.lateRun = 0
	// while the queue is drained, time is the arrival of the packet at
	// hand: whether a packet waited long enough for a missing one must not
	// depend on how late this goroutine got to the queue
	t.release(p.arrival, false)
}

func (t *TrackRecorder) release(now time.Time, flush bool) {
	for {
		p, lost := t.jb.pop(now, flush)
		if p == nil && lost == 0 {
			return
		}
		t.deliver(p, lost)
	}
}

func (t *TrackRecorder) deliver(p *packet, lost int) {
	if lost > 0 {
		t.onLoss(lost)
	}
	if p != nil {
		t.onPacket(p)
		t.free <- p
	}
}

func (t *TrackRecorder) onLoss(int) {
	t.gaps.Add(1)
	if t.cur != nil {
		t.cur.broken = true
	}
	t.lossPending = true
}

func (t *TrackRecorder) onPacket(p *packet) {
	if len(p.payload) == 0 {
		return // padding only
	}
	ts := t.unwrap.extend(p.ts)
	if !t.clock.set {
		t.clock = clockMap{rate: t.rate, wall: p.arrival, ts: ts, set: true}
	}
	if t.cur != nil && t.cur.extTS != ts {
		t.endFrame(p.arrival)
	}
	if t.cur == nil {
		t.cur = t.newFrame(ts)
	}
	f := t.cur
	if err := depacketize(t.codec, f, p.payload); err != nil {
		// after a loss, a frame's remains are expected not to parse
		if !f.broken && !t.lossPending && t.badLog.allow(p.arrival, 10*time.Second) {
			t.log.Warn("cannot depacketize", "err", err, "seq", p.seq)
		}
		f.broken = true
	}
	f.npkts++
	f.arrival = p.arrival
	if p.marker || !t.codec.video() {
		t.endFrame(p.arrival)
	}
}

// endFrame decides the fate of the frame in progress: queued for the file,
// or dropped when it is incomplete or (video) cannot be decoded because a
// frame it depends on is missing, in which case a keyframe is requested.
func (t *TrackRecorder) endFrame(now time.Time) {
	f := t.cur
	t.cur = nil
	ok := f.start && !f.broken && finishFrame(t.codec, f) == nil
	if !t.codec.video() {
		if ok {
			t.push(f)
		} else {
			t.dropFrame(f)
		}
		return
	}
	if ok && t.lossPending && !t.waitKey && !t.follows(f) {
		t.waitKey = true // whole frames may be missing
	}
	t.lossPending = false
	if ok && f.picID >= 0 {
		t.lastPic, t.lastPicBits = f.picID, f.picBits
	}
	if ok && f.key {
		f.key = t.keyframe(f)
	}
	switch {
	case !ok:
		t.waitKey = true
		t.dropFrame(f)
		t.askKeyframe(now)
	case t.waitKey && !f.key:
		t.dropFrame(f)
		t.askKeyframe(now)
	default:
		t.waitKey = false
		t.push(f)
	}
}

// follows reports whether f is the frame right after the last complete
// one (by picture ID), so that the packets lost before it were padding.
func (t *TrackRecorder) follows(f *frame) bool {
	if f.picID < 0 || t.lastPic < 0 {
		return false
	}
	bits := min(f.picBits, t.lastPicBits)
	mask := int32(1)<<bits - 1
	return f.picID&mask == (t.lastPic+1)&mask
}

// keyframe records a keyframe's codec configuration (size, H264 parameter
// sets). An H264 IDR frame without known parameter sets is not usable.
func (t *TrackRecorder) keyframe(f *frame) bool {
	if t.codec != codecH264 {
		if f.width > 0 && f.height > 0 {
			t.width, t.height = f.width, f.height
		}
		return true
	}
	if f.spsLen > 0 && f.ppsLen > 0 {
		sps, pps := f.data[f.spsAt:f.spsAt+f.spsLen], f.data[f.ppsAt:f.ppsAt+f.ppsLen]
		if string(sps) != string(t.sps) || string(pps) != string(t.pps) {
			cfg, info, err := avcConfig(sps, pps)
			if err != nil {
				if t.badLog.allow(f.arrival, 10*time.Second) {
					t.log.Warn("bad H264 parameter sets", "err", err)
				}
				return false
			}
			t.sps, t.pps, t.avcC = append([]byte(nil), sps...), append([]byte(nil), pps...), cfg
			t.width, t.height = info.width, info.height
		}
	}
	return t.avcC != nil
}

func (t *TrackRecorder) askKeyframe(now time.Time) {
	if t.requestKey == nil || !t.lastKeyReq.IsZero() && now.Sub(t.lastKeyReq) < keyframeInterval {
		return
	}
	t.lastKeyReq = now
	t.keyReqs.Add(1)
	t.requestKey()
}

func (t *TrackRecorder) newFrame(ts int64) *frame {
	var f *frame
	if n := len(t.spare); n > 0 {
		f, t.spare = t.spare[n-1], t.spare[:n-1]
	} else {
		f = &frame{}
	}
	f.reset(ts)
	return f
}

func (t *TrackRecorder) recycle(f *frame) { t.spare = append(t.spare, f) }

func (t *TrackRecorder) dropFrame(f *frame) {
	t.framesDropped.Add(1)
	t.recycle(f)
}

func (t *TrackRecorder) push(f *frame) {
	t.pending = append(t.pending, f)
	t.ready = true
	t.lastFrameAt = f.arrival
	t.lastWall = t.clock.at(f.extTS)
}

func (t *TrackRecorder) head() *frame {
	if t.pendHead < len(t.pending) {
		return t.pending[t.pendHead]
	}
	return nil
}

func (t *TrackRecorder) popHead() *frame {
	f := t.pending[t.pendHead]
	t.pending[t.pendHead] = nil
	t.pendHead++
	if t.pendHead == len(t.pending) {
		t.pending, t.pendHead = t.pending[:0], 0
	}
	return f
}

// dropPending discards the frames waiting for the file.
func (t *TrackRecorder) dropPending() {
	for t.head() != nil {
		t.dropFrame(t.popHead())
	}
}

// finish releases everything the track holds: called once it is removed
// or the recorder closes. A last video frame without its marker is dropped.
func (t *TrackRecorder) finish(now time.Time) {
	t.drain(now, true)
	if t.cur != nil {
		t.dropFrame(t.cur)
		t.cur = nil
	}
}

// limiter allows an event at most once per interval.
type limiter struct{ last time.Time }

func (l *limiter) allow(now time.Time, every time.Duration) bool {
	if !l.last.IsZero() && now.Sub(l.last) < every {
		return false
	}
	l.last = now
	return true
}
