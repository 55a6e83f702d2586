package signaling

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

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
	resources map[string]*resource // WHIP/WHEP sessions by resource ID
	wg        sync.WaitGroup
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
		resources: map[string]*resource{},
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
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	sess := newSession(s, conn)
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
		s.mu.Unlock()
		s.wg.Done()
	}()
	sess.run()
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
