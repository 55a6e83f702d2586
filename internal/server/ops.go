package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/internal/turnserver"
	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/webhook"
)

// Operations: who may use the HTTP APIs, the admin API, webhooks, health
// and draining.

// WebhookConfig says where signed event webhooks go (no URLs: none).
type WebhookConfig struct {
	URLs   []string
	Secret string // HMAC-SHA256 key of the signatures
}

// apiAccess is the access check of the operator APIs (recordings, admin):
// with access keys, a token with the admin grant; without keys (a server
// on loopback only), local requests to localhost.
func apiAccess(v *auth.Verifier, listen net.Addr) func(*http.Request) error {
	if v != nil {
		return func(r *http.Request) error {
			c, err := v.Verify(auth.FromRequest(r))
			if err != nil {
				return fmt.Errorf("%w: an access token with the admin grant is required (Authorization: Bearer <token>): %v",
					errUnauthorized, err)
			}
			if !c.Grants.Admin {
				return fmt.Errorf("the access token has no admin grant: %w", store.ErrForbidden)
			}
			if c.Room != "" { // these APIs span every room
				return fmt.Errorf("an admin token for one room (%q) cannot use the server-wide APIs: %w", c.Room, store.ErrForbidden)
			}
			return nil
		}
	}
	if a, ok := listen.(*net.TCPAddr); ok && a.IP.IsLoopback() {
		// open on loopback only, for the one-command demo, and only to
		// requests from loopback naming a loopback host: a web page whose
		// name was rebound to 127.0.0.1 (DNS rebinding), or a reverse proxy
		// on the same machine, does not get it
		return func(r *http.Request) error {
			if !signaling.LocalRequest(r) {
				return fmt.Errorf("without access keys the API only answers local requests to localhost: %w", store.ErrForbidden)
			}
			return nil
		}
	}
	return func(*http.Request) error {
		return fmt.Errorf("the API needs access keys on a server reachable from the network: %w", store.ErrForbidden)
	}
}

// errUnauthorized marks a missing or invalid token (401, not 403).
var errUnauthorized = errors.New("unauthorized")

// ---------------------------------------------------------------- admin API

// adminAPI serves /api/rooms: listing rooms, participants and tracks,
// removing a participant, muting a track, closing a room.
type adminAPI struct {
	sfu    *sfu.SFU
	sig    *signaling.Server
	access func(*http.Request) error
	log    *slog.Logger
}

func (a *adminAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/rooms", a.guard(a.listRooms))
	mux.HandleFunc("GET /api/rooms/{room}", a.guard(a.getRoom))
	mux.HandleFunc("DELETE /api/rooms/{room}", a.guard(a.closeRoom))
	mux.HandleFunc("DELETE /api/rooms/{room}/participants/{id}", a.guard(a.removeParticipant))
	mux.HandleFunc("POST /api/rooms/{room}/tracks/{track}/mute", a.guard(a.muteTrack))
}

func (a *adminAPI) guard(h http.HandlerFunc) http.HandlerFunc {
	return guardHandler(a.access, h).ServeHTTP
}

