package sfu

import "time"

// keyframeLimiter coalesces keyframe requests for one publisher stream: at
// most one request per interval goes upstream; requests inside the interval
// are merged into one deferred request at its end. It takes the time as an
// argument so that it can be tested deterministically.
type keyframeLimiter struct {
	interval time.Duration
	last     time.Time
	pending  bool
}

// request records a keyframe request at now. It returns send=true when a
// request should go upstream immediately, or a positive delay after which
// the caller must call fire (once) to send the merged deferred request.
func (k *keyframeLimiter) request(now time.Time) (send bool, delay time.Duration) {
	if k.last.IsZero() || now.Sub(k.last) >= k.interval {
		k.last = now
		k.pending = false // this request covers a deferred one too
		return true, 0
	}
	if k.pending {
		return false, 0
	}
	k.pending = true
	return false, k.interval - now.Sub(k.last)
}

// fire marks the deferred request as sent at now; it reports false when an
// immediate request has already covered it.
func (k *keyframeLimiter) fire(now time.Time) bool {
	if !k.pending {
		return false
	}
	k.pending = false
	k.last = now
	return true
}
