package red

import (
	"fmt"
	"math"
)

const (
	// MaxDistance is the largest number of redundant copies an Encoder
	// sends (the size of its history).
	MaxDistance = 12
	// DefaultDistance is a new Encoder's distance: one copy.
	DefaultDistance = 1
	// DefaultMaxSize is a new Encoder's cap on the RED payload size, well
	// under a typical path MTU after RTP, SRTP, UDP and IP overheads.
	DefaultMaxSize = 1200
	// historySize is the history ring's length: at least MaxDistance, and a
	// divisor of 65536 so that slots stay in step across sequence number
	// wraps.
	historySize = 16
)

// histEntry is one previous packet kept for redundancy.
type histEntry struct {
	seq    uint16
	ts     uint32
	valid  bool
	usable bool   // data can be sent as a redundant block: 1..MaxBlockLen bytes
	data   []byte // copy of the payload; the buffer is kept across reuse
}

// Encoder builds RED payloads for one outgoing stream from its plain Opus
// payloads: each carries the current payload as primary and copies of up to
// Distance previous payloads. Give it the stream's outgoing sequence
// numbers and timestamps (after any rewriting), in sending order.
//
// The history is a fixed ring of historySize entries whose buffers grow to
// the largest payload seen, so in steady state Encode does not allocate
// (beyond growing dst, which the caller owns).
type Encoder struct {
	pt       uint8
	distance int
	maxSize  int
	hist     [historySize]histEntry
	scratch  [MaxDistance]Block
}

// NewEncoder returns an Encoder whose blocks carry payload type opusPT (the
// negotiated Opus payload type, not the RED one), with DefaultDistance and
// DefaultMaxSize.
func NewEncoder(opusPT uint8) (*Encoder, error) {
	if opusPT > MaxPT {
		return nil, fmt.Errorf("%w: %d", ErrBadPayloadType, opusPT)
	}
	return &Encoder{pt: opusPT, distance: DefaultDistance, maxSize: DefaultMaxSize}, nil
}

// SetDistance sets how many previous payloads each packet carries, clamped
// to 0..MaxDistance. With 0 the payload is still RED, with the primary only.
func (e *Encoder) SetDistance(d int) { e.distance = min(max(d, 0), MaxDistance) }

// Distance returns the current distance.
func (e *Encoder) Distance() int { return e.distance }

// SetMaxSize caps the size of the RED payloads: redundant blocks are left
// out, the oldest first, until the payload fits. The primary block is
// always sent, so a payload can exceed the cap when the primary alone does.
func (e *Encoder) SetMaxSize(n int) { e.maxSize = n }

// Reset forgets the history, for a new source or SSRC.
func (e *Encoder) Reset() {
	for i := range e.hist {
		e.hist[i] = histEntry{data: e.hist[i].data[:0]}
	}
}

// Encode appends to dst the RED payload for the packet seq/ts whose Opus
// payload is opus, and records opus (copied) for the packets that follow.
//
// The k-th previous packet (k = 1..Distance) is carried only when packets
// seq-1 .. seq-k are all in the history, so a gap in the sequence numbers
// ends the redundancy: blocks from before a gap are never sent, and every
// block sent belongs to a packet that directly precedes the next one. Its
// timestamp offset is the true difference of the timestamps, ts minus the
// packet's own timestamp, and the redundancy also ends at an offset that is
// not positive and increasing or does not fit 14 bits (for example after a
// DTX pause). Payloads that cannot be a block (empty, or longer than
// MaxBlockLen) are skipped without ending the redundancy; small ones, such
// as the 1-2 byte frames of Opus DTX, are carried (they cost 4 header bytes
// more). Blocks are written oldest first (decreasing offset).
func (e *Encoder) Encode(dst []byte, seq uint16, ts uint32, opus []byte) []byte {
	n := 0
	size := 1 + len(opus) // final header and primary
	var last uint32
	for k := 1; k <= e.distance; k++ {
		s := seq - uint16(k)
		h := &e.hist[s%historySize]
		if !h.valid || h.seq != s {
			break // a gap: the packets before it are not sent
		}
		off := ts - h.ts
		if off <= last || off > MaxTSOffset {
			break
		}
		last = off
		if !h.usable {
			continue
		}
		if size+4+len(h.data) > e.maxSize {
			break // the older blocks are dropped first
		}
		size += 4 + len(h.data)
		e.scratch[n] = Block{PT: e.pt, TSOffset: uint16(off), Data: h.data}
		n++
	}
	red := e.scratch[:n]
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		red[i], red[j] = red[j], red[i]
	}
	dst = appendBlocks(dst, Block{PT: e.pt, Data: opus}, red) // limits checked above
	e.store(seq, ts, opus)
	return dst
}

