package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/chat"
	"github.com/chorus-sfu/chorus/sfu"
)

// Config configures a signaling server.
type Config struct {
	// CheckOrigin decides which browser origins may open the WebSocket
	// (default: any, since no cookies or credentials are used).
	CheckOrigin func(r *http.Request) bool
	// WHEPWait is how long a WHEP request waits for the publisher's tracks
	// to arrive (default 5 s).
	WHEPWait time.Duration
	Logger   *slog.Logger
	// Recording, if set, lets clients see (and, with ClientRecording,
	// control) server-side recording.
	Recording RecordingControl
	// ClientRecording allows clients to start and stop recordings over the
	// WebSocket.
	ClientRecording bool
	// Auth verifies access tokens; nil: no tokens, every client may join
	// any room, publish, subscribe and (with ClientRecording) record.
	Auth *auth.Verifier
	// LocalOnly serves only requests from this machine to localhost, from
	// localhost pages (see LocalRequest): what a server without access keys
	// must do, so that no other site a user visits can join its rooms.
	LocalOnly bool
	// Limits bound rooms, participants, tracks and rates (zero: none).
	Limits Limits
	// Chat configures the rooms' text chat.
	Chat ChatOptions
	// ICEServers, if set, lists the STUN/TURN servers (with credentials
	// for the identity) that a joining client is told to use.
	ICEServers func(identity string) []ICEServer
}

// RecordingControl is the server-side recorder as the signaling server sees
// it. Errors of StartRecording and StopRecording that wrap the sentinel
// errors of package recorder/store (ErrUnknownRoom, ErrUnknownParticipant,
// ErrAlreadyRecording, ErrNotRecording, ErrBadRequest, ErrForbidden) reach
// the client with the matching error code. The signaling server calls its
// methods without holding locks of its own, so they may call
// Server.RecordingChanged.
type RecordingControl interface {
	// StartRecording records participant (an ID) of room, or the whole
	// room if participant is empty, and returns the IDs of the
	// participants whose recording started.
	StartRecording(ctx context.Context, room, participant string) ([]string, error)
	// StopRecording stops recording participant of room, or every
	// recording of room if participant is empty.
	StopRecording(ctx context.Context, room, participant string) error
	// Recording lists the IDs of the participants of room being recorded
	// now (nil: none).
	Recording(room string) []string
}

// Server serves the WebSocket protocol at /ws and WHIP/WHEP at /whip/ and
// /whep/.
type Server struct {
	sfu      *sfu.SFU
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu        sync.Mutex
	closed    bool
	sessions  map[*session]struct{}
	rooms     map[string]map[*session]struct{} // joined WebSocket sessions by room name
	resources map[string]*resource             // WHIP/WHEP sessions by resource ID
	occupancy map[string]int                   // participants by room, for the limits
	chats     map[string]*chat.Room            // by room, while it has WebSocket members
	draining  bool
	wg        sync.WaitGroup

	ipLimit                                ipLimiter
	msgsIn, msgsOut, rateLimited, rejected atomic.Uint64
}

// NewServer creates a signaling server over an SFU.
func NewServer(s *sfu.SFU, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CheckOrigin == nil {
		cfg.CheckOrigin = func(*http.Request) bool { return true }
	}
	if cfg.WHEPWait == 0 {
		cfg.WHEPWait = 5 * time.Second
	}
	return &Server{
		sfu: s, cfg: cfg, log: cfg.Logger,
		upgrader:  websocket.Upgrader{CheckOrigin: cfg.CheckOrigin, ReadBufferSize: 4096, WriteBufferSize: 4096},
		sessions:  map[*session]struct{}{},
		rooms:     map[string]map[*session]struct{}{},
		resources: map[string]*resource{},
		occupancy: map[string]int{},
		chats:     map[string]*chat.Room{},
	}
}

