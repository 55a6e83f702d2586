// Package server wires the SFU, the signaling endpoints and the bundled web
// client into one HTTP server.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/chat"
	"github.com/chorus-sfu/chorus/internal/metrics"
	"github.com/chorus-sfu/chorus/internal/turnserver"
	"github.com/chorus-sfu/chorus/recorder"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/web"
	"github.com/chorus-sfu/chorus/webhook"
)

// Config configures a Chorus server.
type Config struct {
	Listen  string // HTTP address, e.g. "127.0.0.1:7880"
	UDPPort int    // media UDP port, 0 = ephemeral
	// UDPIP restricts media to one local IP; empty: every interface, loopback
	// included, so that both browsers on this machine and native stacks that
	// never use loopback (libnice) can connect.
	UDPIP      string
	NAT1To1IPs []string // public IPs to advertise
	// KeyframeInterval is the minimum time between keyframe requests to one
	// publisher stream (default 500 ms).
	KeyframeInterval time.Duration
	// NoBandwidthAllocation: see sfu.Config.
	NoBandwidthAllocation bool
	// PublisherFEC, PreferFlexFEC: see sfu.Config.
	PublisherFEC, PreferFlexFEC bool
	// Net: see sfu.Config (media on another network, e.g. a pion vnet).
	Net transport.Net
	// ICETCPPort: see sfu.Config.TCPPort (0: ICE over TCP off, -1: ephemeral).
	ICETCPPort int
	// TURN, if set, runs an embedded TURN server (nil: none). Its Logger
	// defaults to Logger; its AllowPeer to the SFU's media addresses only
	// (turnserver.MediaPeers).
	TURN *turnserver.Config
	// Recording: server-side recording and the recordings API.
	Recording RecordingConfig
	Logger    *slog.Logger
	// TLSCert and TLSKey, if set, serve HTTPS and WSS (PEM files).
	TLSCert, TLSKey string
	// Keys are the API keys that sign access tokens. Without keys every
	// client may do everything: only for a server on loopback.
	Keys auth.Keys
	// Limits bound rooms, participants, tracks and rates.
	Limits signaling.Limits
	// Chat configures room chat (its Archive is set by the server).
	Chat signaling.ChatOptions
	// Data bounds app data on data channels.
	Data sfu.DataLimits
	// AdminListen, if set, serves pprof and metrics on a separate address.
	AdminListen string
	// Webhooks: signed event notifications.
	Webhooks WebhookConfig
	// LocalOnly: without Keys, serve the WebSocket, WHIP and WHEP only to
	// this machine's localhost pages (signaling.LocalRequest). The chorus
	// command sets it; tests on other addresses leave it off.
	LocalOnly bool
	// Version is the build's version, reported by chorus_build_info.
	Version string
	// ExternalTURN lists TURN servers run elsewhere (e.g. coturn with
	// use-auth-secret) that clients are told to use, with credentials
	// derived from ExternalTURNSecret like the embedded server's.
	ExternalTURN       []string
	ExternalTURNSecret string
}

// Server is a running Chorus server.
type Server struct {
	sfu  *sfu.SFU
	sig  *signaling.Server
	http *http.Server
	ln   net.Listener
	done chan error
	rec  *recording         // nil: recording off
	turn *turnserver.Server // nil: no embedded TURN
	log  *slog.Logger

	extTURN       []string // external TURN URLs
	extTURNSecret string
	hooks         *webhook.Notifier // nil: no webhooks
	admin         *http.Server      // nil: no admin listener
	metrics       http.Handler      // Prometheus /metrics
	tls           bool
}

