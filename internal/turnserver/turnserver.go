// Package turnserver is an embedded TURN server (RFC 8656, on pion/turn)
// for clients whose firewall blocks direct UDP to the SFU. Clients
// authenticate with time-limited credentials in the TURN REST API style
// (see Credentials), which coturn's use-auth-secret accepts as well, so a
// deployment can swap the embedded server for coturn with the same secret.
package turnserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v5"
)

// Errors returned by Start and, for ErrTCPRelay, seen by clients as an
// allocation failure.
var (
	ErrNoPublicIP     = errors.New("turnserver: PublicIP is required and must be an IP address")
	ErrSecretTooShort = errors.New("turnserver: Secret must be at least 32 bytes")
	ErrNoListener     = errors.New("turnserver: ListenUDP or ListenTCP is required")
	ErrBadPortRange   = errors.New("turnserver: bad relay port range")
	// ErrTCPRelay: TCP relay allocations (RFC 6062) are not offered; TURN
	// over TCP to the server with UDP relays is.
	ErrTCPRelay = errors.New("turnserver: TCP relay allocations are not supported")
)

// MinSecretLen is the shortest accepted shared secret.
const MinSecretLen = 32

// Config configures a TURN server.
type Config struct {
	// ListenUDP is the TURN over UDP address, e.g. "0.0.0.0:3478" (port 0:
	// ephemeral). Relay sockets listen on its host, too.
	ListenUDP string
	// ListenTCP, if set, also serves TURN over TCP (with UDP relays) there.
	ListenTCP string
	// PublicIP is the address advertised for relays and in URLs (required).
	PublicIP string
	// Realm is the authentication realm (default "chorus").
	Realm string
	// Secret is the shared secret credentials are signed with (at least
	// MinSecretLen bytes).
	Secret string
	// RelayPortMin and RelayPortMax bound the relay ports (0, 0: any).
	RelayPortMin, RelayPortMax int
	// MaxAllocationsPerUser limits the live allocations of one identity
	// (default 5). A browser makes one per PeerConnection and TURN URL.
	MaxAllocationsPerUser int
	// CredentialTTL is how long credentials from (*Server).Credentials stay
	// valid (default 12 h).
	CredentialTTL time.Duration
	// AllowPeer, if set, decides which peers relays may exchange packets
	// with (others are dropped). nil: any peer, like an open TURN server.
	AllowPeer func(peer netip.AddrPort) bool
	Logger    *slog.Logger
	// Now is the clock credentials are checked against (default time.Now).
	Now func() time.Time
}

// Server is a running TURN server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	turn  *turn.Server
	quota *quota
	udp   net.PacketConn   // nil: no TURN over UDP
	tcp   *trackedListener // nil: no TURN over TCP

	closeOnce sync.Once
	closeErr  error
}

// closeWait bounds how long Close waits for pion to delete the allocations
// it closes (it does so on its own goroutines).
const closeWait = 2 * time.Second

func (c *Config) withDefaults() error {
	if c.Realm == "" {
		c.Realm = "chorus"
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = 5
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = 12 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case net.ParseIP(c.PublicIP) == nil:
		return fmt.Errorf("%w: %q", ErrNoPublicIP, c.PublicIP)
	case len(c.Secret) < MinSecretLen:
		return fmt.Errorf("%w (got %d)", ErrSecretTooShort, len(c.Secret))
	case c.ListenUDP == "" && c.ListenTCP == "":
		return ErrNoListener
	case c.RelayPortMin == 0 && c.RelayPortMax == 0: // any port
	case c.RelayPortMin <= 0 || c.RelayPortMax > 65535 || c.RelayPortMin > c.RelayPortMax:
		return fmt.Errorf("%w: %d-%d", ErrBadPortRange, c.RelayPortMin, c.RelayPortMax)
	}
	if c.MaxAllocationsPerUser < 0 {
		return fmt.Errorf("turnserver: MaxAllocationsPerUser %d < 0", c.MaxAllocationsPerUser)
	}
	return nil
}