// Register adds the server's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /whip/{room}", s.whipPost)
	mux.HandleFunc("DELETE /whip/{room}/{id}", s.resourceDelete)
	mux.HandleFunc("PATCH /whip/{room}/{id}", s.resourcePatch)
	mux.HandleFunc("OPTIONS /whip/{room}", s.options)
	mux.HandleFunc("OPTIONS /whip/{room}/{id}", s.options)
	mux.HandleFunc("POST /whep/{room}/{name}", s.whepPost)
	mux.HandleFunc("DELETE /whep/{room}/{name}/{id}", s.resourceDelete)
	mux.HandleFunc("PATCH /whep/{room}/{name}/{id}", s.resourcePatch)
	mux.HandleFunc("OPTIONS /whep/{room}/{name}", s.options)
	mux.HandleFunc("OPTIONS /whep/{room}/{name}/{id}", s.options)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.admitConnection(w, r) {
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	sess := newSession(s, conn)
	sess.urlToken = auth.FromRequest(r)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.WriteMessage(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"))
		_ = conn.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		if members := s.rooms[sess.room]; members != nil {
			delete(members, sess)
			if len(members) == 0 {
				delete(s.rooms, sess.room)
			}
		}
		s.mu.Unlock()
		s.leaveChat(sess)
		if sess.reserved != "" {
			s.release(sess.reserved)
		}
		s.wg.Done()
	}()
	sess.run()
}

// mustMarshal encodes a message made of plain fields (cannot fail).
func mustMarshal(m Message) []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return data
}

// RecordingChanged tells every WebSocket session joined to room who in it is
// being recorded now (participant IDs; empty: nobody any more) with a
// recording message. It may be called from any goroutine (e.g. as the
// recorder's change callback) and never waits for clients: the message joins
// each session's send queue, and a session whose queue is full is closed as
// too slow. WHIP and WHEP participants have no WebSocket and are not told.
func (s *Server) RecordingChanged(room string, participants []string) {
	data, err := json.Marshal(recordingNotice(participants))
	if err != nil { // cannot happen: strings only
		s.log.Error("marshal recording notice", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.rooms[room] {
		sess.recNotices++
		sess.queue(data)
	}
}

func recordingNotice(participants []string) Message {
	return Message{Type: TypeRecording, Recorded: participants}
}

// canRecord reports whether clients may start and stop recordings.
func (s *Server) canRecord() bool { return s.cfg.Recording != nil && s.cfg.ClientRecording }

// addToRoom lists a session that has just joined room (its joined message
// is queued) among the room's members, so that it receives recording
// notices from now on, and tells it who is being recorded already.
func (s *Server) addToRoom(sess *session, room, participantID string) {
	s.mu.Lock()
	sess.pid = participantID
	members := s.rooms[room]
	if members == nil {
		members = map[*session]struct{}{}
		s.rooms[room] = members
	}
	members[sess] = struct{}{}
	sess.room = room
	seen := sess.recNotices
	s.mu.Unlock()
	if s.cfg.Recording == nil {
		return
	}
	// Asked without the lock: the recorder may be calling RecordingChanged.
	who := s.cfg.Recording.Recording(room)
	if len(who) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.recNotices == seen { // else a notice sent meanwhile is newer than who
		sess.send(recordingNotice(who))
	}
}

// Close ends every WebSocket session and WHIP/WHEP resource and waits for
// them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	res := s.resources
	s.resources = map[string]*resource{}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.closeAfterFlush(websocket.CloseGoingAway, "server shutting down")
		sess.stop()
	}
	for _, r := range res {
		r.p.Close()
	}
	s.wg.Wait()
}

// Remove disconnects a participant (an operator's decision): a WebSocket
// client is told why (an error with code removed) before its connection
// closes; a WHIP or WHEP session ends. It reports whether the participant
// was found.
func (s *Server) Remove(room, participantID, reason string) bool {
	s.mu.Lock()
	var target *session
	for sess := range s.rooms[room] {
		if sess.pid == participantID {
			target = sess
		}
	}
	var res string
	for id, r := range s.resources {
		if r.room == room && r.p.ID() == participantID {
			res = id
		}
	}
	s.mu.Unlock()
	if target != nil {
		target.send(errorMsg("", protoErr(CodeRemoved, "removed from the room: %s", reason)))
		target.closeAfterFlush(websocket.CloseNormalClosure, "removed")
		return true
	}
	if res != "" {
		return s.removeResource(res)
	}
	return false
}
