package sfu

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// offerCandidates returns the candidate lines of an offer made with the
// SFU's API (all candidates gathered).
func offerCandidates(t *testing.T, s *SFU) []string {
	t.Helper()
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	var cands []string
	for _, l := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			cands = append(cands, l)
		}
	}
	return cands
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// With TCPPort, the SFU listens for ICE-TCP on UDPIP, offers a passive TCP
// candidate on that port next to the UDP one, and closes the port on Close.
func TestICETCPListener(t *testing.T) {
	s, err := New(Config{UDPIP: "127.0.0.1", TCPPort: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := s.TCPAddr().(*net.TCPAddr)
	if !ok || !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.Port == 0 {
		_ = s.Close()
		t.Fatalf("TCP address %v", s.TCPAddr())
	}
	cands := offerCandidates(t, s)
	var tcp, udp bool
	for _, c := range cands {
		f := strings.Fields(c)
		if len(f) < 8 || f[4] != "127.0.0.1" {
			t.Errorf("candidate %q: not on 127.0.0.1", c)
			continue
		}
		switch strings.ToLower(f[2]) {
		case "tcp":
			tcp = f[5] == strconv.Itoa(addr.Port) && strings.Contains(c, "tcptype passive")
		case "udp":
			udp = true
		}
	}
	if !tcp || !udp {
		t.Errorf("candidates %q: want UDP and passive TCP on port %d", cands, addr.Port)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp4", addr.String()); err == nil {
		_ = c.Close()
		t.Fatal("ICE-TCP port still open after Close")
	}
}

// Without TCPPort there is no TCP port and no TCP candidate.
func TestICETCPOff(t *testing.T) {
	s, err := New(Config{UDPIP: "127.0.0.1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := s.TCPAddr(); a != nil {
		t.Fatalf("TCP address %v with ICE-TCP off", a)
	}
	for _, c := range offerCandidates(t, s) {
		if strings.Contains(strings.ToLower(c), " tcp ") {
			t.Fatalf("TCP candidate %q with ICE-TCP off", c)
		}
	}
}

// A TCP port in use fails New, which leaves nothing open behind.
func TestICETCPPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s, err := New(Config{UDPIP: "127.0.0.1", TCPPort: port, Logger: quietLogger()})
	if err == nil {
		_ = s.Close()
		t.Fatal("New succeeded on a TCP port in use")
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.Contains(err.Error(), "ICE-TCP") {
		t.Fatalf("error %v: want the listen error, wrapped", err)
	}
}
