// Package turntest runs an external TURN server (coturn) for tests.
package turntest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// Coturn returns the path of coturn's turnserver binary. Without it the
// test is skipped with a message, or fails when CHORUS_E2E=1 (CI installs
// coturn).
func Coturn(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CHORUS_E2E") == "1" {
			t.Fatal("coturn's turnserver binary is not on PATH (CHORUS_E2E=1 requires it: apt-get install coturn)")
		}
		t.Skip("coturn's turnserver binary is not on PATH: install coturn (apt-get install coturn) to run this interop test")
	}
	return bin
}

func deadline(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// StartCoturn runs coturn (binary bin, with use-auth-secret and secret) on a free loopback port until the test ends and
// returns its address once it answers STUN.
func StartCoturn(t testing.TB, bin, secret string) string {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "turnserver.conf") // empty: keep /etc/turnserver.conf out of it
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-c", conf,
		"--listening-port=" + strconv.Itoa(port),
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
		"--use-auth-secret", "--static-auth-secret=" + secret, "--realm=chorus",
		"--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--allow-loopback-peers",
		"--log-file=stdout", "--simple-log",
		"--pidfile=" + filepath.Join(dir, "turnserver.pid"), "--userdb=" + filepath.Join(dir, "turndb"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...) // killed when ctx ends
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start coturn: %v", err)
	}
	var waitErr error // set before exited closes
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("coturn output:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitSTUN(deadline(t, 15*time.Second), addr, exited); err != nil {
		select {
		case <-exited:
			err = fmt.Errorf("%w (coturn exited: %v)", err, waitErr)
		default:
		}
		t.Fatalf("coturn on %s: %v\n%s", addr, err, out.String())
	}
	return addr
}

// FreePort returns a loopback port free for both UDP and TCP just now.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = u.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// waitSTUN sends STUN binding requests to addr until one is answered, the
// server process exits or ctx ends.
func waitSTUN(ctx context.Context, addr string, exited <-chan struct{}) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := conn.WriteTo(req.Raw, to); err != nil {
			return err
		}
		// the read deadline is the retry interval
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if err == nil {
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() == nil && res.TransactionID == req.TransactionID {
				return nil
			}
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() { //nolint:errorlint // net.Error is an interface check
			return err
		}
		select {
		case <-exited:
			return errors.New("the server exited")
		case <-ctx.Done():
			return errors.New("no STUN answer before the deadline")
		default:
		}
	}
}

// syncBuffer collects a subprocess's output written from exec's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
