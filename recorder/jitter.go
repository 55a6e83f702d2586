package recorder

import "time"

// packet is a copy of one RTP packet, owned by a TrackRecorder's pool.
type packet struct {
	seq     uint16
	ts      uint32
	marker  bool
	arrival time.Time
	payload []byte // aliases buf
	buf     []byte
	ext     uint64 // extended sequence number, set by the jitter buffer
}

// jitter reorders a track's packets by sequence number. A missing packet
// is waited for until the first packet after it has waited maxDelay, or
// until maxHeld packets are held; it is then declared lost.
type jitter struct {
	slots    []*packet // ring indexed by extended sequence number
	next     uint64    // extended sequence number released next
	highest  uint64    // highest extended sequence number seen
	held     int
	started  bool
	maxDelay time.Duration
	maxHeld  int
}

func newJitter(size int, maxDelay time.Duration) *jitter {
	n := 64
	for n < size {
		n <<= 1
	}
	return &jitter{slots: make([]*packet, n), maxDelay: maxDelay, maxHeld: n / 2}
}

// extend unwraps a 16-bit sequence number near the highest one seen.
func (j *jitter) extend(seq uint16) uint64 {
	if !j.started {
		return 1<<32 + uint64(seq) // room below for reordering at the start
	}
	d := int64(int16(seq - uint16(j.highest)))
	return uint64(int64(j.highest) + d)
}

// full reports whether ext is too far ahead to be stored before older
// packets are released or declared lost.
func (j *jitter) full(ext uint64) bool {
	return j.started && ext >= j.next+uint64(len(j.slots))
}

// insert stores p (p.ext set by the caller from extend). It returns false
// for a duplicate or a packet older than those already released: the
// caller keeps ownership of it then.
func (j *jitter) insert(p *packet) bool {
	if !j.started {
		j.started, j.next, j.highest = true, p.ext, p.ext
	}
	if p.ext < j.next {
		return false
	}
	i := p.ext & uint64(len(j.slots)-1)
	if j.slots[i] != nil {
		return false // duplicate
	}
	j.slots[i] = p
	j.held++
	j.highest = max(j.highest, p.ext)
	return true
}

// pop releases the next packet in order, or declares the packets up to
// the next held one lost (lost > 0) when waiting has run out or flush is
// set. It returns nil, 0 when nothing can be released yet.
func (j *jitter) pop(now time.Time, flush bool) (p *packet, lost int) {
	if j.held == 0 {
		return nil, 0
	}
	mask := uint64(len(j.slots) - 1)
	if p = j.slots[j.next&mask]; p != nil {
		j.slots[j.next&mask] = nil
		j.next++
		j.held--
		return p, 0
	}
	for k := j.next + 1; k < j.next+uint64(len(j.slots)); k++ {
		q := j.slots[k&mask]
		if q == nil {
			continue
		}
		if flush || j.held >= j.maxHeld || now.Sub(q.arrival) >= j.maxDelay {
			lost = int(k - j.next)
			j.next = k
			return nil, lost
		}
		return nil, 0
	}
	return nil, 0
}

// jump declares lost every packet before ext; only valid when nothing is
// held (a packet arrived too far ahead of the ones released).
func (j *jitter) jump(ext uint64) (lost int) {
	lost = int(ext - j.next)
	j.next = ext
	return lost
}

// restart forgets the numbering: the next packet inserted starts it anew.
// Only valid when nothing is held.
func (j *jitter) restart() { j.started = false }

// waiting reports whether packets are held.
func (j *jitter) waiting() bool { return j.held > 0 }
