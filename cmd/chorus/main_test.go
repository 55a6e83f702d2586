package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

func TestFlagsReadEnvironment(t *testing.T) {
	env := map[string]string{"CHORUS_LISTEN": "0.0.0.0:9000", "CHORUS_UDP_PORT": "9002", "CHORUS_LOG_LEVEL": "debug"}
	o, err := parseFlags(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "0.0.0.0:9000" || o.udpPort != 9002 || o.logLevel != "debug" {
		t.Fatalf("env not applied: %+v", o)
	}
	o, err = parseFlags([]string{"--listen", "127.0.0.1:1", "--udp-port", "5"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:1" || o.udpPort != 5 {
		t.Fatalf("flags should win over env: %+v", o)
	}
	o, err = parseFlags(nil, func(string) string { return "" })
	if err != nil || o.listen != "127.0.0.1:7880" || o.udpPort != 7882 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	if _, err := parseFlags(nil, func(k string) string { return map[string]string{"CHORUS_UDP_PORT": "x"}[k] }); err == nil {
		t.Fatal("bad CHORUS_UDP_PORT accepted")
	}
}

func TestRunRejectsBadLogLevel(t *testing.T) {
	if err := run([]string{"--log-level", "loud"}, func(string) string { return "" }); err == nil {
		t.Fatal("bad log level accepted")
	}
}

func TestRecordingFlags(t *testing.T) {
	env := map[string]string{"CHORUS_RECORDINGS_MAX_AGE": "720h", "CHORUS_AUTO_RECORD": "a,b"}
	o, err := parseFlags([]string{"--recordings-dir", "/tmp/r", "--recordings-max-bytes", "1000", "--client-recording", "false"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.recDir != "/tmp/r" || o.recMaxAge.Hours() != 720 || o.recMaxBytes != 1000 || o.autoRecord != "a,b" || o.clientRecording != "false" {
		t.Fatalf("recording flags not applied: %+v", o)
	}
	if _, err := parseFlags(nil, func(k string) string {
		return map[string]string{"CHORUS_RECORDINGS_MAX_AGE": "soon"}[k]
	}); err == nil {
		t.Fatal("a bad duration was accepted")
	}
	if err := run([]string{"--client-recording", "maybe", "--recordings-dir", ""}, func(string) string { return "" }); err == nil {
		t.Fatal("a bad --client-recording was accepted")
	}
	for addr, want := range map[string]bool{"127.0.0.1:7880": true, "[::1]:1": true, "localhost:80": true,
		"0.0.0.0:7880": false, "192.0.2.1:80": false, "bad": false} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v", addr, got)
		}
	}
}

// Settings come from the defaults, then the YAML file, then the
// environment, then the command line.
func TestConfigFilePrecedence(t *testing.T) {
	file := []byte(`
listen: 0.0.0.0:9100
udp-port: 9102
nat-1to1-ips: [203.0.113.7, 203.0.113.8]
keys:
  alpha: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
  beta: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
max-participants: 7
bwe: false
drain-timeout: 3s
`)
	read := func(path string) ([]byte, error) {
		if path != "chorus.yaml" {
			t.Fatalf("read %q", path)
		}
		return file, nil
	}
	env := map[string]string{"CHORUS_CONFIG": "chorus.yaml", "CHORUS_UDP_PORT": "9202"}
	o, err := loadOptions([]string{"--max-participants", "9"}, func(k string) string { return env[k] }, read)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "0.0.0.0:9100" || o.udpPort != 9202 || o.nat1to1 != "203.0.113.7,203.0.113.8" ||
		o.limits.MaxParticipantsPerRoom != 9 || o.bwe || o.drainTimeout.Seconds() != 3 ||
		o.keys != "alpha:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,beta:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" {
		t.Fatalf("file, env and flags not layered: %+v", o)
	}
	keys, err := parseKeys(o)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys from the file: %v %v", keys, err)
	}
	// --config on the command line wins over CHORUS_CONFIG
	if _, err := loadOptions([]string{"--config=other.yaml"}, func(k string) string { return env[k] },
		func(p string) ([]byte, error) {
			if p != "other.yaml" {
				t.Fatalf("read %q", p)
			}
			return []byte("listen: 127.0.0.1:1\n"), nil
		}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown key": "lisen: x\n",
		"bad value":   "udp-port: many\n",
		"not a map":   "- a\n- b\n",
	} {
		if _, err := loadOptions(nil, func(k string) string { return env[k] },
			func(string) ([]byte, error) { return []byte(bad), nil }); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// Without access keys the server runs only on loopback.
func TestNoKeysOnlyOnLoopback(t *testing.T) {
	none := func(string) string { return "" }
	o, err := parseFlags([]string{"--listen", "0.0.0.0:7880"}, none)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serverConfig(o, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "without access keys") {
		t.Fatalf("an open server on 0.0.0.0 was allowed: %v", err)
	}
	o.apiSecret = "short"
	if _, err := serverConfig(o, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("a short secret was accepted")
	}
	o.apiSecret = strings.Repeat("s", 40)
	cfg, err := serverConfig(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || len(cfg.Keys) != 1 || cfg.Keys["chorus"] == "" {
		t.Fatalf("with a key: %v %+v", err, cfg.Keys)
	}
	o, _ = parseFlags(nil, none)
	if cfg, err := serverConfig(o, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil || len(cfg.Keys) != 0 {
		t.Fatalf("the loopback demo: %v", err)
	}
}

// docs/configuration.md documents every setting.
func TestEverySettingDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var o options
	newFlagSet(&o).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(doc), "`--"+f.Name+"`") {
			t.Errorf("docs/configuration.md does not document --%s", f.Name)
		}
	})
}

// A signal drains the server: the joined client is told to reconnect, and
// once it has left the server closes (well before the drain timeout).
func TestSignalDrains(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: "127.0.0.1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	told := make(chan struct{})
	var once sync.Once
	c, err := client.Dial(ctx, strings.Replace(srv.URL(), "http://", "ws://", 1)+"ws", client.Options{Events: func(m signaling.Message) {
		if m.Type == signaling.TypeReconnect {
			once.Do(func() { close(told) })
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, "r", "a"); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- serve(srv, sigs, time.Minute, log) }()
	sigs <- syscall.SIGTERM
	select {
	case <-told:
	case <-ctx.Done():
		t.Fatal("the client was not told to reconnect")
	}
	if resp, err := http.Get(srv.URL() + "readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	_ = c.Close() // the client moves elsewhere
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the server did not close once its last client left")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("drain took %v", took)
	}
}
