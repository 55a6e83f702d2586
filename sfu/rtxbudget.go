package sfu

import (
	"sync"
	"time"
)

// RetransmitBudget bounds the rate of retransmissions a subscriber
// connection receives. Without a bound, a link that loses packets because
// it is full is sent more packets (the retransmissions), loses more, is
// NACKed more: a congestion collapse. The control loop sets the rate from
// the bandwidth estimate; the down tracks' writers take from it.
type RetransmitBudget struct {
	mu     sync.Mutex
	rate   float64 // bits per second; 0: unlimited
	tokens float64 // bits
	last   time.Time
}

// retransmitShare is the part of a connection's estimate retransmissions
// may use; retransmitFloor the least they may always use.
const (
	retransmitShare = 0.25
	retransmitFloor = 64_000
	// bucketDepth: how many seconds of the rate may be spent at once
	bucketDepth = 0.2
	// inherentShare: on a path whose loss is inherent, retransmissions may
	// use this many times the loss rate more (a first resend and the
	// copies that make it arrive in time, see rtxCopies)
	inherentShare = 3
	// maxRetransmitShare caps the share: above 1, retransmissions on a
	// lossy path may exceed the estimate, which on such a path is often
	// only what the media needed (app-limited), not the capacity; the
	// estimator still sees a queue and backs off if there is one
	maxRetransmitShare = 2
	// retransmitFallback: the budget of a connection without an estimate
	retransmitFallback = 1_000_000
)

// SetEstimate sets the budget from the connection's estimate (bits per
// second) and its inherent loss (the loss that is not congestion: on such a
// path retransmissions repair, they do not congest, so they may use that
// much more). Without an estimate (a receiver that sends no transport-wide
// feedback) retransmissions get retransmitFallback.
func (b *RetransmitBudget) SetEstimate(estimate int, inherentLoss float64) {
	rate := float64(retransmitFallback)
	if estimate > 0 {
		share := min(maxRetransmitShare, retransmitShare+inherentShare*max(0, inherentLoss))
		rate = max(retransmitFloor, share*float64(estimate))
	}
	b.mu.Lock()
	b.rate = rate
	b.mu.Unlock()
}

// ResendKind ranks resends for the budget.
type ResendKind uint8

const (
	// FirstResend answers the first NACK of a packet.
	FirstResend ResendKind = iota
	// RepeatResend answers a packet NACKed again.
	RepeatResend
	// CopyResend is a copy sent unasked on a lossy path (see rtxCopies).
	CopyResend
)

// Take reports whether a packet of size bytes may be resent now, and
// accounts for it if so. Up to 100 ms of the rate may be spent at once. A
// repeat (a packet resent before, NACKed again) may only use the upper half
// of the bucket, and a copy only its upper quarter: first resends of fresh
// losses go first, then what receivers ask for again.
func (b *RetransmitBudget) Take(size int, now time.Time, kind ResendKind) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate == 0 {
		return true
	}
	if b.last.IsZero() {
		b.tokens = b.rate * bucketDepth // start full
	} else {
		b.tokens += b.rate * now.Sub(b.last).Seconds()
	}
	b.last = now
	// up to 100 ms of the rate at once, but always room for two full
	// packets: a low rate must slow retransmissions, not forbid them
	b.tokens = min(b.tokens, max(b.rate*bucketDepth, 2*maxPacketSize*8))
	bits := float64(size * 8)
	floor := 0.0
	switch kind {
	case RepeatResend:
		floor = b.rate * bucketDepth / 2 // half of the bucket
	case CopyResend:
		floor = b.rate * bucketDepth * 3 / 4 // three quarters
	}
	if b.tokens-bits < floor {
		return false
	}
	b.tokens -= bits
	return true
}