// Start listens and serves in the background.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		_ = ln.Close()
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	var verifier *auth.Verifier
	if len(cfg.Keys) > 0 {
		if err := cfg.Keys.Validate(); err != nil {
			_ = ln.Close()
			return nil, err
		}
		verifier = auth.NewVerifier(cfg.Keys, nil)
	}
	var hooks *webhook.Notifier
	var rec *recording
	var mgr atomic.Pointer[recorder.Manager]
	onRoom := autoRecord(cfg.Recording, mgr.Load, cfg.Logger)
	var recEvents *recordingEvents
	if len(cfg.Webhooks.URLs) > 0 {
		hooks = webhook.New(webhook.Config{URLs: cfg.Webhooks.URLs, Secret: cfg.Webhooks.Secret, Logger: cfg.Logger})
		onRoom = observeRooms(hooks, onRoom, cfg.Logger)
		recEvents = &recordingEvents{n: hooks, last: map[string]map[string]bool{}}
	}
	closeHooks := func() {
		if hooks != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hooks.Close(ctx)
			cancel()
		}
	}
	if cfg.Recording.Dir != "" {
		if rec, err = startRecording(cfg.Recording, cfg.Logger); err != nil {
			_ = ln.Close()
			closeHooks()
			return nil, err
		}
	}
	s, err := sfu.New(sfu.Config{UDPPort: cfg.UDPPort, UDPIP: cfg.UDPIP, NAT1To1IPs: cfg.NAT1To1IPs, TCPPort: cfg.ICETCPPort,
		KeyframeInterval: cfg.KeyframeInterval, NoBandwidthAllocation: cfg.NoBandwidthAllocation, PublisherFEC: cfg.PublisherFEC, PreferFlexFEC: cfg.PreferFlexFEC, Net: cfg.Net, Logger: cfg.Logger,
		OnRoomCreated: onRoom, Data: cfg.Data})
	if err != nil {
		if rec != nil {
			rec.close(cfg.Logger)
		}
		_ = ln.Close()
		closeHooks()
		return nil, err
	}
	sigCfg := signaling.Config{Logger: cfg.Logger, Auth: verifier, Limits: cfg.Limits, LocalOnly: cfg.LocalOnly && verifier == nil, Chat: cfg.Chat}
	sigCfg.Chat.Archive = nil
	var self atomic.Pointer[Server] // set once started: the TURN server starts after signaling
	sigCfg.ICEServers = func(identity string) []signaling.ICEServer { return self.Load().iceServers(identity) }
	access := apiAccess(verifier, ln.Addr())
	var sigp atomic.Pointer[signaling.Server] // for OnChange: set below
	mux := http.NewServeMux()
	if rec != nil {
		rec.mgr = recorder.NewManager(recorder.ManagerOptions{Dir: cfg.Recording.Dir, Rooms: s.Rooms(), Logger: cfg.Logger,
			OnChange: func(room string, who []string) {
				cfg.Logger.Info("recording", "room", room, "participants", who)
				if len(who) == 0 {
					rec.chat.End(room) // the chat archive ends with the room's recording
				}
				if recEvents != nil {
					recEvents.changed(room, who)
				}
				if sig := sigp.Load(); sig != nil {
					sig.RecordingChanged(room, who)
				}
			}})
		rec.chat = recorder.NewChatArchive(cfg.Recording.Dir, cfg.Logger) // before any recording can start
		mgr.Store(rec.mgr)
		sigCfg.Chat.Archive = func(room string, m chat.Message) {
			if len(rec.mgr.Recording(room)) == 0 {
				return // not recorded now
			}
			if err := rec.chat.Append(room, m); err != nil {
				cfg.Logger.Warn("chat archive", "room", room, "err", err)
			}
		}
		sigCfg.Recording, sigCfg.ClientRecording = rec.mgr, cfg.Recording.ClientRecording
		h := rec.store.Handler(rec.mgr, access)
		for _, m := range []string{"GET", "POST", "DELETE"} { // with methods: "GET /" must not conflict
			mux.Handle(m+" /api/recordings", h)
			mux.Handle(m+" /api/recordings/", h)
		}
	}
	sig := signaling.NewServer(s, sigCfg)
	sigp.Store(sig)
	sig.Register(mux)
	(&adminAPI{sfu: s, sig: sig, access: access, log: cfg.Logger}).register(mux)
	mux.Handle("GET /", web.Handler())
	srv := &Server{
		sfu: s, sig: sig, ln: ln, done: make(chan error, 1), rec: rec, log: cfg.Logger, hooks: hooks,
		tls: cfg.TLSCert != "", extTURN: cfg.ExternalTURN, extTURNSecret: cfg.ExternalTURNSecret,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)},
	}
	srv.health(mux)
	src := metrics.Sources{SFU: s.Snapshot, Signaling: func() metrics.SignalingStats {
		st := sig.Stats()
		return metrics.SignalingStats{Sessions: st.Sessions + st.Resources, MessagesIn: st.MessagesIn,
			MessagesOut: st.MessagesOut, RateLimited: st.RateLimited, Rejected: st.Rejected}
	}}
	if rec != nil {
		src.Recorder = rec.mgr.Stats
	}
	if cfg.TURN != nil {
		// srv.turn is set below, before the first request is served
		src.TURNAllocations = func() int { return srv.turn.Allocations() }
	}
	srv.metrics = metrics.HandlerWithLogger(metrics.NewRegistry(src, cfg.Version), cfg.Logger)
	mux.Handle("GET /metrics", guardHandler(access, srv.metrics))
	if cfg.TURN != nil {
		if err := srv.startTURN(*cfg.TURN, cfg.NAT1To1IPs, cfg.Logger); err != nil {
			_ = srv.Close()
			_ = ln.Close() // Serve never ran: Close does not close it
			return nil, err
		}
	}
	if cfg.AdminListen != "" {
		if err := srv.startAdmin(cfg.AdminListen); err != nil {
			_ = srv.Close()
			_ = ln.Close()
			return nil, err
		}
	}
	self.Store(srv)
	go func() {
		if srv.tls {
			srv.done <- srv.http.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			srv.done <- srv.http.Serve(ln)
		}
	}()
	return srv, nil
}