// guardHandler answers 401 or 403 unless access lets the request through.
func guardHandler(access func(*http.Request) error, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := access(r); err != nil {
			status := http.StatusForbidden
			if errors.Is(err, errUnauthorized) {
				status = http.StatusUnauthorized
			}
			writeJSONError(w, status, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RoomJSON is a room as the admin API lists it.
type RoomJSON struct {
	Name         string            `json:"name"`
	Participants []ParticipantJSON `json:"participants"`
}

// ParticipantJSON is a participant as the admin API lists it.
type ParticipantJSON struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Tracks []TrackJSON `json:"tracks"`
}

// TrackJSON is a published track as the admin API lists it.
type TrackJSON struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Codec  string `json:"codec"`
	Source string `json:"source,omitempty"`
	Muted  bool   `json:"muted"`
}

func roomJSON(r *sfu.Room) RoomJSON {
	out := RoomJSON{Name: r.Name(), Participants: []ParticipantJSON{}}
	for _, p := range r.Participants() {
		pj := ParticipantJSON{ID: p.ID, Name: p.Name, Tracks: []TrackJSON{}}
		for _, t := range p.Tracks {
			pj.Tracks = append(pj.Tracks, TrackJSON{ID: t.ID, Kind: t.Kind.String(), Codec: t.MimeType, Source: t.Source, Muted: t.Muted})
		}
		out.Participants = append(out.Participants, pj)
	}
	return out
}

func (a *adminAPI) listRooms(w http.ResponseWriter, _ *http.Request) {
	rooms := a.sfu.Rooms().List()
	out := make([]RoomJSON, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, roomJSON(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (a *adminAPI) room(w http.ResponseWriter, r *http.Request) (*sfu.Room, bool) {
	room, ok := a.sfu.Rooms().Get(r.PathValue("room"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no room %q", r.PathValue("room")))
	}
	return room, ok
}

func (a *adminAPI) getRoom(w http.ResponseWriter, r *http.Request) {
	if room, ok := a.room(w, r); ok {
		writeJSON(w, http.StatusOK, roomJSON(room))
	}
}

func (a *adminAPI) closeRoom(w http.ResponseWriter, r *http.Request) {
	room, ok := a.room(w, r)
	if !ok {
		return
	}
	for _, p := range room.Participants() { // tell the clients first
		a.sig.Remove(room.Name(), p.ID, "the room was closed")
	}
	room.Close()
	a.log.Info("room closed by an operator", "room", room.Name())
	w.WriteHeader(http.StatusNoContent)
}

func (a *adminAPI) removeParticipant(w http.ResponseWriter, r *http.Request) {
	room, ok := a.room(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !a.sig.Remove(room.Name(), id, "removed by an operator") {
		p, found := room.FindParticipant(id)
		if !found || p.ID() != id {
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no participant %q in room %q", id, room.Name()))
			return
		}
		p.Close()
	}
	a.log.Info("participant removed by an operator", "room", room.Name(), "participant", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *adminAPI) muteTrack(w http.ResponseWriter, r *http.Request) {
	room, ok := a.room(w, r)
	if !ok {
		return
	}
	body := struct {
		Muted *bool `json:"muted"`
	}{}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Muted == nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be {"muted": true} or {"muted": false}`)
		return
	}
	if err := room.MuteTrack(r.PathValue("track"), *body.Muted); err != nil {
		writeJSONError(w, http.StatusNotFound, err.Error())
		return
	}
	a.log.Info("track muted by an operator", "room", room.Name(), "track", r.PathValue("track"), "muted", *body.Muted)
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// ---------------------------------------------------------------- webhooks

// roomEvents turns a room's life into webhook events: it observes every
// room from its creation.
type roomEvents struct {
	n    *webhook.Notifier
	room string
}

func (e *roomEvents) notify(ev webhook.Event) {
	ev.Room = e.room
	e.n.Notify(ev)
}

func trackEvent(t *sfu.PublishedTrack) *webhook.TrackInfo {
	i := t.Info()
	return &webhook.TrackInfo{ID: i.ID, Kind: i.Kind.String(), Source: i.Source, MimeType: i.MimeType}
}

func (e *roomEvents) TrackPublished(t *sfu.PublishedTrack) {
	e.notify(webhook.Event{Event: webhook.EventTrackPublished, Participant: &webhook.ParticipantInfo{ID: t.Info().ParticipantID},
		Track: trackEvent(t)})
}

func (e *roomEvents) TrackUnpublished(t *sfu.PublishedTrack) {
	e.notify(webhook.Event{Event: webhook.EventTrackUnpublished, Participant: &webhook.ParticipantInfo{ID: t.Info().ParticipantID},
		Track: trackEvent(t)})
}

func (e *roomEvents) RoomClosed() { e.notify(webhook.Event{Event: webhook.EventRoomFinished}) }

func (e *roomEvents) ParticipantJoined(p sfu.ParticipantInfo) {
	e.notify(webhook.Event{Event: webhook.EventParticipantJoined, Participant: &webhook.ParticipantInfo{ID: p.ID, Name: p.Name}})
}

func (e *roomEvents) ParticipantLeft(p sfu.ParticipantInfo) {
	e.notify(webhook.Event{Event: webhook.EventParticipantLeft, Participant: &webhook.ParticipantInfo{ID: p.ID, Name: p.Name}})
}

// observeRooms returns the SFU's room-created hook that sends room,
// participant and track webhooks (next, if set, runs too).
func observeRooms(n *webhook.Notifier, next func(*sfu.Room), log *slog.Logger) func(*sfu.Room) {
	return func(r *sfu.Room) {
		if next != nil {
			next(r)
		}
		e := &roomEvents{n: n, room: r.Name()}
		e.notify(webhook.Event{Event: webhook.EventRoomStarted})
		// The hook runs with the room directory locked, and the room is new
		// (no participant yet): observing it takes only the room's lock.
		if _, _, err := r.Observe(e); err != nil {
			log.Debug("room closed before it could be observed", "room", r.Name())
		}
	}
}

// recordingEvents turns the recorder's change notices (who is recorded in
// a room) into recording_started and recording_finished webhooks.
type recordingEvents struct {
	n    *webhook.Notifier
	mu   sync.Mutex                 // rooms record concurrently
	last map[string]map[string]bool // by room: participants recorded
}

func (e *recordingEvents) changed(room string, who []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := map[string]bool{}
	for _, id := range who {
		now[id] = true
		if !e.last[room][id] {
			e.n.Notify(webhook.Event{Event: webhook.EventRecordingStarted, Room: room,
				Recording: &webhook.RecordingInfo{Room: room, Participant: id, State: "recording"}})
		}
	}
	for id := range e.last[room] {
		if !now[id] {
			e.n.Notify(webhook.Event{Event: webhook.EventRecordingFinished, Room: room,
				Recording: &webhook.RecordingInfo{Room: room, Participant: id, State: "finished"}})
		}
	}
	if len(now) == 0 {
		delete(e.last, room)
	} else {
		e.last[room] = now
	}
}

// ---------------------------------------------------------------- health and drain

// health serves /healthz (the process answers) and /readyz (it takes new
// participants: not draining, not closing).
func (s *Server) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.sig.Draining() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// Drain stops admitting participants (readyz fails, joins and WHIP/WHEP
// get "draining") and tells WebSocket clients to reconnect elsewhere.
func (s *Server) Drain() { s.sig.Drain() }

// Participants counts the participants in every room.
func (s *Server) Participants() int {
	n := 0
	for _, r := range s.sfu.Rooms().List() {
		n += len(r.Participants())
	}
	return n
}

// WaitEmpty waits until no participant is left or ctx ends.
func (s *Server) WaitEmpty(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.Participants() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startAdmin serves pprof on a separate address (keep it private: it
// exposes the process's internals).
func (s *Server) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.health(mux)
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.admin.Serve(ln) }()
	s.log.Info("admin endpoints", "addr", ln.Addr().String())
	return nil
}

// iceServers are the TURN servers (with credentials for identity) a
// joining client is told to use; none without the embedded TURN server.
func (s *Server) iceServers(identity string) []signaling.ICEServer {
	if s == nil {
		return nil
	}
	urls := s.TURNURLs()
	if len(urls) == 0 && len(s.extTURN) == 0 {
		return nil
	}
	if identity == "" { // an open server: each client its own allocation quota
		var b [6]byte
		_, _ = rand.Read(b[:])
		identity = "anon-" + hex.EncodeToString(b[:])
	}
	var out []signaling.ICEServer
	if len(urls) > 0 {
		user, pass := s.TURNCredentials(identity)
		out = append(out, signaling.ICEServer{URLs: urls, Username: user, Credential: pass})
	}
	if len(s.extTURN) > 0 {
		user, pass := turnserver.Credentials(s.extTURNSecret, identity, externalTURNTTL, time.Now())
		out = append(out, signaling.ICEServer{URLs: s.extTURN, Username: user, Credential: pass})
	}
	return out
}

// externalTURNTTL is the lifetime of credentials for external TURN servers.
const externalTURNTTL = 12 * time.Hour
