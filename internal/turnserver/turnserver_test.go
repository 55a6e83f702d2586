package turnserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the scheme under test
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "0123456789abcdef0123456789abcdef-test"

func testLogger() *slog.Logger {
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func deadline(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startTURN starts a server on loopback with an ephemeral UDP port; cfg's
// zero fields get test values.
func startTURN(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.ListenUDP == "" {
		cfg.ListenUDP = "127.0.0.1:0"
	}
	if cfg.PublicIP == "" {
		cfg.PublicIP = "127.0.0.1"
	}
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	cfg.Logger = testLogger()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// turnAddr is the host:port of the server's URL for transport.
func turnAddr(t testing.TB, urls []string, transport string) string {
	t.Helper()
	for _, u := range urls {
		if strings.HasSuffix(u, "?transport="+transport) {
			return strings.TrimSuffix(strings.TrimPrefix(u, "turn:"), "?transport="+transport)
		}
	}
	t.Fatalf("no %s URL in %v", transport, urls)
	return ""
}

// allocation is a pion TURN client with (perhaps) an allocation.
type allocation struct {
	client *turn.Client
	conn   net.PacketConn // the client's socket
	relay  net.PacketConn // nil when allocating failed
}

// allocate asks the server at addr (over UDP, or TCP) for a relay.
func allocate(t testing.TB, addr, transport, user, pass string) (*allocation, error) {
	t.Helper()
	var conn net.PacketConn
	if transport == "tcp" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	} else {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	}
	client, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, Username: user, Password: pass,
		Conn: conn, LoggerFactory: slogFactory{testLogger()}, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	a := &allocation{client: client, conn: conn}
	t.Cleanup(a.close)
	a.relay, err = client.AllocateWithContext(deadline(t, 5*time.Second))
	return a, err
}

func (a *allocation) close() {
	if a.relay != nil {
		_ = a.relay.Close()
	}
	a.client.Close()
	_ = a.conn.Close()
}

func turnErrorCode(err error) stun.ErrorCode {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return te.ErrorCodeAttr.Code
	}
	return 0
}

func TestCredentialsFormat(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	user, pass := Credentials("secret", "alice:laptop", time.Hour, now)
	if want := "1700003600:alice:laptop"; user != want {
		t.Fatalf("username %q, want %q", user, want)
	}
	mac := hmac.New(sha1.New, []byte("secret"))
	mac.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); pass != want {
		t.Fatalf("password %q, want %q", pass, want)
	}
	exp, id, ok := parseUsername(user)
	if !ok || id != "alice:laptop" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("parse: %v %q %v", exp, id, ok)
	}
	for _, bad := range []string{"", "alice", "1700003600", "1700003600:", "soon:alice"} {
		if _, _, ok := parseUsername(bad); ok {
			t.Errorf("username %q accepted", bad)
		}
	}
}

func TestStartValidation(t *testing.T) {
	good := Config{ListenUDP: "127.0.0.1:0", PublicIP: "127.0.0.1", Secret: testSecret, Logger: testLogger()}
	cases := []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{"no public IP", func(c *Config) { c.PublicIP = "" }, ErrNoPublicIP},
		{"public IP a name", func(c *Config) { c.PublicIP = "turn.example.com" }, ErrNoPublicIP},
		{"short secret", func(c *Config) { c.Secret = "short" }, ErrSecretTooShort},
		{"no listener", func(c *Config) { c.ListenUDP = "" }, ErrNoListener},
		{"inverted range", func(c *Config) { c.RelayPortMin, c.RelayPortMax = 50000, 40000 }, ErrBadPortRange},
		{"half range", func(c *Config) { c.RelayPortMax = 40000 }, ErrBadPortRange},
		{"range too high", func(c *Config) { c.RelayPortMin, c.RelayPortMax = 60000, 70000 }, ErrBadPortRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.change(&cfg)
			s, err := Start(cfg)
			if !errors.Is(err, c.want) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	s := startTURN(t, Config{ListenTCP: "127.0.0.1:0", PublicIP: "203.0.113.7"})
	urls := s.URLs()
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "turn:203.0.113.7:") || !strings.HasSuffix(urls[0], "?transport=udp") ||
		!strings.HasSuffix(urls[1], "?transport=tcp") {
		t.Fatalf("URLs %v", urls)
	}
	port := strings.TrimSuffix(strings.TrimPrefix(urls[0], "turn:203.0.113.7:"), "?transport=udp")
	if p, err := strconv.Atoi(port); err != nil || p == 0 {
		t.Fatalf("URL %s: port %q", urls[0], port)
	}
}

