package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/sfu"
)

// MaxSDPSize bounds WHIP/WHEP request bodies.
const MaxSDPSize = 128 << 10

// resource is one WHIP publisher or WHEP viewer.
type resource struct {
	id   string
	room string
	p    *sfu.Participant
}

// resourceListener ends a WHIP/WHEP session when its connection fails
// (the client vanished without DELETE).
type resourceListener struct {
	sfu.NopListener
	srv    *Server
	id     string
	target string // WHEP: the publisher played; the session ends when it leaves
}

func (l *resourceListener) ConnectionFailed(sfu.Target) { l.srv.removeResourceAsync(l.id) }

func (l *resourceListener) ParticipantLeft(p sfu.ParticipantInfo) {
	if l.target != "" && p.ID == l.target {
		l.srv.removeResourceAsync(l.id)
	}
}

// removeResourceAsync ends a resource from an SFU callback, which must not
// block; Server.Close waits for it.
func (s *Server) removeResourceAsync(id string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.removeResource(id)
	}()
}

func (s *Server) addResource(p *sfu.Participant, id, room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.resources[id] = &resource{id: id, room: room, p: p}
	return true
}

func (s *Server) removeResource(id string) bool {
	s.mu.Lock()
	r, ok := s.resources[id]
	delete(s.resources, id)
	s.mu.Unlock()
	if ok {
		r.p.Close()
		s.release(r.room)
	}
	return ok
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	cors(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

func cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, Link, ETag")
}

func (s *Server) options(w http.ResponseWriter, _ *http.Request) {
	cors(w)
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// readOffer checks the content type and reads the SDP offer of a WHIP/WHEP
// POST, answering the error itself when it fails.
func readOffer(w http.ResponseWriter, r *http.Request) (webrtc.SessionDescription, bool) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/sdp" {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/sdp")
		return webrtc.SessionDescription{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSDPSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "SDP offer larger than %d bytes", MaxSDPSize)
		} else {
			httpError(w, http.StatusBadRequest, "cannot read the request body: %v", err)
		}
		return webrtc.SessionDescription{}, false
	}
	sdp := string(body)
	if strings.TrimSpace(sdp) == "" {
		httpError(w, http.StatusBadRequest, "empty SDP offer")
		return webrtc.SessionDescription{}, false
	}
	if !strings.HasPrefix(sdp, "v=0") {
		httpError(w, http.StatusBadRequest, "malformed SDP offer: it must start with v=0")
		return webrtc.SessionDescription{}, false
	}
	return webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}, true
}

func writeAnswer(w http.ResponseWriter, location string, ans webrtc.SessionDescription) {
	cors(w)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, ans.SDP)
}

func validName(room string) bool {
	return room != "" && len(room) <= MaxRoomLen && printable(room)
}

// whipPost publishes: POST /whip/{room}?name=N with an SDP offer.
func (s *Server) whipPost(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	name := r.URL.Query().Get("name")
	if !validName(room) {
		httpError(w, http.StatusBadRequest, "room must be 1 to %d printable bytes", MaxRoomLen)
		return
	}
	if name == "" {
		name = "whip"
	}
	if len(name) > MaxNameLen || !printable(name) {
		httpError(w, http.StatusBadRequest, "name must be at most %d printable bytes", MaxNameLen)
		return
	}
	if !s.admitConnection(w, r) {
		return
	}
	claims, err := s.authorize(auth.FromRequest(r), room, auth.GrantJoin, auth.GrantPublish)
	if err != nil {
		httpError(w, authHTTPStatus(err), "%v", err)
		return
	}
	if s.cfg.Auth != nil && claims.Name != "" {
		name = claims.Name
	}
	offer, ok := readOffer(w, r)
	if !ok {
		return
	}
	if err := s.checkTracks(offer.SDP); err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := s.reserve(room); err != nil {
		httpError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	id := newResourceID()
	p, err := s.sfu.Join(room, sfu.JoinOptions{Name: name, Publish: true,
		Listener: &resourceListener{srv: s, id: id}})
	if err != nil {
		s.release(room)
		httpError(w, http.StatusServiceUnavailable, "cannot join room: %v", err)
		return
	}
	// registered before negotiating, so that a failure meanwhile finds it
	if !s.addResource(p, id, room) {
		p.Close()
		s.release(room)
		httpError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	ans, err := p.HandlePublisherOffer(offer)
	if err != nil {
		s.removeResource(id) // closes p and releases its place
		httpError(w, sdpStatus(err), "cannot use the SDP offer: %v", err)
		return
	}
	writeAnswer(w, "/whip/"+url.PathEscape(room)+"/"+id, ans)
}

// whepPost plays one participant: POST /whep/{room}/{name} with an SDP offer.
func (s *Server) whepPost(w http.ResponseWriter, r *http.Request) {
	roomName, target := r.PathValue("room"), r.PathValue("name")
	if !s.admitConnection(w, r) {
		return
	}
	if _, err := s.authorize(auth.FromRequest(r), roomName, auth.GrantJoin, auth.GrantSubscribe); err != nil {
		httpError(w, authHTTPStatus(err), "%v", err)
		return
	}
	offer, ok := readOffer(w, r)
	if !ok {
		return
	}
	room, ok := s.sfu.Rooms().Get(roomName)
	if !ok {
		httpError(w, http.StatusNotFound, "room %q not found", roomName)
		return
	}
	pub, ok := room.FindParticipant(target)
	if !ok {
		httpError(w, http.StatusNotFound, "participant %q not found in room %q", target, roomName)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WHEPWait)
	tracks := pub.WaitPublished(ctx)
	cancel()
	if len(tracks) == 0 {
		httpError(w, http.StatusNotFound, "participant %q publishes no media", target)
		return
	}
	if err := s.reserve(roomName); err != nil {
		httpError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	id := newResourceID()
	p, err := s.sfu.Join(roomName, sfu.JoinOptions{Name: "whep:" + pub.Name(), Subscribe: true,
		Listener: &resourceListener{srv: s, id: id, target: pub.ID()}})
	if err != nil {
		s.release(roomName)
		httpError(w, http.StatusServiceUnavailable, "cannot join room: %v", err)
		return
	}
	// registered before negotiating: the publisher leaving meanwhile ends it
	if !s.addResource(p, id, roomName) {
		p.Close()
		s.release(roomName)
		httpError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	ans, err := p.HandleSubscriberOffer(offer, tracks)
	if err != nil {
		s.removeResource(id) // closes p and releases its place
		if errors.Is(err, sfu.ErrNotPublishing) {
			httpError(w, http.StatusNotFound, "participant %q stopped publishing", target)
		} else {
			httpError(w, sdpStatus(err), "cannot use the SDP offer: %v", err)
		}
		return
	}
	writeAnswer(w, "/whep/"+url.PathEscape(roomName)+"/"+url.PathEscape(target)+"/"+id, ans)
}

func sdpStatus(err error) int {
	if errors.Is(err, sfu.ErrBadSDP) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (s *Server) resourceDelete(w http.ResponseWriter, r *http.Request) {
	cors(w)
	if !s.removeResource(r.PathValue("id")) {
		httpError(w, http.StatusNotFound, "no such session")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// resourcePatch: trickle ICE and ICE restarts are not supported (RFC 9725
// section 4.3.1 lets a server answer 405); the answer has all candidates.
func (s *Server) resourcePatch(w http.ResponseWriter, _ *http.Request) {
	cors(w)
	httpError(w, http.StatusMethodNotAllowed, "trickle ICE is not supported: the answer carries all candidates")
}

func newResourceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
