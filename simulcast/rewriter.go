// Package simulcast decides, per down track, which incoming stream to forward
// and rewrites RTP headers so that the subscriber sees one continuous stream.
//
// This file holds the sequence-number and timestamp translation; vp8.go the
// VP8 descriptor rewriting; selector.go the choice of layer.
package simulcast

import "strings"

// Rewriter maps incoming sequence numbers and timestamps of a source stream
// onto one continuous outgoing stream. It is owned by a single goroutine (the
// down track's writer) and is not safe for concurrent use.
type Rewriter struct {
	started   bool
	seqOffset uint16
	tsOffset  uint32
	lastSeq   uint16 // last outgoing sequence number
	lastTS    uint32 // last outgoing timestamp
	firstSeq  uint16 // first outgoing sequence number of the current segment
	// earlier segments of the current source, cut by inserted packets
	// (padding, FEC: up to one per frame, so enough for a few seconds)
	segs [128]segment
	nseg int
}

// segment is a run of outgoing sequence numbers mapped with one offset.
type segment struct {
	first, last uint16
	offset      uint16
}

// Started reports whether a first packet has been mapped.
func (r *Rewriter) Started() bool { return r.started }

// Start anchors the translation: incoming seq/ts will map to outSeq/outTS.
func (r *Rewriter) Start(seq uint16, ts uint32, outSeq uint16, outTS uint32) {
	r.started = true
	r.seqOffset = outSeq - seq
	r.tsOffset = outTS - ts
	r.lastSeq = outSeq
	r.lastTS = outTS
	r.firstSeq = outSeq
	r.nseg = 0
}

// SwitchSource re-anchors the translation on a new source stream so that its
// packet seq/ts follows the last outgoing packet without a gap: the sequence
// number continues at last+1 and the timestamp advances by tsGap.
func (r *Rewriter) SwitchSource(seq uint16, ts uint32, tsGap uint32) {
	if !r.started {
		r.Start(seq, ts, seq, ts)
		return
	}
	r.seqOffset = r.lastSeq + 1 - seq
	r.tsOffset = r.lastTS + tsGap - ts
	r.firstSeq = r.lastSeq + 1
	r.nseg = 0 // the previous source's packets are not mapped back
}

// Insert takes the next outgoing sequence number for a packet of the
// SFU's own (padding for a bandwidth probe) and returns it with the last
// timestamp; the source's following packets continue after it, and NACKs
// for the inserted number are not mapped.
func (r *Rewriter) Insert() (uint16, uint32) {
	r.closeSegment()
	r.lastSeq++
	r.seqOffset++
	r.firstSeq = r.lastSeq + 1
	return r.lastSeq, r.lastTS
}

// Skip takes incoming sequence number seq out of the outgoing numbering
// (a packet of the source that is not forwarded, such as a publisher's FEC
// packet): the source's following packets are numbered one lower, so the
// subscriber sees no gap to NACK. Only the number right after the last one
// mapped can be skipped; it reports whether seq was.
func (r *Rewriter) Skip(seq uint16) bool {
	if !r.started || seq+r.seqOffset != r.lastSeq+1 {
		return false
	}
	r.closeSegment()
	r.seqOffset--
	r.firstSeq = r.lastSeq + 1
	return true
}

// closeSegment keeps the current segment's mapping, if it has packets,
// among the earlier ones.
func (r *Rewriter) closeSegment() {
	if r.lastSeq == r.firstSeq-1 {
		return
	}
	if r.nseg == len(r.segs) {
		copy(r.segs[:], r.segs[1:])
		r.nseg--
	}
	r.segs[r.nseg] = segment{first: r.firstSeq, last: r.lastSeq, offset: r.seqOffset}
	r.nseg++
}

// Rewrite maps an incoming packet's seq/ts to outgoing values. A packet
// older than the current segment (reordered on its way in, behind a padding
// insert or a re-anchor) keeps the numbers of the segment it belongs to; it
// is refused (ok false) when no segment covers it, since its number may
// already have been given to another packet.
func (r *Rewriter) Rewrite(seq uint16, ts uint32) (outSeq uint16, outTS uint32, ok bool) {
	outSeq, outTS = seq+r.seqOffset, ts+r.tsOffset
	if seqNewer(outSeq, r.lastSeq) {
		r.lastSeq, r.lastTS = outSeq, outTS
		if r.lastSeq-r.firstSeq >= 0x4000 {
			// keep the segment's start within reach of sequence arithmetic;
			// packets that far back are of no use to anyone
			r.firstSeq, r.nseg = r.lastSeq-0x2000, 0
		}
		return outSeq, outTS, true
	}
	if outSeq-r.firstSeq < 0x8000 {
		return outSeq, outTS, true // late, but inside the current segment
	}
	for i := r.nseg - 1; i >= 0; i-- {
		s := r.segs[i]
		if seq-(s.first-s.offset) <= s.last-s.first {
			return seq + s.offset, outTS, true
		}
	}
	return 0, 0, false
}

// Reverse maps an outgoing sequence number (from a subscriber's NACK) back to
// the incoming one of the current source. Packets sent before the last
// source switch are not mapped: they belong to the previous source, and the
// switch happened on a keyframe that makes them unnecessary.
func (r *Rewriter) Reverse(outSeq uint16) (uint16, bool) {
	if !r.started || seqNewer(outSeq, r.lastSeq) {
		return 0, false
	}
	if outSeq-r.firstSeq < 0x8000 {
		return outSeq - r.seqOffset, true
	}
	for i := r.nseg - 1; i >= 0; i-- {
		s := r.segs[i]
		if outSeq-s.first <= s.last-s.first {
			return outSeq - s.offset, true
		}
	}
	return 0, false
}

// TS maps an incoming timestamp with the current offset (for resending a
// packet under the sequence number a subscriber NACKed).
func (r *Rewriter) TS(ts uint32) uint32 { return ts + r.tsOffset }

// Munger keeps a codec's own numbering (carried in its payload descriptor)
// continuous across layer switches; VP8Munger and VP9Munger implement it.
type Munger interface {
	// Switch re-anchors on a new source whose first packet is p.
	Switch(p []byte)
	// Munge rewrites a packet in place and records its numbers.
	Munge(p []byte)
	// MungeOld rewrites a packet sent before (a retransmission).
	MungeOld(p []byte)
}

// NewMunger returns the munger for a codec (mime type such as
// "video/VP8"), or nil when the codec has no numbering to rewrite.
func NewMunger(mime string) Munger {
	switch {
	case strings.EqualFold(mime, "video/VP8"):
		return &VP8Munger{}
	case strings.EqualFold(mime, "video/VP9"):
		return &VP9Munger{}
	}
	return nil
}

// seqNewer reports whether a is after b in RTP sequence space (RFC 3550).
func seqNewer(a, b uint16) bool {
	return a != b && a-b < 0x8000
}
