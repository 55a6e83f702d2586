package server_test

// The benchmark's model of a browser receiver: playout and freezes, and a
// browser-like NACK generator.

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
)

// lrPlayoutDelay is the modelled video receiver's playout delay after the
// send time: the path (two 25 ms hops) and one round trip, room for one
// retransmission, as a browser's jitter buffer makes when NACK is on. A
// frame complete later is shown when complete (and delays the frames after
// it).
const lrPlayoutDelay = 4 * lrOneWay

// lrPLIInterval: while its picture is broken, the modelled receiver asks
// for a keyframe this often.
const lrPLIInterval = 300 * time.Millisecond

// lrFrameResult is what the modelled decoder did with one frame.
type lrFrameResult struct {
	complete bool      // every packet arrived in time to be used (usable)
	decoded  bool      // complete, and the frame it refers to decoded too
	renderAt time.Time // when it was shown (decoded frames)
}

// lrVideoModel is the subscriber's video decoder as far as timing goes.
// Frames are decoded in order, each as soon as all its packets have arrived
// and the frame it refers to is decoded. A frame still incomplete
// lrDeadline after it was sent is given up; every frame that refers to it,
// directly or not, is undecodable. Without temporal layers each inter frame
// refers to the one before, so that is every frame until a complete
// keyframe, which the model asks for with a PLI at once and then every
// lrPLIInterval. With temporal layers (loss_temporal_test.go) only a failed
// TL0 frame does that; a TL1 or TL2 frame is skipped, without a PLI, when it
// is not complete by the time the next frame that does not refer to it is
// due. A decoded frame is rendered when decoded, but not before
// lrPlayoutDelay after it was sent.
//
// The model runs on a 10 ms ticker while the benchmark runs (its PLIs change
// what the publisher sends); its decisions use the packets' arrival times,
// not the ticks.
type lrVideoModel struct {
	src    *lrVideoSource
	sink   *mediatest.Sink
	pli    func() error
	nacker *lrNacker // nil: pion's NACK generator, and no repair times

	mu         sync.Mutex
	seen       int // sink packets consumed
	parts      []uint8
	completeAt []time.Time
	results    []lrFrameResult
	next       int64 // next frame to decide, -1 until the first packet
	broken     bool  // waiting for a keyframe after a failed TL0 frame
	lastRender time.Time
	lastPLI    time.Time
	plis       []time.Time
}

func startLRVideoModel(tb testing.TB, src *lrVideoSource, sink *mediatest.Sink, nacker *lrNacker, pli func() error) *lrVideoModel {
	m := &lrVideoModel{src: src, sink: sink, nacker: nacker, pli: pli, next: -1}
	lrEvery(tb, 10*time.Millisecond, func() error {
		m.step(time.Now())
		return nil
	})
	return m
}

func (m *lrVideoModel) grow(f uint32) {
	for uint32(len(m.parts)) <= f {
		m.parts = append(m.parts, 0)
		m.completeAt = append(m.completeAt, time.Time{})
		m.results = append(m.results, lrFrameResult{})
	}
}

// step takes in the packets that arrived and decides every frame whose
// fate is known at now.
func (m *lrVideoModel) step(now time.Time) {
	fs, as := m.sink.Frames(), m.sink.Arrivals()
	sent := m.src.next()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := min(len(fs), len(as))
	for i := m.seen; i < n; i++ {
		f, part := fs[i]/lrMaxParts, fs[i]%lrMaxParts
		if f >= sent {
			continue // not a frame the source sent: never expected
		}
		m.grow(f)
		if m.next < 0 {
			m.next = int64(f)
		}
		bit := uint8(1) << part
		if m.parts[f]&bit != 0 {
			continue
		}
		m.parts[f] |= bit
		if bits.OnesCount8(m.parts[f]) == m.src.frame(f).parts {
			at := as[i]
			if r, ok := m.nacker.repairedAt(fs[i]); ok && r.Before(at) {
				at = r // a retransmission pion's reader held back
			}
			m.completeAt[f] = at
		}
	}
	m.seen = n
	if m.next < 0 {
		return
	}
	for uint32(m.next) < sent {
		f := uint32(m.next)
		m.grow(f)
		fr := m.src.frame(f)
		useBy := fr.sentAt.Add(lrDeadline)
		if fr.tid > 0 {
			useBy = fr.sentAt.Add(lrPlayoutDelay + lrSkipAfter(fr.tid))
		}
		c := m.completeAt[f]
		usable := !c.IsZero() && !c.After(useBy)
		if !usable && !now.After(useBy) {
			break // may still complete
		}
		r := lrFrameResult{complete: usable}
		refOK := fr.ref >= 0 && fr.ref < int64(len(m.results)) && m.results[fr.ref].decoded
		if usable && (fr.key || refOK) {
			r.decoded = true
			r.renderAt = c
			if at := fr.sentAt.Add(lrPlayoutDelay); r.renderAt.Before(at) {
				r.renderAt = at
			}
			if r.renderAt.Before(m.lastRender) {
				r.renderAt = m.lastRender
			}
			m.lastRender = r.renderAt
			m.broken = false
		} else if fr.tid == 0 {
			if !m.broken {
				m.broken = true
				m.lastPLI = time.Time{} // ask at once
			}
		}
		m.results[f] = r
		m.next++
	}
	if m.broken && now.Sub(m.lastPLI) >= lrPLIInterval {
		m.lastPLI = now
		m.plis = append(m.plis, now)
		_ = m.pli()
	}
}

