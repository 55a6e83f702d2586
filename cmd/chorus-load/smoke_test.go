package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func smokeConfig(url string) config {
	return config{url: url, room: "smoke", clients: 5, joinRate: 100, joinTimeout: 5 * time.Second,
		settle: 5 * time.Second, videoKbps: 300, chatSenders: 2, chatRate: 5, duration: 1500 * time.Millisecond, drain: 5 * time.Second}
}

// The whole server (as cmd/chorus runs it) with media: every receiver gets
// the publisher's tracks and the chat is pushed to everyone.
func TestSmokeMediaPush(t *testing.T) {
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: "127.0.0.1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	cfg := smokeConfig(strings.Replace(s.URL(), "http://", "ws://", 1) + "ws")
	cfg.media, cfg.publishers = true, 1
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	res, err := runLoad(ctx, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", tableRow(res))
	if res.Joined != 5 || res.Delivered == 0 || res.Delivered != res.Expected || res.Delivery != "push" {
		t.Fatalf("joined %d, delivered %d of %d, delivery %s", res.Joined, res.Delivered, res.Expected, res.Delivery)
	}
	if res.MediaReady != 4 || res.AudioPktsSec == 0 || res.VideoPktsSec == 0 {
		t.Fatalf("media: %d of 4 receiving, %.0f audio and %.0f video packets/s", res.MediaReady, res.AudioPktsSec, res.VideoPktsSec)
	}
	if res.P50ms <= 0 || res.P99ms < res.P50ms || res.MaxMs < res.P99ms {
		t.Fatalf("latencies %v %v %v", res.P50ms, res.P99ms, res.MaxMs)
	}
}

// A room above the large-room size: clients are notified and pull.
func TestSmokeNotifyPull(t *testing.T) {
	sf, err := sfu.New(sfu.Config{UDPIP: "127.0.0.1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sig := signaling.NewServer(sf, signaling.Config{Logger: quietLogger(), Chat: signaling.ChatOptions{LargeRoom: 2}})
	mux := http.NewServeMux()
	sig.Register(mux)
	hs := httptest.NewServer(mux)
	defer func() {
		sig.Close()
		hs.Close()
		_ = sf.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	res, err := runLoad(ctx, smokeConfig("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", tableRow(res))
	if res.Delivered == 0 || res.Delivered != res.Expected || res.Delivery != "pull" || res.Offers != 0 {
		t.Fatalf("delivered %d of %d, delivery %s, %d offers", res.Delivered, res.Expected, res.Delivery, res.Offers)
	}
}
