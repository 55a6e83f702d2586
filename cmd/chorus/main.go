// Command chorus runs the Chorus SFU.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/internal/server"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "chorus:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "token" {
		return tokenCommand(args[1:], getenv, os.Stdout)
	}
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
	cfg, err := serverConfig(o, log)
	if err != nil {
		return err
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	log.Info("chorus started", "http", o.listen, "media", fmt.Sprint(srv.MediaAddrs()), "recordings", o.recDir,
		"tokens", len(cfg.Keys) > 0)
	fmt.Printf("Chorus is running. Open %s?room=demo in two browser tabs to start a call.\n", srv.URL())

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	return serve(srv, sigs, o.drainTimeout, log)
}

// serve runs until the server fails or a signal arrives; then it drains:
// no new participants, clients told to reconnect, until everyone has left,
// drain ends or a second signal comes; then it closes the server (which
// finishes the recordings).
func serve(srv *server.Server, sigs <-chan os.Signal, drain time.Duration, log *slog.Logger) error {
	select {
	case s := <-sigs:
		log.Info("draining", "signal", s.String(), "timeout", drain)
		srv.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), drain)
		go func() { // a second signal ends the drain at once
			select {
			case <-sigs:
			case <-ctx.Done():
			}
			cancel()
		}()
		srv.WaitEmpty(ctx)
		cancel()
		log.Info("shutting down")
	case err := <-srv.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			_ = srv.Close()
			return err
		}
	}
	return srv.Close()
}

// serverConfig turns the settings into the server's configuration, and
// refuses an unsafe one: no access keys on an address other than loopback.
func serverConfig(o options, log *slog.Logger) (server.Config, error) {
	var cfg server.Config
	keys, err := parseKeys(o)
	if err != nil {
		return cfg, err
	}
	if len(keys) == 0 {
		if !isLoopback(o.listen) {
			return cfg, fmt.Errorf("refusing to serve %s without access keys: set --api-secret (or CHORUS_API_SECRET), "+
				"or listen on 127.0.0.1 for a local demo", o.listen)
		}
		log.Warn("NO ACCESS KEYS: anyone who can reach " + o.listen + " may join any room, publish and record. " +
			"This is only allowed on loopback; set --api-secret before exposing Chorus.")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return cfg, errors.New("--tls-cert and --tls-key go together")
	}
	var nat []string
	if o.nat1to1 != "" {
		nat = strings.Split(o.nat1to1, ",")
	}
	rec := server.RecordingConfig{Dir: o.recDir, MaxAge: o.recMaxAge, MaxBytes: o.recMaxBytes}
	if o.autoRecord != "" {
		rec.AutoRecord = strings.Split(o.autoRecord, ",")
	}
	switch o.clientRecording {
	case "true", "1", "auto":
		rec.ClientRecording = true // for participants whose token has the record grant
	case "false", "0":
	default:
		return cfg, fmt.Errorf("--client-recording: %q is not true, false or auto", o.clientRecording)
	}
	cfg = server.Config{Listen: o.listen, TLSCert: o.tlsCert, TLSKey: o.tlsKey, UDPPort: o.udpPort, UDPIP: o.udpIP,
		ICETCPPort: o.tcpPort, NAT1To1IPs: nat, NoBandwidthAllocation: !o.bwe, PublisherFEC: o.pubFEC, PreferFlexFEC: o.flexFEC, Recording: rec, Keys: keys,
		Limits: o.limits, Chat: o.chat, Data: o.data, AdminListen: o.adminListen, LocalOnly: len(keys) == 0, Logger: log}
	if o.webhookURLs != "" {
		secret, err := secretOr(o.webhookSecret, o.apiSecret, "--webhook-urls needs --webhook-secret (or --api-secret) to sign the events")
		if err != nil {
			return cfg, err
		}
		cfg.Webhooks = server.WebhookConfig{URLs: strings.Split(o.webhookURLs, ","), Secret: secret}
	}
	if o.turnURLs != "" {
		secret, err := secretOr(o.turnSecret, o.apiSecret, "--turn-urls needs --turn-secret (or --api-secret): the servers' use-auth-secret")
		if err != nil {
			return cfg, err
		}
		cfg.ExternalTURN, cfg.ExternalTURNSecret = strings.Split(o.turnURLs, ","), secret
	}
	if o.turn {
		t, err := turnConfig(o, nat)
		if err != nil {
			return cfg, err
		}
		cfg.TURN = t
	}
	return cfg, nil
}

// secretOr is secret, else the API secret, else the error missing.
func secretOr(secret, apiSecret, missing string) (string, error) {
	if secret == "" {
		secret = apiSecret
	}
	if secret == "" {
		return "", errors.New(missing)
	}
	return secret, nil
}

// parseKeys collects the API keys: --api-key/--api-secret and --keys.
func parseKeys(o options) (auth.Keys, error) {
	keys := auth.Keys{}
	if o.apiSecret != "" {
		keys[o.apiKey] = o.apiSecret
	}
	if o.keys != "" {
		for _, pair := range strings.Split(o.keys, ",") {
			name, secret, ok := strings.Cut(strings.TrimSpace(pair), ":")
			if !ok || name == "" || secret == "" {
				return nil, fmt.Errorf("--keys: an entry (named %q) is not name:secret", name)
			}
			keys[name] = secret
		}
	}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	return keys, nil
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