// lrVideoStats are the video figures of frames [from, to).
type lrVideoStats struct {
	frames, complete, decoded int
	packets, packetsLost      int // packets sent, and never received at all
	freezes                   int
	freezeTime                time.Duration
	longestGap                time.Duration
	// late: complete frames whose last packet came after lrPlayoutDelay;
	// completion: their 95th and 99th percentile time from send to complete
	late     int
	p95, p99 time.Duration
}

// stats computes the figures of frames [from, to); call it once every
// frame of the range is decided (lrDeadline after the last was sent).
//
// Freezes follow Chrome's definition (webrtc-stats freezeCount): a gap
// between two rendered frames is a freeze when it is at least
// max(3 x avg, avg + 150 ms), avg being the mean of the last 30 gaps. The
// gaps are those between the frames of the range rendered, from when the
// first frame was due (sent + lrPlayoutDelay) to when the last one was due:
// a picture frozen across the start or the end of the range counts for its
// part inside it.
func (m *lrVideoModel) stats(from, to uint32) lrVideoStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st lrVideoStats
	start := m.src.frame(from).sentAt.Add(lrPlayoutDelay)
	end := m.src.frame(to - 1).sentAt.Add(lrPlayoutDelay)
	points := []time.Time{start}
	var completion []time.Duration
	for f := from; f < to; f++ {
		fr := m.src.frame(f)
		st.frames++
		st.packets += fr.parts
		var r lrFrameResult
		var got uint8
		if f < uint32(len(m.results)) {
			r, got = m.results[f], m.parts[f]
		}
		st.packetsLost += fr.parts - bits.OnesCount8(got)
		// complete within the deadline (a skipped TL1 or TL2 frame may be)
		if f < uint32(len(m.completeAt)) && !m.completeAt[f].IsZero() && !m.completeAt[f].After(fr.sentAt.Add(lrDeadline)) {
			st.complete++
			d := m.completeAt[f].Sub(fr.sentAt)
			completion = append(completion, d)
			if d > lrPlayoutDelay {
				st.late++
			}
		}
		if r.decoded {
			st.decoded++
			points = append(points, r.renderAt)
		}
	}
	st.p95, st.p99 = mediatest.Percentile(completion, 95), mediatest.Percentile(completion, 99)
	if last := points[len(points)-1]; end.After(last) {
		points = append(points, end)
	}
	var gaps []time.Duration
	for i := 1; i < len(points); i++ {
		g := points[i].Sub(points[i-1])
		avg := lrFrameInterval
		if len(gaps) > 0 {
			var sum time.Duration
			recent := gaps[max(0, len(gaps)-30):]
			for _, x := range recent {
				sum += x
			}
			avg = sum / time.Duration(len(recent))
		}
		st.longestGap = max(st.longestGap, g)
		if g >= max(3*avg, avg+150*time.Millisecond) {
			st.freezes++
			st.freezeTime += g
		}
		gaps = append(gaps, g)
	}
	return st
}

