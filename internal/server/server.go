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

	"github.com/chorus-sfu/chorus/recorder"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/web"
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
	// Net: see sfu.Config (media on another network, e.g. a pion vnet).
	Net transport.Net
	// Recording: server-side recording and the recordings API.
	Recording RecordingConfig
	Logger    *slog.Logger
}

// Server is a running Chorus server.
type Server struct {
	sfu  *sfu.SFU
	sig  *signaling.Server
	http *http.Server
	ln   net.Listener
	done chan error
	rec  *recording // nil: recording off
	log  *slog.Logger
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
	var rec *recording
	var mgr atomic.Pointer[recorder.Manager]
	if cfg.Recording.Dir != "" {
		if rec, err = startRecording(cfg.Recording, cfg.Logger); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	s, err := sfu.New(sfu.Config{UDPPort: cfg.UDPPort, UDPIP: cfg.UDPIP, NAT1To1IPs: cfg.NAT1To1IPs,
		KeyframeInterval: cfg.KeyframeInterval, NoBandwidthAllocation: cfg.NoBandwidthAllocation, Net: cfg.Net, Logger: cfg.Logger,
		OnRoomCreated: autoRecord(cfg.Recording, mgr.Load, cfg.Logger)})
	if err != nil {
		if rec != nil {
			rec.close(cfg.Logger)
		}
		_ = ln.Close()
		return nil, err
	}
	sigCfg := signaling.Config{Logger: cfg.Logger}
	var sigp atomic.Pointer[signaling.Server] // for OnChange: set below
	mux := http.NewServeMux()
	if rec != nil {
		rec.mgr = recorder.NewManager(recorder.ManagerOptions{Dir: cfg.Recording.Dir, Rooms: s.Rooms(), Logger: cfg.Logger,
			OnChange: func(room string, who []string) {
				cfg.Logger.Info("recording", "room", room, "participants", who)
				if sig := sigp.Load(); sig != nil {
					sig.RecordingChanged(room, who)
				}
			}})
		mgr.Store(rec.mgr)
		sigCfg.Recording, sigCfg.ClientRecording = rec.mgr, cfg.Recording.ClientRecording
		h := rec.store.Handler(rec.mgr, apiAuth(cfg.Recording, ln.Addr()))
		for _, m := range []string{"GET", "POST", "DELETE"} { // with methods: "GET /" must not conflict
			mux.Handle(m+" /api/recordings", h)
			mux.Handle(m+" /api/recordings/", h)
		}
	}
	sig := signaling.NewServer(s, sigCfg)
	sigp.Store(sig)
	sig.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /", web.Handler())
	srv := &Server{
		sfu: s, sig: sig, ln: ln, done: make(chan error, 1), rec: rec, log: cfg.Logger,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)},
	}
	go func() { srv.done <- srv.http.Serve(ln) }()
	return srv, nil
}

// URL is the address a browser opens.
func (s *Server) URL() string {
	a := s.ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s/", net.JoinHostPort(host, fmt.Sprint(a.Port)))
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
	return errors.Join(err, s.sfu.Close())
}