// A relay-only PeerConnection reaches a host-only one through the server,
// over TURN/UDP and TURN/TCP, and the pair ICE selected is a relayed one.
func TestRelayOnlyPeerConnection(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			s := startTURN(t, Config{ListenTCP: "127.0.0.1:0", RelayPortMin: 40000, RelayPortMax: 40999})
			user, pass := s.Credentials("alice")
			var url string
			for _, u := range s.URLs() {
				if strings.HasSuffix(u, "transport="+transport) {
					url = u
				}
			}
			relayed := checkRelayedPeerConnection(t, webrtc.ICEServer{URLs: []string{url}, Username: user, Credential: pass})
			if p := relayed.Port; p < 40000 || p > 40999 {
				t.Errorf("relay port %d outside 40000-40999", p)
			}
			if n := s.Allocations(); n != 1 {
				t.Errorf("%d allocations, want 1", n)
			}
		})
	}
}

// checkRelayedPeerConnection connects a relay-only PeerConnection using
// server to a host-only one, sends a data channel message through and
// returns the relayed local candidate ICE selected.
func checkRelayedPeerConnection(t *testing.T, server webrtc.ICEServer) webrtc.ICECandidate {
	t.Helper()
	ctx := deadline(t, 20*time.Second)
	api := loopbackAPI()
	relayPC := newPC(t, api, webrtc.Configuration{ICEServers: []webrtc.ICEServer{server},
		ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	hostPC := newPC(t, api, webrtc.Configuration{})

	got := make(chan string, 1)
	hostPC.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case got <- string(m.Data):
			default:
			}
		})
	})
	dc, err := relayPC.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { _ = dc.SendText("through the relay") })
	exchangeSDP(t, relayPC, hostPC)
	select {
	case m := <-got:
		if m != "through the relay" {
			t.Fatalf("message %q", m)
		}
	case <-ctx.Done():
		t.Fatalf("no message through the relay (ICE %s)", relayPC.ICEConnectionState())
	}
	pair, err := relayPC.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("selected local candidate %s, want a relay one", pair.Local)
	}
	return *pair.Local
}

// loopbackAPI gathers on loopback only, UDP4, without mDNS.
func loopbackAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.LoggerFactory = slogFactory{testLogger()}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func newPC(t testing.TB, api *webrtc.API, cfg webrtc.Configuration) *webrtc.PeerConnection {
	t.Helper()
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// exchangeSDP negotiates offerer with answerer, every candidate in the SDP.
func exchangeSDP(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

// Wrong passwords, foreign secrets, expired or malformed usernames get no
// allocation (401); good credentials do, over UDP and TCP.
func TestAuthentication(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := startTURN(t, Config{ListenTCP: "127.0.0.1:0", Now: func() time.Time { return now }})
	udp := turnAddr(t, s.URLs(), "udp")
	user, pass := Credentials(testSecret, "alice", time.Hour, now)
	oldUser, oldPass := Credentials(testSecret, "alice", time.Hour, now.Add(-2*time.Hour))
	foreignUser, foreignPass := Credentials("another secret of at least 32 bytes!", "alice", time.Hour, now)
	bareUser := strconv.FormatInt(now.Add(time.Hour).Unix(), 10) // coturn's form without identity
	cases := []struct{ name, user, pass string }{
		{"wrong password", user, "not-the-password"},
		{"other secret", foreignUser, foreignPass},
		{"expired", oldUser, oldPass},
		{"no identity", bareUser, sign(testSecret, bareUser)},
		{"not a timestamp", "alice", sign(testSecret, "alice")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := allocate(t, udp, "udp", c.user, c.pass)
			if code := turnErrorCode(err); code != stun.CodeUnauthorized {
				t.Fatalf("allocation: %v, want error 401", err)
			}
		})
	}
	for _, transport := range []string{"udp", "tcp"} {
		if _, err := allocate(t, turnAddr(t, s.URLs(), transport), transport, user, pass); err != nil {
			t.Fatalf("good credentials over %s: %v", transport, err)
		}
	}
	if n := s.Allocations(); n != 2 {
		t.Fatalf("%d allocations, want 2", n)
	}
}

// One identity gets MaxAllocationsPerUser allocations, the next is refused
// (486) while another identity still gets one, and a freed slot is usable.
func TestPerUserLimit(t *testing.T) {
	const limit = 3
	s := startTURN(t, Config{ListenTCP: "127.0.0.1:0", MaxAllocationsPerUser: limit})
	udp, tcp := turnAddr(t, s.URLs(), "udp"), turnAddr(t, s.URLs(), "tcp")
	alice, alicePass := s.Credentials("alice")
	var allocs []*allocation
	for i := range limit {
		addr, transport := udp, "udp"
		if i == 1 {
			addr, transport = tcp, "tcp" // TURN over TCP counts toward the same limit
		}
		a, err := allocate(t, addr, transport, alice, alicePass)
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		allocs = append(allocs, a)
	}
	_, err := allocate(t, udp, "udp", alice, alicePass)
	if code := turnErrorCode(err); code != stun.CodeAllocQuotaReached {
		t.Fatalf("allocation %d: %v, want error 486", limit+1, err)
	}
	// fresh credentials for the same identity share its quota
	user2, pass2 := Credentials(testSecret, "alice", time.Minute, time.Now())
	if _, err := allocate(t, udp, "udp", user2, pass2); turnErrorCode(err) != stun.CodeAllocQuotaReached {
		t.Fatalf("new credentials for alice: %v, want error 486", err)
	}
	bob, bobPass := s.Credentials("bob")
	if _, err := allocate(t, udp, "udp", bob, bobPass); err != nil {
		t.Fatalf("bob: %v", err)
	}

	// closing a TURN/TCP connection deletes its allocation and frees a slot
	allocs[1].close()
	waitAllocations(t, s, limit-1+1) // alice's remaining ones and bob's
	if _, err := allocate(t, udp, "udp", alice, alicePass); err != nil {
		t.Fatalf("alice after freeing a slot: %v", err)
	}
}

// waitAllocations waits until s has n live allocations.
func waitAllocations(t testing.TB, s *Server, n int) {
	t.Helper()
	ctx := deadline(t, 5*time.Second)
	for {
		got, changed := s.quota.count()
		if got == n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%d allocations, want %d", got, n)
		}
	}
}

