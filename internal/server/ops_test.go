package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
	"github.com/chorus-sfu/chorus/webhook"
)

const testSecret = "0123456789abcdef0123456789abcdef-server-test"

var testKeys = auth.Keys{"test": testSecret}

// testToken signs a token for identity in room with the grants listed.
func testToken(t testing.TB, room, identity, grants string) string {
	t.Helper()
	g, err := auth.ParseGrants(grants)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewToken("test", testSecret, auth.Claims{Room: room, Grants: g,
		RegisteredClaims: jwt.RegisteredClaims{Subject: identity}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends an HTTP request with an optional bearer token and returns the
// status and body.
func do(t testing.TB, method, url, tok string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// joinToken dials s and joins room with a token; events go to the returned
// channel.
func joinToken(t *testing.T, s *server.Server, room, tok string) (*client.Client, chan signaling.Message) {
	t.Helper()
	events := make(chan signaling.Message, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, wsURL(s), client.Options{Token: tok, Events: func(m signaling.Message) {
		select {
		case events <- m:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Join(ctx, room, ""); err != nil {
		t.Fatalf("join %s: %v", room, err)
	}
	return c, events
}

// The admin API lists rooms, mutes a track, removes a participant and
// closes a room; only a token with the admin grant may use it.
func TestAdminAPI(t *testing.T) {
	s := startServerWith(t, server.Config{Keys: testKeys})
	base := strings.TrimSuffix(s.URL(), "/")
	admin := testToken(t, "", "ops", "admin")
	pub := startPublisher(t, s, "adm", "pub", testToken(t, "adm", "pub", "join,publish,subscribe"))
	_, events := joinToken(t, s, "adm", testToken(t, "adm", "viewer", "join,subscribe"))

	if st, _ := do(t, "GET", base+"/api/rooms", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	if st, _ := do(t, "GET", base+"/api/rooms", testToken(t, "adm", "x", "join,publish,subscribe,record"), nil); st != http.StatusForbidden {
		t.Fatalf("token without admin: %d", st)
	}
	if st, _ := do(t, "GET", base+"/api/rooms", testToken(t, "adm", "x", "admin"), nil); st != http.StatusForbidden {
		t.Fatalf("an admin token for one room: %d", st)
	}
	var rooms []server.RoomJSON
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body := do(t, "GET", base+"/api/rooms", admin, nil)
		if st != http.StatusOK {
			t.Fatalf("list rooms: %d %s", st, body)
		}
		if err := json.Unmarshal(body, &rooms); err != nil {
			t.Fatal(err)
		}
		if len(rooms) == 1 && len(rooms[0].Participants) == 2 && tracksOf(rooms[0]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rooms: %s", body)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	var trackID, pubID string
	for _, p := range rooms[0].Participants {
		if len(p.Tracks) > 0 {
			trackID, pubID = p.Tracks[0].ID, p.ID
		}
	}
	st, _ := do(t, "POST", base+"/api/rooms/adm/tracks/"+trackID+"/mute", admin, strings.NewReader(`{"muted":true}`))
	if st != http.StatusNoContent {
		t.Fatalf("mute: %d", st)
	}
	waitEvent(t, events, "trackMuted", func(m signaling.Message) bool {
		return m.Type == signaling.TypeTrackMuted && m.Track != nil && m.Track.ID == trackID && m.Track.Muted
	})
	if st, _ := do(t, "POST", base+"/api/rooms/adm/tracks/nope/mute", admin, strings.NewReader(`{"muted":true}`)); st != http.StatusNotFound {
		t.Fatalf("mute an unknown track: %d", st)
	}
	if st, _ := do(t, "DELETE", base+"/api/rooms/adm/participants/"+pubID, admin, nil); st != http.StatusNoContent {
		t.Fatalf("remove participant: %d", st)
	}
	select {
	case <-pub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed participant's connection is still open")
	}
	if st, _ := do(t, "DELETE", base+"/api/rooms/adm", admin, nil); st != http.StatusNoContent {
		t.Fatalf("close room: %d", st)
	}
	waitEvent(t, events, "removed", func(m signaling.Message) bool {
		return m.Type == signaling.TypeError && m.Code == signaling.CodeRemoved
	})
	if st, _ := do(t, "GET", base+"/api/rooms/nope", admin, nil); st != http.StatusNotFound {
		t.Fatalf("unknown room: %d", st)
	}
}

func tracksOf(r server.RoomJSON) int {
	n := 0
	for _, p := range r.Participants {
		n += len(p.Tracks)
	}
	return n
}

func waitEvent(t *testing.T, events chan signaling.Message, what string, cond func(signaling.Message) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-events:
			if cond(m) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event", what)
		}
	}
}

// startPublisher joins room with tok and publishes a VP8 track fed with
// frames until the test ends.
func startPublisher(t *testing.T, s *server.Server, room, name, tok string) *client.Client {
	t.Helper()
	c, _ := joinToken(t, s, room, tok)
	src := videoSource(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	senders, err := c.Publish(ctx, src.Track)
	if err != nil {
		t.Fatal(err)
	}
	go src.ReadRTCP(senders[0])
	pump(t, src, 33*time.Millisecond)
	return c
}

// Webhooks arrive signed for room, participant and track events.
func TestWebhooks(t *testing.T) {
	const secret = "hook-secret"
	var mu sync.Mutex
	var got []webhook.Event
	bad := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e webhook.Event
		if err := json.Unmarshal(body, &e); err == nil {
			got = append(got, e)
		}
	}))
	defer recv.Close()
	s := startServerWith(t, server.Config{Webhooks: server.WebhookConfig{URLs: []string{recv.URL}, Secret: secret}})
	pub := startPublisher(t, s, "hooks", "pub", "")
	kinds := func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		k := map[string]bool{}
		for _, e := range got {
			if e.Room == "hooks" {
				k[e.Event] = true
			}
		}
		return k
	}
	waitFor := func(names ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			k := kinds()
			all := true
			for _, n := range names {
				all = all && k[n]
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhooks received: %v, want %v", k, names)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	waitFor(webhook.EventRoomStarted, webhook.EventParticipantJoined, webhook.EventTrackPublished)
	_ = pub.Close()
	waitFor(webhook.EventParticipantLeft, webhook.EventRoomFinished)
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d webhooks with a bad signature", bad)
	}
}

// /metrics is scraped and parsed; /healthz and /readyz answer, and readyz
// fails while draining.
func TestMetricsAndHealth(t *testing.T) {
	s := startServer(t)
	base := strings.TrimSuffix(s.URL(), "/")
	startPublisher(t, s, "m", "pub", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body := do(t, "GET", base+"/metrics", "", nil)
		if st != http.StatusOK {
			t.Fatalf("metrics: %d %s", st, body)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("parse metrics: %v", err)
		}
		value := func(name string) float64 {
			f := fams[name]
			if f == nil || len(f.Metric) == 0 {
				return -1
			}
			m := f.Metric[0]
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
			return -1
		}
		if value("chorus_rooms") == 1 && value("chorus_participants") == 1 && value("chorus_packets_in_total") > 10 &&
			value("go_goroutines") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the room and its packets: rooms %v participants %v packets %v",
				value("chorus_rooms"), value("chorus_participants"), value("chorus_packets_in_total"))
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if st, _ := do(t, "GET", base+"/healthz", "", nil); st != http.StatusOK {
		t.Fatalf("healthz: %d", st)
	}
	if st, _ := do(t, "GET", base+"/readyz", "", nil); st != http.StatusOK {
		t.Fatalf("readyz: %d", st)
	}
	s.Drain()
	if st, _ := do(t, "GET", base+"/readyz", "", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", st)
	}
	if st, _ := do(t, "GET", base+"/healthz", "", nil); st != http.StatusOK {
		t.Fatalf("healthz while draining: %d", st)
	}
}

// A client flooding signaling messages far above its rate is cut off,
// while the media of the others in its room keeps flowing.
func TestFloodingClientCutOffMediaFlows(t *testing.T) {
	s := startServerWith(t, server.Config{Limits: signaling.Limits{MessagesPerSecond: 20, MessageBurst: 40}})
	ctx := deadline(t, 20*time.Second)
	pub := newPeer(t, s, "flood", "pub", nil)
	src := videoSource(t, "pub")
	pub.publish(ctx, src)
	pump(t, src, 20*time.Millisecond)
	sub := newPeer(t, s, "flood", "sub", nil)
	sink := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	waitCount := func(n int) {
		t.Helper()
		for sink.Count() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("the subscriber got %d packets, want %d", sink.Count(), n)
			case <-time.After(20 * time.Millisecond): // polling interval
			}
		}
	}
	waitCount(10)
	flooder := newPeer(t, s, "flood", "flooder", nil)
	ping := []byte(`{"type":"ping"}`)
	for i := 0; i < 2000; i++ {
		if err := flooder.c.SendRaw(ping); err != nil {
			break
		}
	}
	select {
	case <-flooder.c.Done():
	case <-ctx.Done():
		t.Fatal("the flooding client was not cut off")
	}
	before := sink.Count()
	waitCount(before + 25) // half a second more of media
	if err := pub.c.Send(signaling.Message{Type: signaling.TypePing}); err != nil {
		t.Fatalf("the publisher's signaling connection: %v", err)
	}
}

// With a certificate and key the server speaks HTTPS (and so WSS).
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, server.Config{TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(s.URL() + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if _, err := server.Start(server.Config{Listen: "127.0.0.1:0", TLSCert: certFile, Logger: testLogger()}); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chorus test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// The admin address serves pprof, metrics and health without tokens.
func TestAdminListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startServerWith(t, server.Config{Keys: testKeys, AdminListen: addr})
	for _, path := range []string{"/debug/pprof/goroutine?debug=1", "/metrics", "/healthz"} {
		if st, body := do(t, "GET", "http://"+addr+path, "", nil); st != http.StatusOK || len(body) == 0 {
			t.Errorf("%s on the admin address: %d", path, st)
		}
	}
}

// While a room is recorded its chat goes into an archive that the
// recordings API lists and serves; chat before the recording does not.
func TestChatArchivedWhileRecorded(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	s := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir(), ClientRecording: true}})
	base := strings.TrimSuffix(s.URL(), "/")
	pub := startPublisher(t, s, "arch", "pub", "")
	_ = pub
	talker, events := joinToken(t, s, "arch", "")
	say := func(text string) {
		t.Helper()
		if err := talker.Send(signaling.Message{Type: signaling.TypeChat, Text: text}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, events, "the chat message "+text, func(m signaling.Message) bool {
			return m.Type == signaling.TypeChat && len(m.Messages) > 0 && m.Messages[len(m.Messages)-1].Text == text
		})
	}
	say("before the recording")
	if _, err := talker.StartRecording(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "the recording notice", func(m signaling.Message) bool {
		return m.Type == signaling.TypeRecording && len(m.Recorded) > 0
	})
	say("during the recording")
	if err := talker.StopRecording(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "the end of the recording", func(m signaling.Message) bool {
		return m.Type == signaling.TypeRecording && len(m.Recorded) == 0
	})
	var list struct {
		Recordings []struct {
			ID   string `json:"id"`
			Chat bool   `json:"chat"`
		} `json:"recordings"`
	}
	st, body := do(t, "GET", base+"/api/recordings", "", nil)
	if st != http.StatusOK {
		t.Fatalf("list: %d %s", st, body)
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("list %s: %v", body, err)
	}
	var archive string
	for _, r := range list.Recordings {
		if r.Chat {
			archive = r.ID
		}
	}
	if archive == "" {
		t.Fatalf("no chat archive listed: %s", body)
	}
	st, chatLog := do(t, "GET", base+"/api/recordings/"+archive+"/chat", "", nil)
	if st != http.StatusOK || !strings.Contains(string(chatLog), `"during the recording"`) ||
		strings.Contains(string(chatLog), "before the recording") || strings.Count(string(chatLog), "\n") != 1 {
		t.Fatalf("chat archive (%d): %s", st, chatLog)
	}
}
