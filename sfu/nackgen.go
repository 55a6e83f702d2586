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
	audioNackTick     = 10 * time.Millisecond
	audioNackInterval = audioNackTick
	audioNackMaxAge   = 400 * time.Millisecond
	audioNackMaxTries = 40

	// Audio comes at a steady pace (a packet per 20 ms frame), so a lost
	// packet is overdue before any later one arrives to reveal the gap: on
	// a very lossy path that later packet may come 100 ms or more later.
	// An audio packet audioOverdue past its due time is asked for at
	// once. (A packet that was never sent, in a pause, is asked for in
	// vain: the publisher ignores it.)
	audioFrame   = 20 * time.Millisecond
	audioOverdue = 10 * time.Millisecond
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
	// audio: when the highest packet arrived, and how many packets after it
	// are taken as overdue so far
	highestAt time.Time
	overdue   int
}

// received records packet seq (new, late or repaired) arriving at now.
func (n *nackTracker) received(seq uint16, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		n.started, n.highest, n.highestAt = true, seq, now
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
			if e := &n.ring[s%nackWindow]; !e.valid || e.seq != s { // not already asked for as overdue
				*e = nackEntry{seq: s, valid: true, first: now}
			}
		}
	}
	n.ring[seq%nackWindow].valid = false
	n.highest, n.highestAt, n.overdue = seq, now, 0
}

// markOverdue takes the audio packets after the highest that should have
// arrived by now as missing; n.mu is held.
func (n *nackTracker) markOverdue(now time.Time) {
	if !n.started || n.highestAt.IsZero() {
		return
	}
	late := now.Sub(n.highestAt) - audioOverdue
	if late <= 0 || late > audioNackMaxAge {
		return
	}
	k := min(int(late/audioFrame), int(audioNackMaxAge/audioFrame))
	for ; n.overdue < k; n.overdue++ {
		s := n.highest + uint16(n.overdue) + 1
		n.ring[s%nackWindow] = nackEntry{seq: s, valid: true, first: n.highestAt.Add(time.Duration(n.overdue+1) * audioFrame)}
	}
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
		n.markOverdue(now)
	}
	for i := range n.ring {
		e := &n.ring[i]
		if !e.valid {
			continue
		}
		// (overdue audio packets are after the highest: not old)
		if d := n.highest - e.seq; now.Sub(e.first) > maxAge || e.tries >= maxTries || (d >= nackWindow && d < 1<<15) {
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
