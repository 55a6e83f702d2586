package signaling

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/chorus-sfu/chorus/auth"
)

// Access control: access tokens, limits on what one client may use, and
// draining.

// Limits bound what clients may use. Zero fields impose no limit.
type Limits struct {
	MaxRooms                int // open rooms
	MaxParticipantsPerRoom  int // WebSocket, WHIP and WHEP participants together
	MaxTracksPerParticipant int // media sections a publisher offers to send
	// MessagesPerSecond and MessageBurst rate-limit each WebSocket
	// connection (a token bucket); a client that keeps sending after
	// being told is disconnected.
	MessagesPerSecond float64
	MessageBurst      int
	// ConnectionsPerMinute and ConnectionBurst rate-limit new WebSocket
	// connections and WHIP/WHEP requests per client IP address.
	ConnectionsPerMinute float64
	ConnectionBurst      int
}

// DefaultLimits are the limits the chorus command starts with.
func DefaultLimits() Limits {
	return Limits{
		MaxRooms: 1000, MaxParticipantsPerRoom: 500, MaxTracksPerParticipant: 8,
		MessagesPerSecond: 50, MessageBurst: 200,
		ConnectionsPerMinute: 120, ConnectionBurst: 60,
	}
}

// ICEServer is a STUN or TURN server a client may use, as in
// RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Stats are counters of the signaling server.
type Stats struct {
	Sessions    int    // WebSocket sessions now
	Resources   int    // WHIP and WHEP sessions now
	MessagesIn  uint64 // WebSocket messages received
	MessagesOut uint64 // WebSocket messages queued to clients
	RateLimited uint64 // messages refused by the rate limit
	Rejected    uint64 // connections and joins refused: tokens, limits, draining
}

// errLimit is returned when a limit refuses a join.
var errLimit = errors.New("limit reached")

// bucket is a token bucket: rate tokens per second up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// take takes one token at now if there is one.
func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ipLimiter rate-limits new connections per client address.
type ipLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

// ipIdle: a client address not seen for this long is forgotten.
const ipIdle = 10 * time.Minute

func (l *ipLimiter) allow(ip string, now time.Time, perMinute float64, burst int) bool {
	if perMinute <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	if now.Sub(l.swept) > time.Minute { // bounded memory: forget idle addresses
		l.swept = now
		for k, b := range l.buckets {
			if now.Sub(b.last) > ipIdle {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{}
		l.buckets[ip] = b
	}
	return b.take(now, perMinute/60, max(burst, 1))
}

// clientIP is the address a request came from (the direct peer: a reverse
// proxy's own address unless it is trusted in front of Chorus).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admitConnection applies the per-address connection rate and the drain
// to an HTTP request; it answers the request and returns false when the
// connection is refused.
func (s *Server) admitConnection(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.LocalOnly && (!LocalRequest(r) || !localOrigin(r)) {
		s.rejected.Add(1)
		httpError(w, http.StatusForbidden, "this server has no access keys and only serves its own machine (localhost pages)")
		return false
	}
	if s.Draining() {
		s.rejected.Add(1)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "server draining: connect again (to another node)")
		return false
	}
	l := s.cfg.Limits
	if !s.ipLimit.allow(clientIP(r), time.Now(), l.ConnectionsPerMinute, l.ConnectionBurst) {
		s.rejected.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(60/max(l.ConnectionsPerMinute, 1)))))
		httpError(w, http.StatusTooManyRequests, "too many connections from %s", clientIP(r))
		return false
	}
	return true
}

// authorize checks a token for room and the grants needed. With no
// verifier configured every request is allowed, with every grant.
func (s *Server) authorize(token, room string, need ...auth.Grant) (*auth.Claims, error) {
	if s.cfg.Auth == nil {
		return &auth.Claims{Grants: auth.Grants{Join: true, Publish: true, Subscribe: true, Data: true, Record: true}}, nil
	}
	c, err := s.cfg.Auth.Verify(token)
	if err != nil {
		s.rejected.Add(1)
		return nil, protoErr(CodeUnauthorized, "%v", err)
	}
	if err := c.Allow(room, need...); err != nil {
		s.rejected.Add(1)
		return nil, protoErr(CodeNotPermitted, "%v", err)
	}
	return c, nil
}

