package chat

import "time"

// bucket is a token bucket that may run into debt: take succeeds while
// the level after taking one token stays at or above a floor, so callers
// of different priority can be given different floors on one bucket. It
// is not safe for concurrent use (the room's lock guards it).
type bucket struct {
	rate  float64 // tokens per second
	burst float64 // the level never exceeds burst
	level float64
	last  time.Time // time of the last refill
}

func newBucket(rate, burst float64, now time.Time) bucket {
	return bucket{rate: rate, burst: burst, level: burst, last: now}
}

// refill adds the tokens earned since the last refill. A clock going
// backwards earns nothing.
func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.level = min(b.burst, b.level+d.Seconds()*b.rate)
		b.last = now
	}
}

// take removes one token if the level stays at or above floor, and
// reports whether it did.
func (b *bucket) take(now time.Time, floor float64) bool {
	b.refill(now)
	if b.level-1 < floor {
		return false
	}
	b.level--
	return true
}

// ring holds the most recent stored messages, oldest first. Its capacity
// is fixed at creation; storage grows up to it on demand.
type ring struct {
	buf  []Message
	size int
	head int // index in buf of the oldest message once buf is full
}

func (r *ring) len() int { return len(r.buf) }

func (r *ring) push(m Message) {
	if len(r.buf) < r.size {
		r.buf = append(r.buf, m)
		return
	}
	r.buf[r.head] = m
	r.head = (r.head + 1) % r.size
}

// at returns the i-th oldest message, 0 <= i < len.
func (r *ring) at(i int) Message { return r.buf[(r.head+i)%len(r.buf)] }