// keyRequests is the number of PLIs the model sent in [from, to).
func (m *lrVideoModel) keyRequests(from, to time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.plis {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// failures describes up to limit frames of [from, to) that were not
// complete in time: when, which packets arrived, and how long the picture
// then stayed frozen.
func (m *lrVideoModel) failures(from, to uint32, limit int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	t0 := m.src.frame(from).sentAt
	for f := from; f < to && len(out) < limit; f++ {
		if f >= uint32(len(m.results)) || m.results[f].complete {
			continue
		}
		fr := m.src.frame(f)
		next := "never"
		for g := f + 1; g < uint32(len(m.results)); g++ {
			if m.results[g].decoded {
				next = fmt.Sprintf("%v later (frame %d)", m.results[g].renderAt.Sub(fr.sentAt).Round(time.Millisecond), g)
				break
			}
		}
		kind := "inter"
		if fr.key {
			kind = "key"
		}
		out = append(out, fmt.Sprintf("%.2fs %s frame %d: parts %08b of %d, next decoded %s",
			fr.sentAt.Sub(t0).Seconds(), kind, f, m.parts[f], fr.parts, next))
	}
	return strings.Join(out, "; ")
}

// lrStalls notices when the benchmark process was not scheduled for a
// while (a 10 ms ticker firing 100 ms or more late): the machine is shared,
// and media timing means nothing across such a stall.
type lrStalls struct {
	mu     sync.Mutex
	stalls []lrStall
}

type lrStall struct {
	end time.Time
	dur time.Duration
}

func startLRStalls(tb testing.TB) *lrStalls {
	w := &lrStalls{}
	last := time.Now()
	lrEvery(tb, 10*time.Millisecond, func() error {
		now := time.Now()
		if late := now.Sub(last) - 10*time.Millisecond; late >= 100*time.Millisecond {
			w.mu.Lock()
			w.stalls = append(w.stalls, lrStall{end: now, dur: late})
			w.mu.Unlock()
		}
		last = now
		return nil
	})
	return w
}

// in returns the number and total length of the stalls that ended in
// [from, to).
func (w *lrStalls) in(from, to time.Time) (n int, total time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.stalls {
		if !s.end.Before(from) && s.end.Before(to) {
			n++
			total += s.dur
		}
	}
	return n, total
}

// lrNackRetry is how long the subscriber's NACKer waits for a
// retransmission before asking again: the round trip, plus a margin.
const (
	lrNackRetry      = 2*lrOneWay + 5*time.Millisecond
	lrNackMaxRetries = 10
	lrNackMaxAge     = time.Second
)

// lrNacker is the subscriber's NACK generator, in the manner of a browser's
// (libwebrtc's NackRequester) rather than pion's: it NACKs a missing packet
// as soon as a later one shows the gap, asks again every lrNackRetry, at
// most lrNackMaxRetries times, and forgets a packet once it is received,
// retransmitted (on the media or the RTX stream) or rebuilt from FEC: the
// sink's sequence numbers, which include the last two, count as received.
// pion's generator asks for every missing packet every 100 ms without limit
// and never learns of packets the application rebuilt from FEC, which would
// spend the SFU's retransmission budget on packets the subscriber has; the
// NACKs it writes are dropped here. It is the first interceptor of the
// chain, so it sees every packet SRTP lets through, FEC packets included.
//
// One lrNacker serves one PeerConnection (the subscriber's) and one video
// stream (the first bound whose codec has NACK feedback).
type lrNacker struct {
	interceptor.NoOp

	mediaPT atomic.Uint32 // the media stream's (VP8) payload type
	lastPT  atomic.Uint32 // payload type of the last media packet

	mu       sync.Mutex
	writer   interceptor.RTCPWriter
	ssrc     uint32
	sink     *mediatest.Sink
	sinkSeen int
	started  bool
	highest  int64
	missing  map[int64]*lrNackEntry
	nacks    int // sequence numbers NACKed, retries included
	// when tracing: when each sequence number was NACKed
	trace map[uint16][]time.Time
	// when the first retransmission of each packet (by the sinks' index)
	// arrived, read by the RTX stream's own goroutine: pion's track reader
	// hands an RTX packet on only after the next media packet, up to a
	// frame interval later, which a browser does not (repairedAt)
	repaired map[uint32]time.Time

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type lrNackEntry struct {
	first, last time.Time
	tries       int
}

func newLRNacker(tb testing.TB, trace bool) *lrNacker {
	n := &lrNacker{missing: map[int64]*lrNackEntry{}, stop: make(chan struct{}), done: make(chan struct{}),
		repaired: map[uint32]time.Time{}}
	if trace {
		n.trace = map[uint16][]time.Time{}
	}
	go n.loop()
	tb.Cleanup(func() { _ = n.Close() })
	return n
}

func (n *lrNacker) NewInterceptor(string) (interceptor.Interceptor, error) { return n, nil }

// setSink names the sink whose rebuilt packets count as received.
func (n *lrNacker) setSink(sk *mediatest.Sink) {
	n.mu.Lock()
	n.sink = sk
	n.mu.Unlock()
}

func (n *lrNacker) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	n.mu.Lock()
	n.writer = w
	n.mu.Unlock()
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		kept := make([]rtcp.Packet, 0, len(pkts))
		for _, p := range pkts {
			if _, ok := p.(*rtcp.TransportLayerNack); !ok {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return 0, nil
		}
		return w.Write(kept, a)
	})
}

func (n *lrNacker) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if strings.EqualFold(info.MimeType, webrtc.MimeTypeRTX) {
		return n.bindRTX(r)
	}
	nack := false
	for _, fb := range info.RTCPFeedback {
		nack = nack || (fb.Type == "nack" && fb.Parameter == "")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !nack || n.ssrc != 0 {
		return r
	}
	n.ssrc = info.SSRC
	n.mediaPT.Store(uint32(info.PayloadType))
	ssrc := info.SSRC
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		k, attr, err := r.Read(b, a)
		if err == nil && k >= 12 && binary.BigEndian.Uint32(b[8:12]) == ssrc {
			n.lastPT.Store(uint32(b[1] & 0x7F))
			n.mu.Lock()
			n.receivedLocked(binary.BigEndian.Uint16(b[2:4]), time.Now())
			n.mu.Unlock()
		}
		return k, attr, err
	})
}