// URL is the address a browser opens.
func (s *Server) URL() string {
	a := s.ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, fmt.Sprint(a.Port)))
}

// SFU is the server's media core.
func (s *Server) SFU() *sfu.SFU { return s.sfu }

// MediaAddrs are the UDP addresses media arrives on.
func (s *Server) MediaAddrs() []net.Addr { return s.sfu.LocalAddrs() }

// Done reports the HTTP server's end.
func (s *Server) Done() <-chan error { return s.done }

// Close stops accepting, ends every session and closes the media port.
func (s *Server) Close() error {
	// Connections a browser opened without sending a request only count as
	// idle after 5 s: do not wait that long for them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.rec != nil {
		s.rec.close(s.log) // finish the files first: they must survive the shutdown
	}
	s.sig.Close()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	if s.admin != nil {
		_ = s.admin.Close()
	}
	err = errors.Join(err, s.sfu.Close())
	if s.turn != nil {
		err = errors.Join(err, s.turn.Close())
	}
	if s.hooks != nil { // after the SFU: the last rooms' events go out too
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		_ = s.hooks.Close(hctx)
	}
	return err
}

// startTURN starts the embedded TURN server.
func (s *Server) startTURN(cfg turnserver.Config, nat1To1IPs []string, logger *slog.Logger) error {
	if cfg.Logger == nil {
		cfg.Logger = logger.With("component", "turn")
	}
	if cfg.AllowPeer == nil { // relay to this SFU only, not to any host
		cfg.AllowPeer = turnserver.MediaPeers(s.sfu.LocalAddrs(), nat1To1IPs)
	}
	t, err := turnserver.Start(cfg)
	if err != nil {
		return fmt.Errorf("embedded TURN: %w", err)
	}
	s.turn = t
	return nil
}

// TURNURLs are the embedded TURN server's URLs (nil when it is off).
func (s *Server) TURNURLs() []string {
	if s.turn == nil {
		return nil
	}
	return s.turn.URLs()
}

// TURNCredentials returns credentials for the embedded TURN server, valid
// for its CredentialTTL (empty when it is off).
func (s *Server) TURNCredentials(identity string) (user, pass string) {
	if s.turn == nil {
		return "", ""
	}
	return s.turn.Credentials(identity)
}
