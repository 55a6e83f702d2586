// Command chorus runs the Chorus SFU.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chorus-sfu/chorus/internal/server"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "chorus:", err)
		os.Exit(1)
	}
}

type options struct {
	listen   string
	udpPort  int
	udpIP    string
	nat1to1  string
	logLevel string
	bwe      bool

	recDir          string
	recMaxAge       time.Duration
	recMaxBytes     int64
	autoRecord      string
	clientRecording string
	apiKey          string
}

// parseFlags reads flags; every flag also reads CHORUS_<NAME> from the
// environment (flags win).
func parseFlags(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chorus", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv("CHORUS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&o.listen, "listen", env("listen", "127.0.0.1:7880"), "HTTP and WebSocket address (env CHORUS_LISTEN)")
	port, err := strconv.Atoi(env("udp-port", "7882"))
	if err != nil {
		return o, fmt.Errorf("CHORUS_UDP_PORT: %w", err)
	}
	fs.IntVar(&o.udpPort, "udp-port", port, "the single UDP port for all media (env CHORUS_UDP_PORT)")
	fs.StringVar(&o.udpIP, "udp-ip", env("udp-ip", ""),
		"restrict media to this local IP (default: every interface, loopback included) (env CHORUS_UDP_IP)")
	fs.StringVar(&o.nat1to1, "nat-1to1-ips", env("nat-1to1-ips", ""),
		"comma-separated public IPs advertised for media (env CHORUS_NAT_1TO1_IPS)")
	fs.BoolVar(&o.bwe, "bwe", env("bwe", "true") != "false" && env("bwe", "true") != "0",
		"limit each subscriber's simulcast layers to its estimated bandwidth; --bwe=false to turn off (env CHORUS_BWE)")
	fs.StringVar(&o.logLevel, "log-level", env("log-level", "info"), "debug, info, warn or error (env CHORUS_LOG_LEVEL)")
	fs.StringVar(&o.recDir, "recordings-dir", env("recordings-dir", "recordings"),
		"folder for server-side recordings; empty: recording off (env CHORUS_RECORDINGS_DIR)")
	maxAge, err := time.ParseDuration(env("recordings-max-age", "0s"))
	if err != nil {
		return o, fmt.Errorf("CHORUS_RECORDINGS_MAX_AGE: %w", err)
	}
	fs.DurationVar(&o.recMaxAge, "recordings-max-age", maxAge,
		"delete finished recordings older than this, e.g. 720h; 0: keep (env CHORUS_RECORDINGS_MAX_AGE)")
	maxBytes, err := strconv.ParseInt(env("recordings-max-bytes", "0"), 10, 64)
	if err != nil {
		return o, fmt.Errorf("CHORUS_RECORDINGS_MAX_BYTES: %w", err)
	}
	fs.Int64Var(&o.recMaxBytes, "recordings-max-bytes", maxBytes,
		"delete the oldest finished recordings while the folder holds more bytes than this; 0: no limit (env CHORUS_RECORDINGS_MAX_BYTES)")
	fs.StringVar(&o.autoRecord, "auto-record", env("auto-record", ""),
		"comma-separated rooms recorded from their start; * for every room (env CHORUS_AUTO_RECORD)")
	fs.StringVar(&o.clientRecording, "client-recording", env("client-recording", "auto"),
		"let participants start and stop recordings: true, false, or auto (only on a loopback address) (env CHORUS_CLIENT_RECORDING)")
	fs.StringVar(&o.apiKey, "api-key", env("api-key", ""),
		"key the recordings HTTP API requires (Authorization: Bearer <key>); without it the API only answers on loopback (env CHORUS_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, nil
}

func run(args []string, getenv func(string) string) error {
	o, err := parseFlags(args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var nat []string
	if o.nat1to1 != "" {
		nat = strings.Split(o.nat1to1, ",")
	}
	rec := server.RecordingConfig{Dir: o.recDir, MaxAge: o.recMaxAge, MaxBytes: o.recMaxBytes, APIKey: o.apiKey}
	if o.autoRecord != "" {
		rec.AutoRecord = strings.Split(o.autoRecord, ",")
	}
	switch o.clientRecording {
	case "true", "1":
		rec.ClientRecording = true
	case "false", "0":
	case "auto":
		rec.ClientRecording = isLoopback(o.listen)
	default:
		return fmt.Errorf("--client-recording: %q is not true, false or auto", o.clientRecording)
	}
	srv, err := server.Start(server.Config{Listen: o.listen, UDPPort: o.udpPort, UDPIP: o.udpIP, NAT1To1IPs: nat,
		NoBandwidthAllocation: !o.bwe, Recording: rec, Logger: log})
	if err != nil {
		return err
	}
	log.Info("chorus started", "http", o.listen, "media", fmt.Sprint(srv.MediaAddrs()), "recordings", o.recDir)
	fmt.Printf("Chorus is running. Open %s?room=demo in two browser tabs to start a call.\n", srv.URL())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sigs:
		log.Info("shutting down", "signal", s.String())
	case err := <-srv.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			_ = srv.Close()
			return err
		}
	}
	return srv.Close()
}

// isLoopback reports whether a listen address is on a loopback interface.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