// bindRTX works around pion's RTX depacketizer, which gives a repaired
// packet the payload type the track had last, not the one the RTX payload
// type is associated with: the SFU resends a packet as it came from the
// publisher (VP8), but while FEC is on the media stream is RED, and the
// sink would take the VP8 payload for a RED one. While the media stream's
// last packet was not VP8 (so RED: FEC packets travel inside RED), the
// payload of an RTX packet is wrapped as RED (one primary block header)
// before pion unwraps it.
func (n *lrNacker) bindRTX(r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		k, attr, err := r.Read(b, a)
		if err == nil {
			n.noteRepair(b[:k])
		}
		last, media := n.lastPT.Load(), n.mediaPT.Load()
		if err != nil || k < 12 || k >= len(b) || last == 0 || last == media || b[0]&0x20 != 0 {
			return k, attr, err // not RED now, no room, or padding (a probe)
		}
		h := 12 + 4*int(b[0]&0x0F)
		if b[0]&0x10 != 0 { // header extension
			if k < h+4 {
				return k, attr, err
			}
			h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:h+4]))
		}
		if k < h+3 { // the original sequence number and a payload
			return k, attr, err
		}
		copy(b[h+3:k+1], b[h+2:k])
		b[h+2] = uint8(media) & 0x7F // RED primary block: F=0, the media payload type
		return k + 1, attr, err
	})
}

// noteRepair records when the retransmission of a packet of the
// benchmark's video source arrived: the RTX payload is the original
// sequence number, then the VP8 payload the source stamped (lrStamp).
func (n *lrNacker) noteRepair(b []byte) {
	if len(b) < 12 {
		return
	}
	h := 12 + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 && len(b) >= h+4 {
		h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:h+4]))
	}
	if len(b) < h+2+1 {
		return
	}
	off := h + 2 + mediatest.VP8IndexOffset(b[h+2:])
	if len(b) < off+4 {
		return // padding, or not the source's
	}
	idx := binary.BigEndian.Uint32(b[off:])
	now := time.Now()
	n.mu.Lock()
	if _, ok := n.repaired[idx]; !ok {
		n.repaired[idx] = now
	}
	n.mu.Unlock()
}

// repairedAt is when the first retransmission of the packet with the
// sinks' index idx arrived.
func (n *lrNacker) repairedAt(idx uint32) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.repaired[idx]
	return t, ok
}

// receivedLocked notes one packet received (or rebuilt) and NACKs at once
// the gap it reveals.
func (n *lrNacker) receivedLocked(seq uint16, now time.Time) {
	if !n.started {
		n.started, n.highest = true, int64(seq)
		return
	}
	u := n.highest + int64(int16(seq-uint16(n.highest)))
	if u <= n.highest {
		delete(n.missing, u)
		return
	}
	var fresh []uint16
	if u-n.highest <= 1000 { // a longer gap is a restart, not a loss
		for s := n.highest + 1; s < u; s++ {
			n.missing[s] = &lrNackEntry{first: now, last: now, tries: 1}
			fresh = append(fresh, uint16(s))
		}
	}
	n.highest = u
	n.sendLocked(fresh)
}

func (n *lrNacker) sendLocked(seqs []uint16) {
	if len(seqs) == 0 || n.writer == nil {
		return
	}
	n.nacks += len(seqs)
	if n.trace != nil {
		now := time.Now()
		for _, q := range seqs {
			n.trace[q] = append(n.trace[q], now)
		}
	}
	_, _ = n.writer.Write([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: n.ssrc,
		Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}}, nil)
}

func (n *lrNacker) loop() {
	defer close(n.done)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-tick.C:
			n.tick(now)
		}
	}
}

