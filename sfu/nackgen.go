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
	nackWindow      = 512                    // sequence numbers tracked
	nackMaxGap      = 256                    // a larger jump is a restart, not loss
	nackInterval    = 50 * time.Millisecond  // between requests for one packet (about an RTT)
	nackMaxAge      = 600 * time.Millisecond // past this a packet is too late for any playout
	nackMaxTries    = 10
	nackMinInterval = 20 * time.Millisecond // between requests for one packet, whatever the RTT
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

	// A video packet without the marker bit has more of its frame behind
	// it, sent within a few milliseconds (a sender's pacer spreads a frame
	// over its pacing rate). When nothing comes for a while (half as long
	// again as the longest recent gap inside a frame, plus a margin, within
	// these bounds), the next packet is taken as lost and asked for: the end
	// of a frame is otherwise only found missing when the next frame comes,
	// a frame interval later. Asking for a packet not sent yet costs at most
	// a duplicate.
	tailWaitMin    = 10 * time.Millisecond
	tailWaitMax    = 50 * time.Millisecond
	tailWaitMargin = 5 * time.Millisecond
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
	// video: whether the highest packet ended its frame, whether the packet
	// after it was taken as lost already, and the longest recent gap
	// between two packets of one frame (decaying)
	highestEnds bool
	tailAsked   bool
	spacing     time.Duration
}

// receivedPacket records packet seq arriving at now; ends says whether it
// ends its frame (the marker bit, for video). It reports whether the packet
// revealed a gap, or left the stream in the middle of a frame: either
// brings a request forward.
func (n *nackTracker) receivedPacket(seq uint16, ends bool, now time.Time) (soon bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		n.started, n.highest, n.highestAt, n.highestEnds = true, seq, now, ends
		return !ends
	}
	if !seqNewer(seq, n.highest) {
		if e := &n.ring[seq%nackWindow]; e.valid && e.seq == seq {
			e.valid = false // repaired (or just late)
		}
		return false
	}
	gap := seq - n.highest - 1
	if gap == 0 && !n.highestEnds {
		// the next packet of the same frame: how far apart they come
		n.spacing = max(now.Sub(n.highestAt), n.spacing*7/8)
	}
	soon = !ends
	if gap > nackMaxGap {
		n.ring = [nackWindow]nackEntry{} // a restart: forget the old gaps
	} else {
		for s := n.highest + 1; s != seq; s++ {
			if e := &n.ring[s%nackWindow]; !e.valid || e.seq != s { // not already asked for as overdue
				*e = nackEntry{seq: s, valid: true, first: now}
			}
		}
	}
	if e := &n.ring[seq%nackWindow]; e.valid && e.seq == seq {
		e.valid = false // taken as lost (overdue), but here
	}
	soon = soon || gap > 0 && gap <= nackMaxGap
	n.highest, n.highestAt, n.overdue, n.highestEnds, n.tailAsked = seq, now, 0, ends, false
	return soon
}

// tailWait is how long after a video packet without the marker bit the
// next one is taken as lost.
func (n *nackTracker) tailWait() time.Duration {
	return min(max(n.spacing*3/2+tailWaitMargin, tailWaitMin), tailWaitMax)
}

// markTail takes the packet after the highest as lost when the highest did
// not end its frame and nothing came for tailWait; n.mu is held.
func (n *nackTracker) markTail(now time.Time) {
	if !n.started || n.highestEnds || n.tailAsked || now.Sub(n.highestAt) < n.tailWait() {
		return
	}
	n.tailAsked = true
	s := n.highest + 1
	if e := &n.ring[s%nackWindow]; !e.valid || e.seq != s {
		*e = nackEntry{seq: s, valid: true, first: now}
	}
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
	out, _ = n.dueNext(now, out)
	return out
}

// dueNext is due, and also returns when something is next due (zero:
// nothing is pending).
func (n *nackTracker) dueNext(now time.Time, out []uint16) ([]uint16, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	interval, maxAge, maxTries := nackInterval, nackMaxAge, uint8(nackMaxTries)
	if n.rtt > 0 {
		// ask again once the answer to the last request is overdue
		interval = min(max(n.rtt+nackRTTMargin, nackMinInterval), nackMaxInterval)
	}
	if n.audio {
		interval, maxAge, maxTries = audioNackInterval, audioNackMaxAge, audioNackMaxTries
		n.markOverdue(now)
	} else {
		n.markTail(now)
		if n.started && !n.highestEnds && !n.tailAsked {
			later(n.highestAt.Add(n.tailWait()))
		}
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
			later(e.last.Add(interval))
			continue
		}
		e.last = now
		e.tries++
		out = append(out, e.seq)
		if e.tries < maxTries {
			later(now.Add(interval))
		}
	}
	return out, next
}
