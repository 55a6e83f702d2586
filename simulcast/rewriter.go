// Package simulcast decides, per down track, which incoming stream to forward
// and rewrites RTP headers so that the subscriber sees one continuous stream.
//
// This file holds the sequence-number and timestamp translation; layer
// selection arrives with simulcast support.
package simulcast

// Rewriter maps incoming sequence numbers and timestamps of a source stream
// onto one continuous outgoing stream. It is owned by a single goroutine (the
// down track's writer) and is not safe for concurrent use.
type Rewriter struct {
	started   bool
	seqOffset uint16
	tsOffset  uint32
	lastSeq   uint16 // last outgoing sequence number
	lastTS    uint32 // last outgoing timestamp
	firstSeq  uint16 // first outgoing sequence number of the current source
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
}

// Rewrite maps an incoming packet's seq/ts to outgoing values.
func (r *Rewriter) Rewrite(seq uint16, ts uint32) (uint16, uint32) {
	outSeq, outTS := seq+r.seqOffset, ts+r.tsOffset
	if seqNewer(outSeq, r.lastSeq) {
		r.lastSeq = outSeq
		r.lastTS = outTS
	}
	return outSeq, outTS
}

// Reverse maps an outgoing sequence number (from a subscriber's NACK) back to
// the incoming one of the current source. Packets sent before the last
// source switch are not mapped: they belong to the previous source, and the
// switch happened on a keyframe that makes them unnecessary.
func (r *Rewriter) Reverse(outSeq uint16) (uint16, bool) {
	if !r.started || outSeq-r.firstSeq >= 0x8000 || seqNewer(outSeq, r.lastSeq) {
		return 0, false
	}
	return outSeq - r.seqOffset, true
}

// seqNewer reports whether a is after b in RTP sequence space (RFC 3550).
func seqNewer(a, b uint16) bool {
	return a != b && a-b < 0x8000
}
