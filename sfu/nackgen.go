package sfu

import (
	"sync"
	"time"
)

// Publisher-leg NACKs. pion's generator cannot be used: it does not see
// packets repaired on an RTX stream (pion unwraps those after its
// interceptors), so it asks for every repaired packet again until its
// retry limit. The up track's reader sees every packet, repaired ones
// included, and feeds a nackTracker; a timer sends what is due.

const (
	nackWindow   = 512                    // sequence numbers tracked
	nackMaxGap   = 256                    // a larger jump is a restart, not loss
	nackInterval = 50 * time.Millisecond  // between requests for one packet (about an RTT)
	nackMaxAge   = 600 * time.Millisecond // past this a packet is too late for any playout
	nackMaxTries = 10
	nackTick     = 20 * time.Millisecond
	// With the publisher's round trip known, a packet is asked for again
	// one round trip plus nackRTTMargin (its pacing and jitter) after the
	// last request, at most nackMaxInterval apart.
	nackRTTMargin   = 10 * time.Millisecond
	nackMaxInterval = 150 * time.Millisecond

	// Audio packets are small and matter sooner: asked for every tick
	// (duplicate answers cost little), for as long as a receiver's audio
	// playout can still use them.
	audioNackInterval = nackTick
	audioNackMaxAge   = 400 * time.Millisecond
	audioNackMaxTries = 20
)

type nackEntry struct {
	seq   uint16
	valid bool
	tries uint8
	first time.Time // when the gap was seen
	last  time.Time // last request
}

// nackTracker finds a stream's missing packets and says which to request
// now. received is called by the stream's reader, due by its NACK timer.
type nackTracker struct {
	audio   bool // audio timing (audioNackInterval...); set before use
	mu      sync.Mutex
	rtt     time.Duration // round trip to the publisher (0: unknown); set by the NACK timer
	started bool
	highest uint16
	ring    [nackWindow]nackEntry
}

// received records packet seq (new, late or repaired) arriving at now.
func (n *nackTracker) received(seq uint16, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		n.started, n.highest = true, seq
		return
	}
	if !seqNewer(seq, n.highest) {
		if e := &n.ring[seq%nackWindow]; e.valid && e.seq == seq {
			e.valid = false // repaired (or just late)
		}
		return
	}
	if gap := seq - n.highest - 1; gap > nackMaxGap {
		n.ring = [nackWindow]nackEntry{} // a restart: forget the old gaps
	} else {
		for s := n.highest + 1; s != seq; s++ {
			n.ring[s%nackWindow] = nackEntry{seq: s, valid: true, first: now}
		}
	}
	n.ring[seq%nackWindow].valid = false
	n.highest = seq
}

// due appends to out the missing packets to request now and returns it.
func (n *nackTracker) due(now time.Time, out []uint16) []uint16 {
	n.mu.Lock()
	defer n.mu.Unlock()
	interval, maxAge, maxTries := nackInterval, nackMaxAge, uint8(nackMaxTries)
	if n.rtt > 0 {
		// ask again once the answer to the last request is overdue
		interval = min(max(n.rtt+nackRTTMargin, nackTick), nackMaxInterval)
	}
	if n.audio {
		interval, maxAge, maxTries = audioNackInterval, audioNackMaxAge, audioNackMaxTries
	}
	for i := range n.ring {
		e := &n.ring[i]
		if !e.valid {
			continue
		}
		if now.Sub(e.first) > maxAge || e.tries >= maxTries || n.highest-e.seq >= nackWindow {
			e.valid = false // too late, or hopeless
			continue
		}
		if !e.last.IsZero() && now.Sub(e.last) < interval {
			continue
		}
		e.last = now
		e.tries++
		out = append(out, e.seq)
	}
	return out
}