// tick takes in the packets the sink rebuilt and asks again for what is
// still missing.
func (n *lrNacker) tick(now time.Time) {
	n.mu.Lock()
	sk := n.sink
	n.mu.Unlock()
	var seqs []uint16
	if sk != nil {
		seqs = sk.Seqs()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sinkSeen < len(seqs) {
		for _, s := range seqs[n.sinkSeen:] {
			if n.started {
				n.receivedLocked(s, now)
			}
		}
		n.sinkSeen = len(seqs)
	}
	var due []int64
	for s, e := range n.missing {
		switch {
		case e.tries >= lrNackMaxRetries || now.Sub(e.first) > lrNackMaxAge:
			delete(n.missing, s)
		case now.Sub(e.last) >= lrNackRetry:
			e.last = now
			e.tries++
			due = append(due, s)
		}
	}
	slices.Sort(due)
	again := make([]uint16, len(due))
	for i, s := range due {
		again[i] = uint16(s)
	}
	n.sendLocked(again)
}

// nacked is the number of sequence numbers NACKed, retries included.
func (n *lrNacker) nacked() int {
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nacks
}

// nackTimes returns when seq was NACKed (tracing only).
func (n *lrNacker) nackTimes(seq uint16) []time.Time {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Time(nil), n.trace[seq]...)
}

func (n *lrNacker) Close() error {
	n.once.Do(func() { close(n.stop); <-n.done })
	return nil
}

// lrTraceLate: trace also details the frames complete this late after
// they were sent (late enough to freeze the picture).
const lrTraceLate = 200 * time.Millisecond

// trace details up to limit frames of [from, to) that were not complete in
// time, or complete later than lrTraceLate, packet by packet: when each arrived (ms after the frame was sent),
// when the lossy leg carried it ("x": dropped there) and when the
// subscriber NACKed it. wire is the lossy leg's log of the video stream;
// pubSeqs says it is in the publisher's numbering (the uplink) rather than
// the subscriber's.
func (m *lrVideoModel) trace(n *lrNacker, wire []lrChunk, pubSeqs bool, from, to uint32, limit int) string {
	fs, as, ss := m.sink.Frames(), m.sink.Arrivals(), m.sink.Seqs()
	seqOf := map[uint32]uint16{}
	atOf := map[uint32]time.Time{}
	if m.sink.Padding() == 0 { // else Seqs and Frames are not aligned
		for i := 0; i < len(fs) && i < len(as) && i < len(ss); i++ {
			if _, ok := seqOf[fs[i]]; !ok {
				seqOf[fs[i]], atOf[fs[i]] = ss[i], as[i]
			}
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprint(d.Round(time.Millisecond).Milliseconds()) }
	var out []string
	m.mu.Lock()
	defer m.mu.Unlock()
	for f := from; f < to && len(out) < limit; f++ {
		late := f < uint32(len(m.results)) && m.results[f].complete &&
			m.completeAt[f].Sub(m.src.frame(f).sentAt) > lrTraceLate
		if f >= uint32(len(m.results)) || m.results[f].complete && !late {
			continue
		}
		fr := m.src.frame(f)
		// the subscriber's numbering: the parts of a frame are consecutive
		var base uint16
		haveBase := false
		for p := 0; p < fr.parts && !haveBase; p++ {
			if s, ok := seqOf[f*lrMaxParts+uint32(p)]; ok {
				base, haveBase = s-uint16(p), true
			}
		}
		line := fmt.Sprintf("frame %d (%s, sent at %.2fs):", f, map[bool]string{true: "key", false: "inter"}[fr.key],
			fr.sentAt.Sub(m.src.frame(from).sentAt).Seconds())
		for p := 0; p < fr.parts; p++ {
			subSeq := base + uint16(p)
			wireSeq := subSeq
			if pubSeqs {
				wireSeq = fr.seq + uint16(p)
			}
			var ws, ns []string
			for _, c := range wire {
				if (pubSeqs || haveBase) && c.seq == wireSeq && !c.at.Before(fr.sentAt) && c.at.Sub(fr.sentAt) < 2*time.Second {
					w := ms(c.at.Sub(fr.sentAt))
					if c.dropped {
						w += "x"
					}
					ws = append(ws, w)
				}
			}
			if haveBase {
				for _, t := range n.nackTimes(subSeq) {
					ns = append(ns, ms(t.Sub(fr.sentAt)))
				}
			}
			got := "never"
			if at, ok := atOf[f*lrMaxParts+uint32(p)]; ok {
				got = ms(at.Sub(fr.sentAt))
			}
			line += fmt.Sprintf(" [%d: arrived %s, leg %v, NACKs %v]", p, got, ws, ns)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