// With AllowPeer, relays exchange packets with allowed peers only, even
// when a permission covers the others' IP address.
func TestAllowPeer(t *testing.T) {
	allowed := listenUDP(t)
	other := listenUDP(t)
	allowedAddr := allowed.LocalAddr().(*net.UDPAddr).AddrPort()
	s := startTURN(t, Config{AllowPeer: func(p netip.AddrPort) bool { return p == allowedAddr }})
	user, pass := s.Credentials("alice")
	a, err := allocate(t, turnAddr(t, s.URLs(), "udp"), "udp", user, pass)
	if err != nil {
		t.Fatal(err)
	}
	// outbound: the packet to the other peer is sent first and dropped
	for _, to := range []net.PacketConn{other, allowed} {
		if _, err := a.relay.WriteTo([]byte("out"), to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	_ = allowed.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := allowed.ReadFrom(buf); err != nil {
		t.Fatalf("allowed peer: %v", err)
	}
	// the other peer's packet would have arrived first: it is not there
	_ = other.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := other.ReadFrom(buf); err == nil {
		t.Fatal("a packet reached the peer that is not allowed")
	}
	// inbound: the other peer's packet, sent first, does not come through
	for _, from := range []net.PacketConn{other, allowed} {
		if _, err := from.WriteTo([]byte("in"), a.relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, from, err := a.relay.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.(*net.UDPAddr).AddrPort() != allowedAddr {
		t.Fatalf("received from %s, want only %s", from, allowedAddr)
	}
}

func listenUDP(t testing.TB) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Close ends TURN/TCP connections and deletes every allocation before it
// returns.
func TestCloseEndsAllocations(t *testing.T) {
	s := startTURN(t, Config{ListenTCP: "127.0.0.1:0"})
	user, pass := s.Credentials("alice")
	for _, transport := range []string{"udp", "tcp"} {
		if _, err := allocate(t, turnAddr(t, s.URLs(), transport), transport, user, pass); err != nil {
			t.Fatal(err)
		}
	}
	tcpClient, err := net.Dial("tcp", turnAddr(t, s.URLs(), "tcp")) // idle connection
	if err != nil {
		t.Fatal(err)
	}
	defer tcpClient.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations after Close", n)
	}
	_ = tcpClient.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = tcpClient.Read(make([]byte, 1))
	if err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("idle TURN/TCP connection after Close: read error %v, want EOF or reset", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMediaPeers(t *testing.T) {
	local := []net.Addr{
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, // a 16-byte (mapped) IPv4 address
		&net.UDPAddr{IP: net.ParseIP("10.0.0.2"), Port: 5000},
		&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 6000}, // not media over UDP: ignored
	}
	allow := MediaPeers(local, []string{"203.0.113.9", "198.51.100.1/10.0.0.2", "not-an-ip"})
	for peer, want := range map[string]bool{
		"127.0.0.1:5000": true, "10.0.0.2:5000": true, "203.0.113.9:5000": true, "198.51.100.1:5000": true,
		"127.0.0.1:5001": false, "10.0.0.2:6000": false, "8.8.8.8:5000": false, "203.0.113.9:53": false,
	} {
		if got := allow(netip.MustParseAddrPort(peer)); got != want {
			t.Errorf("%s allowed: %v, want %v", peer, got, want)
		}
	}
}