// authHTTPStatus is the HTTP status for an authorize error.
func authHTTPStatus(err error) int {
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.Code == CodeUnauthorized {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// reserve counts one more participant in room against the limits, or
// refuses; release undoes it. WebSocket sessions, WHIP and WHEP resources
// all count.
func (s *Server) reserve(room string) error {
	err := s.tryReserve(room)
	if err != nil {
		s.rejected.Add(1)
	}
	return err
}

func (s *Server) tryReserve(room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return protoErr(CodeUnavailable, "server draining: connect again (to another node)")
	}
	l := s.cfg.Limits
	n, open := s.occupancy[room]
	if !open && l.MaxRooms > 0 && len(s.occupancy) >= l.MaxRooms {
		return protoErr(CodeLimit, "%v: at most %d rooms", errLimit, l.MaxRooms)
	}
	if l.MaxParticipantsPerRoom > 0 && n >= l.MaxParticipantsPerRoom {
		return protoErr(CodeLimit, "%v: room %q has %d participants, the most allowed", errLimit, room, n)
	}
	s.occupancy[room] = n + 1
	return nil
}

func (s *Server) release(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.occupancy[room]; n <= 1 {
		delete(s.occupancy, room)
	} else {
		s.occupancy[room] = n - 1
	}
}

// checkTracks refuses an offer that would send more media sections than
// the per-participant track limit.
func (s *Server) checkTracks(offer string) error {
	limit := s.cfg.Limits.MaxTracksPerParticipant
	if limit <= 0 {
		return nil
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return nil // the SFU reports malformed SDP with its own error
	}
	n := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" || m.MediaName.Port.Value == 0 {
			continue
		}
		sends := true
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				sends = false
			}
		}
		if sends {
			n++
		}
	}
	if n > limit {
		return protoErr(CodeLimit, "%v: %d tracks offered, at most %d per participant", errLimit, n, limit)
	}
	return nil
}

// Drain stops admitting participants and tells every WebSocket client to
// reconnect (to another node): new WebSocket joins, WHIP and WHEP requests
// are refused with "draining" (HTTP 503). Participants already in rooms keep
// their media until Close.
func (s *Server) Drain() {
	data := mustMarshal(Message{Type: TypeReconnect, Reason: "server draining"})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return
	}
	s.draining = true
	for sess := range s.sessions {
		sess.queue(data)
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	sessions, resources := len(s.sessions), len(s.resources)
	s.mu.Unlock()
	return Stats{Sessions: sessions, Resources: resources, MessagesIn: s.msgsIn.Load(), MessagesOut: s.msgsOut.Load(),
		RateLimited: s.rateLimited.Load(), Rejected: s.rejected.Load()}
}

// LocalRequest reports whether r comes from this machine and names it: a
// loopback peer, a loopback or localhost Host header (a web page whose name
// was rebound to 127.0.0.1 by DNS does not pass), and no proxy header (a
// reverse proxy on this machine forwards others' requests). A server
// without access keys serves only such requests.
func LocalRequest(r *http.Request) bool {
	return loopbackHost(r.Host) && loopbackRemote(r.RemoteAddr) && r.Header.Get("X-Forwarded-For") == "" &&
		r.Header.Get("Forwarded") == ""
}

// localOrigin reports whether a browser request's Origin is a page of this
// machine (or absent: not a browser).
func localOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && loopbackHost(u.Host)
}

// loopbackHost reports whether a Host header names a loopback host.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackRemote reports whether a remote address is a loopback one.
func loopbackRemote(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
