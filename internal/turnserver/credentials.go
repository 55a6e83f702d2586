package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API and coturn's use-auth-secret specify
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Credentials returns time-limited TURN credentials in the TURN REST API
// style (draft-uberti-behave-turn-rest), which coturn's use-auth-secret
// also accepts: username "<unix expiry>:<identity>", password
// base64(HMAC-SHA1(secret, username)). They are valid until now+ttl.
func Credentials(secret, identity string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + identity
	return username, sign(secret, username)
}

func sign(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username)) // a hash never fails to write
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits a TURN REST username into its expiry and identity.
// The identity is everything after the first colon (it may hold colons
// itself) and must not be empty: the per-user allocation limit counts it.
func parseUsername(username string) (expiry time.Time, identity string, ok bool) {
	ts, identity, found := strings.Cut(username, ":")
	if !found || identity == "" {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), identity, true
}

// pendingTTL is how long an accepted quota check reserves a slot for the
// allocation it let through: the allocation is created right after the
// check (microseconds), and a reservation whose allocation failed expires.
const pendingTTL = 5 * time.Second

// quota counts live allocations per identity. Allocations are counted when
// pion reports them created and uncounted when it reports them deleted;
// between the quota check and the creation a reservation holds the slot, so
// that concurrent requests (TURN over TCP serves each connection on its own
// goroutine) cannot exceed the limit together.
type quota struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	live    map[string]int
	pending map[string][]time.Time // expiry of each reservation
	total   int
	changed chan struct{} // closed and replaced whenever total changes
}

func newQuota(maxPerUser int, now func() time.Time) *quota {
	return &quota{max: maxPerUser, now: now, live: map[string]int{}, pending: map[string][]time.Time{},
		changed: make(chan struct{})}
}

// reserve reports whether identity may create one more allocation and, if
// so, holds a slot for it.
func (q *quota) reserve(identity string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	kept := q.pending[identity][:0]
	for _, exp := range q.pending[identity] {
		if now.Before(exp) {
			kept = append(kept, exp)
		}
	}
	if q.live[identity]+len(kept) >= q.max {
		q.setPending(identity, kept)
		return false
	}
	q.setPending(identity, append(kept, now.Add(pendingTTL)))
	return true
}

func (q *quota) setPending(identity string, p []time.Time) {
	if len(p) == 0 {
		delete(q.pending, identity)
		return
	}
	q.pending[identity] = p
}

// created counts a new allocation, consuming one reservation.
func (q *quota) created(identity string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.pending[identity]; len(p) > 0 {
		q.setPending(identity, p[1:])
	}
	q.live[identity]++
	q.total++
	q.notifyLocked()
}

// deleted uncounts an allocation.
func (q *quota) deleted(identity string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live[identity] <= 0 {
		return // not counted (cannot happen: pion reports each deletion once)
	}
	if q.live[identity]--; q.live[identity] == 0 {
		delete(q.live, identity)
	}
	q.total--
	q.notifyLocked()
}

func (q *quota) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// count returns the number of live allocations and a channel closed at the
// next change.
func (q *quota) count() (int, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total, q.changed
}
