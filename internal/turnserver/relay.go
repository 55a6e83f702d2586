package turnserver

import (
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/pion/turn/v5"
)

// relayGenerator wraps pion's relay address generators: it refuses TCP
// relays (RFC 6062; WebRTC only needs UDP relays, and a TCP relay could be
// aimed at any TCP service) and applies the peer filter to UDP relays.
type relayGenerator struct {
	turn.RelayAddressGenerator
	allow func(netip.AddrPort) bool // nil: every peer
}

func (g relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.RelayAddressGenerator.AllocatePacketConn(c)
	if err != nil || g.allow == nil {
		return conn, addr, err
	}
	return filteredConn{PacketConn: conn, allow: g.allow}, addr, nil
}

func (relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrTCPRelay
}

func (relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, ErrTCPRelay
}

// filteredConn is a relay socket that only exchanges packets with allowed
// peers: others are dropped silently, as a firewall would.
type filteredConn struct {
	net.PacketConn
	allow func(netip.AddrPort) bool
}

func (c filteredConn) ok(addr net.Addr) bool {
	u, isUDP := addr.(*net.UDPAddr)
	if !isUDP {
		return false
	}
	ap := u.AddrPort()
	return c.allow(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

func (c filteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.ok(addr) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c filteredConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.ok(addr) {
			return n, addr, err
		}
	}
}

// trackedListener remembers the TURN-over-TCP connections it accepted, so
// that Close can end them: pion's server only closes the listener.
type trackedListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTrackedListener(ln net.Listener) *trackedListener {
	return &trackedListener{Listener: ln, conns: map[net.Conn]struct{}{}}
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// closeConns closes every accepted connection, now and later.
func (l *trackedListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l *trackedListener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// MediaPeers is an AllowPeer for a TURN server that only serves the SFU on
// its host: it allows the SFU's UDP media addresses (local, as listened on)
// and, on the same ports, its NAT 1:1 public IPs ("public" or
// "public/private", as in sfu.Config.NAT1To1IPs). Relays then cannot be
// used to reach other hosts or other ports.
func MediaPeers(local []net.Addr, nat1To1IPs []string) func(netip.AddrPort) bool {
	allowed := map[netip.AddrPort]bool{}
	for _, a := range local {
		u, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := u.AddrPort()
		allowed[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
		for _, n := range nat1To1IPs {
			public, _, _ := strings.Cut(n, "/")
			if ip, err := netip.ParseAddr(public); err == nil {
				allowed[netip.AddrPortFrom(ip.Unmap(), ap.Port())] = true
			}
		}
	}
	return func(p netip.AddrPort) bool { return allowed[p] }
}
