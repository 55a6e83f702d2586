package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/internal/server"
)

// The web client joins with ?token= alone (room and name come from the
// token); without a token a server with keys refuses it, and the page says
// so.
func TestBrowserToken(t *testing.T) {
	const secret = "browser-test-secret-0123456789abcdef"
	w := newTestWriter(t)
	s := startServerWith(t, w, server.Config{Keys: auth.Keys{"k": secret}})
	tok, err := auth.NewToken("k", secret, auth.Claims{Room: "tok", Name: "Alice",
		Grants:           auth.Grants{Join: true, Publish: true, Subscribe: true},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w)
	ta, tb := b.newTab("a"), b.newTab("b")
	ta.navigate(s.URL() + "?token=" + tok)
	st := ta.waitFor(mediaDeadline, "a to join with its token", func(s pageState) bool {
		return s.State == "joined" && s.ParticipantID != ""
	})
	if !strings.Contains(st.URL, "room=tok") || !strings.Contains(st.URL, "token=") {
		t.Errorf("a's address %s does not rejoin the token's room with the token", st.URL)
	}
	tb.navigate(roomURL(s, "tok", "mallory"))
	sb := tb.waitFor(uiDeadline, "b to be refused", func(s pageState) bool { return s.Banner != "" })
	if !strings.Contains(sb.Banner, "unauthorized") || sb.State == "joined" {
		t.Errorf("b without a token: state %q, banner %q", sb.State, sb.Banner)
	}
}
