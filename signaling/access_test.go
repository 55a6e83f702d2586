package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

const (
	testKey    = "test"
	testSecret = "0123456789abcdef0123456789abcdef-test"
)

func jwtSubject(identity string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: identity} }

func testVerifier() *auth.Verifier { return auth.NewVerifier(auth.Keys{testKey: testSecret}, nil) }

// token signs claims for identity in room with the grants listed.
func token(t *testing.T, room, identity string, grants string, ttl time.Duration) string {
	t.Helper()
	g, err := auth.ParseGrants(grants)
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now()
	if ttl < 0 { // expired: issued long enough ago
		issued, ttl = issued.Add(2*ttl-time.Minute), -ttl
	}
	tok, err := auth.NewToken(testKey, testSecret, auth.Claims{Room: room, Name: identity + "-name", Grants: g,
		RegisteredClaims: jwtSubject(identity)}, ttl, issued)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// joinWith dials and joins with a token, returning the client and the
// join error.
func joinWith(t *testing.T, s *testServer, room, tok string) (*client.Client, signaling.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := client.Dial(ctx, s.url, client.Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	j, err := c.Join(ctx, room, "ignored")
	return c, j, err
}

func TestJoinNeedsAValidToken(t *testing.T) {
	s := startServer(t, signaling.Config{Auth: testVerifier()})
	forged, _ := auth.NewToken(testKey, strings.Repeat("x", 40), auth.Claims{Room: "r", Grants: auth.Grants{Join: true},
		RegisteredClaims: jwtSubject("eve")}, time.Hour, time.Now())
	for _, c := range []struct {
		name, tok, code string
	}{
		{"missing", "", signaling.CodeUnauthorized},
		{"malformed", "not.a.token", signaling.CodeUnauthorized},
		{"expired", token(t, "r", "ann", "join", -time.Minute), signaling.CodeUnauthorized},
		{"wrong signature", forged, signaling.CodeUnauthorized},
		{"wrong room", token(t, "other", "ann", "join,subscribe", time.Hour), signaling.CodeNotPermitted},
		{"no join grant", token(t, "r", "ann", "subscribe", time.Hour), signaling.CodeNotPermitted},
	} {
		_, _, err := joinWith(t, s, "r", c.tok)
		if got := errCode(err); got != c.code {
			t.Errorf("%s token: join error %v (code %q), want code %q", c.name, err, got, c.code)
		}
	}
	_, j, err := joinWith(t, s, "r", token(t, "r", "ann", "join,subscribe", time.Hour))
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if j.Identity != "ann" || j.Participant == nil || j.Participant.Name != "ann-name" ||
		j.CanPublish == nil || *j.CanPublish || j.CanSubscribe == nil || !*j.CanSubscribe {
		t.Fatalf("joined does not reflect the token: %+v", j)
	}
	if st := s.sig.Stats(); st.Rejected < 6 {
		t.Errorf("rejected counter %d, want at least 6", st.Rejected)
	}
}

// A subscribe-only token cannot publish, even with a hand-made offer that
// sends tracks.
func TestSubscribeOnlyTokenCannotPublish(t *testing.T) {
	s := startServer(t, signaling.Config{Auth: testVerifier()})
	c, _, err := joinWith(t, s, "r", token(t, "r", "viewer", "join,subscribe", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err = c.Publish(ctx, tr)
	var se *client.ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "cannot publish") {
		t.Fatalf("a subscribe-only participant published: %v", err)
	}
}

func TestParticipantAndRoomLimits(t *testing.T) {
	s := startServer(t, signaling.Config{Limits: signaling.Limits{MaxRooms: 2, MaxParticipantsPerRoom: 2}})
	a := dial(t, s, "r1", "a")
	dial(t, s, "r1", "b")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c3, err := client.Dial(ctx, s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.Join(ctx, "r1", "c"); errCode(err) != signaling.CodeLimit {
		t.Fatalf("third participant in a room of 2: %v", err)
	}
	dial(t, s, "r2", "d")
	if _, err := c3.Join(ctx, "r3", "c"); errCode(err) != signaling.CodeLimit {
		t.Fatalf("a third room with a limit of 2: %v", err)
	}
	// a place freed is taken again
	_ = a.c.Close()
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := c3.Join(ctx, "r1", "c")
		if err == nil {
			break
		}
		if errCode(err) != signaling.CodeLimit || time.Now().After(deadline) {
			t.Fatalf("join after a participant left: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval: the leave is processed by the server's goroutine
	}
}

func TestTrackLimit(t *testing.T) {
	s := startServer(t, signaling.Config{Limits: signaling.Limits{MaxTracksPerParticipant: 1}})
	m := dial(t, s, "r", "pub")
	var tracks []webrtc.TrackLocal
	for i := range 2 {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			fmt.Sprint("v", i), "s")
		if err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := m.c.Publish(ctx, tracks...); errCode(err) != signaling.CodeLimit {
		t.Fatalf("two tracks with a limit of one: %v", err)
	}
}

// A client flooding messages is told, then cut off; another client of the
// same room keeps being served.
func TestMessageFloodCutOff(t *testing.T) {
	s := startServer(t, signaling.Config{Limits: signaling.Limits{MessagesPerSecond: 20, MessageBurst: 20}})
	flooder := dial(t, s, "r", "flooder")
	calm := dial(t, s, "r", "calm")
	ping := []byte(`{"type":"ping"}`)
	for i := 0; i < 500; i++ {
		if err := flooder.c.SendRaw(ping); err != nil {
			break // cut off already
		}
	}
	select {
	case <-flooder.c.Done():
	case <-time.After(waitLimit):
		t.Fatal("the flooding client was not disconnected")
	}
	codes := map[string]int{}
	for _, e := range flooder.eventList() {
		codes[e.Code]++
	}
	if codes[signaling.CodeRateLimited] == 0 {
		t.Fatalf("the flooder was not told it was rate limited: %s", flooder.summary())
	}
	calm.sync() // still served
	if st := s.sig.Stats(); st.RateLimited == 0 {
		t.Fatal("no rate-limited messages counted")
	}
}

func TestConnectionRatePerIP(t *testing.T) {
	s := startServer(t, signaling.Config{Limits: signaling.Limits{ConnectionsPerMinute: 1, ConnectionBurst: 3}})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := 0; i < 3; i++ {
		c, err := client.Dial(ctx, s.url, client.Options{})
		if err != nil {
			t.Fatalf("connection %d refused: %v", i, err)
		}
		_ = c.Close()
	}
	_, resp, err := websocket.DefaultDialer.DialContext(ctx, s.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th connection in a burst of 3: err %v, response %v", err, resp)
	}
}

// Drain tells joined clients to reconnect and refuses new ones.
func TestDrain(t *testing.T) {
	s := startServer(t, signaling.Config{})
	m := dial(t, s, "r", "a")
	s.sig.Drain()
	m.waitFor("reconnect", func(e signaling.Message) bool { return e.Type == signaling.TypeReconnect })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, resp, err := websocket.DefaultDialer.DialContext(ctx, s.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a connection while draining: err %v, response %v", err, resp)
	}
	if !s.sig.Draining() {
		t.Fatal("Draining() false after Drain")
	}
}

// WHIP needs a token with the publish grant for the room, WHEP one with
// subscribe; the token comes as Authorization: Bearer.
func TestWHIPAndWHEPTokens(t *testing.T) {
	s := startServer(t, signaling.Config{Auth: testVerifier()})
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(s.url, "ws"), "/ws")
	post := func(path, tok string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader("v=0\r\nnot really sdp\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/sdp")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, path, tok string
		want            int
	}{
		{"WHIP without a token", "/whip/r", "", http.StatusUnauthorized},
		{"WHIP with a garbage token", "/whip/r", "garbage", http.StatusUnauthorized},
		{"WHIP with a viewer's token", "/whip/r", token(t, "r", "v", "join,subscribe", time.Hour), http.StatusForbidden},
		{"WHIP for another room", "/whip/r", token(t, "x", "p", "join,publish", time.Hour), http.StatusForbidden},
		// past the token check, the (bad) offer is what fails
		{"WHIP with a publisher's token", "/whip/r", token(t, "r", "p", "join,publish", time.Hour), http.StatusBadRequest},
		{"WHEP without a token", "/whep/r/p", "", http.StatusUnauthorized},
		{"WHEP with a publish-only token", "/whep/r/p", token(t, "r", "p", "join,publish", time.Hour), http.StatusForbidden},
		{"WHEP with a viewer's token", "/whep/r/p", token(t, "r", "v", "join,subscribe", time.Hour), http.StatusNotFound},
	} {
		if got := post(c.path, c.tok); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}

// A server without keys (LocalOnly) serves only its own machine's localhost
// pages: another site's page, a rebound host name or a proxied request is
// refused.
func TestLocalOnly(t *testing.T) {
	s := startServer(t, signaling.Config{LocalOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for name, h := range map[string]http.Header{
		"another site's page": {"Origin": {"https://evil.example"}},
		"a rebound host name": {"Host": {"evil.example"}},
		"a proxied request":   {"X-Forwarded-For": {"192.0.2.7"}},
	} {
		d := websocket.Dialer{}
		u := s.url
		if host := h.Get("Host"); host != "" {
			h.Del("Host")
			d.NetDial = nil
			u = strings.Replace(u, "127.0.0.1", "evil.example", 1)
			d.NetDialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, strings.TrimPrefix(strings.Split(s.url, "/")[2], ""))
			}
		}
		_, resp, err := d.DialContext(ctx, u, h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: err %v, response %v; want 403", name, err, resp)
		}
	}
	dial(t, s, "r", "local") // a localhost page (no Origin from Go) is served
}