// Start validates cfg, listens and serves in the background.
func Start(cfg Config) (*Server, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, quota: newQuota(cfg.MaxAllocationsPerUser, cfg.Now)}
	relayHost, err := relayListenHost(cfg)
	if err != nil {
		return nil, err
	}
	gen := relayGenerator{allow: cfg.AllowPeer}
	publicIP := net.ParseIP(cfg.PublicIP)
	if cfg.RelayPortMin != 0 {
		gen.RelayAddressGenerator = &turn.RelayAddressGeneratorPortRange{RelayAddress: publicIP, Address: relayHost,
			MinPort: uint16(cfg.RelayPortMin), MaxPort: uint16(cfg.RelayPortMax)} //nolint:gosec // range checked
	} else {
		gen.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{RelayAddress: publicIP, Address: relayHost}
	}

	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  func(identity, _ string, _ net.Addr) bool { return s.quota.reserve(identity) },
		LoggerFactory: slogFactory{cfg.Logger},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, proto, identity, _ string, relay net.Addr, _ int) {
				s.quota.created(identity)
				s.log.Debug("turn allocation", "user", identity, "client", src, "transport", proto, "relay", relay)
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, identity, _ string) {
				s.quota.deleted(identity)
				s.log.Debug("turn allocation deleted", "user", identity, "client", src)
			},
		},
	}
	if cfg.ListenUDP != "" {
		if s.udp, err = net.ListenPacket("udp", cfg.ListenUDP); err != nil { //nolint:noctx // no context to pass
			return nil, fmt.Errorf("turnserver: listen UDP %s: %w", cfg.ListenUDP, err)
		}
		sc.PacketConnConfigs = []turn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen}}
	}
	if cfg.ListenTCP != "" {
		ln, err := net.Listen("tcp", cfg.ListenTCP) //nolint:noctx // no context to pass
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("turnserver: listen TCP %s: %w", cfg.ListenTCP, err)
		}
		s.tcp = newTrackedListener(ln)
		sc.ListenerConfigs = []turn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen}}
	}
	if s.turn, err = turn.NewServer(sc); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turnserver: %w", err)
	}
	s.log.Info("turn server listening", "urls", s.URLs(), "realm", cfg.Realm)
	return s, nil
}

// relayListenHost is the address relay sockets listen on: the host of the
// UDP (else TCP) listen address, every interface when it has none.
func relayListenHost(cfg Config) (string, error) {
	addr := cfg.ListenUDP
	if addr == "" {
		addr = cfg.ListenTCP
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("turnserver: listen address %q: %w", addr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, nil
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
}

// authenticate is pion's AuthHandler: it accepts a TURN REST username whose
// expiry is in the future and returns its identity as the user ID (what
// the quota and the allocation events see). pion then checks the message
// integrity against the key, so a wrong password fails there.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	expiry, identity, ok := parseUsername(ra.Username)
	switch {
	case !ok:
		s.log.Debug("turn auth: malformed username", "username", ra.Username, "client", ra.SrcAddr)
		return "", nil, false
	case !s.cfg.Now().Before(expiry):
		s.log.Debug("turn auth: expired credentials", "username", ra.Username, "client", ra.SrcAddr)
		return "", nil, false
	case ra.Realm != s.cfg.Realm:
		s.log.Debug("turn auth: wrong realm", "realm", ra.Realm, "client", ra.SrcAddr)
		return "", nil, false
	}
	return identity, turn.GenerateAuthKey(ra.Username, ra.Realm, sign(s.cfg.Secret, ra.Username)), true
}

// Credentials returns credentials for identity valid for the configured
// CredentialTTL from now.
func (s *Server) Credentials(identity string) (username, password string) {
	return Credentials(s.cfg.Secret, identity, s.cfg.CredentialTTL, s.cfg.Now())
}

// URLs are the server's TURN URLs, for ICE server configurations.
func (s *Server) URLs() []string {
	var urls []string
	if s.udp != nil {
		urls = append(urls, s.url(s.udp.LocalAddr(), "udp"))
	}
	if s.tcp != nil {
		urls = append(urls, s.url(s.tcp.Addr(), "tcp"))
	}
	return urls
}

func (s *Server) url(a net.Addr, transport string) string {
	_, port, _ := net.SplitHostPort(a.String())
	return "turn:" + net.JoinHostPort(s.cfg.PublicIP, port) + "?transport=" + transport
}

// Allocations is the number of live allocations.
func (s *Server) Allocations() int {
	n, _ := s.quota.count()
	return n
}

// Close stops serving, ends every TURN-over-TCP connection and relay, and
// waits (up to 2 s) until pion has deleted every allocation.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.turn.Close()
		if s.tcp != nil {
			s.tcp.closeConns()
		}
		timeout := time.NewTimer(closeWait)
		defer timeout.Stop()
		for {
			n, changed := s.quota.count()
			if n == 0 {
				return
			}
			select {
			case <-changed:
			case <-timeout.C:
				s.log.Warn("turn server closed with allocations left", "allocations", n)
				return
			}
		}
	})
	if s.closeErr != nil {
		return fmt.Errorf("turnserver: close: %w", s.closeErr)
	}
	return nil
}