// store records a packet in the history, unless its slot already holds a
// newer packet (opus arrived late).
func (e *Encoder) store(seq uint16, ts uint32, opus []byte) {
	h := &e.hist[seq%historySize]
	if h.valid && int16(seq-h.seq) < 0 {
		return
	}
	h.seq, h.ts, h.valid = seq, ts, true
	h.usable = len(opus) > 0 && len(opus) <= MaxBlockLen
	if h.usable {
		h.data = append(h.data[:0], opus...)
	} else {
		h.data = h.data[:0]
	}
}

// FitDistance is the number of copies of d that fit in a DefaultMaxSize
// payload beside a primary, when every payload is payloadBytes long: what
// an Encoder at distance d sends for such a stream. Callers use it to
// count what the copies cost.
func FitDistance(d, payloadBytes int) int {
	payloadBytes = max(payloadBytes, 1)
	fit := (DefaultMaxSize - 1 - payloadBytes) / (4 + payloadBytes)
	return min(max(d, 0), max(fit, 0), MaxDistance)
}

// Loss-to-distance policy.
const (
	// residualTarget is the frame loss DistanceForLoss aims to leave after
	// recovery: about what Opus packet loss concealment hides well.
	residualTarget = 0.01
	// minLoss is the loss below which DistanceForLoss sends no copies.
	minLoss = 0.01
	// maxAutoDistance is the largest distance DistanceForLoss returns.
	maxAutoDistance = MaxDistance
)

// DistanceForLoss maps a packet loss fraction (0..1, as measured from the
// receiver's reports, preferably smoothed) to a redundancy distance.
//
// With independent losses of probability p, a frame is lost only when its
// own packet and the d packets carrying copies of it are all lost, so with
// distance d a fraction 1-p^(d+1) of the frames gets through. The policy
// picks the smallest d that leaves at most 1% of frames lost
// (p^(d+1) <= 1%), at least 1 and at most maxAutoDistance:
//
//	loss p   distance d   frames through 1-p^(d+1)
//	10%      1            99.0%
//	20%      2            99.2%
//	30%      3            99.2%
//	40%      5            99.6%
//	60%      9            99.4%
//	80%      12           94.5% (99% would need d=20)
//
// Below minLoss (1%) it is 0: no copies on a clean path, and none on a
// congested one either (callers pass the loss that is not congestion:
// copies would add to it). From 1% on it is at least 1.
//
// The maximum is MaxDistance, 12: each copy adds the audio bitrate once
// more, so at the top a subscriber receives thirteen times the audio
// bitrate (about 420 kbit/s for 32 kbit/s Opus; fewer copies fit beside
// larger frames, see FitDistance); that is what keeps speech intelligible
// at 80% random loss, the bar Chorus sets itself. The last copy is 240 ms
// old: a receiver's jitter buffer that has seen such late copies holds
// that much. Loss from congestion is the bandwidth estimator's business
// (it lowers video first); the copies are counted in the audio's demand.
func DistanceForLoss(loss float64) int {
	if math.IsNaN(loss) || loss < minLoss {
		return 0
	}
	if loss >= 1 {
		return maxAutoDistance
	}
	d := int(math.Ceil(math.Log(residualTarget)/math.Log(loss)-1e-9)) - 1
	return min(max(d, 1), maxAutoDistance)
}
