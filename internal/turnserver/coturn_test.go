package turnserver

import (
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/turnserver/turntest"
)

// Credentials made by Credentials are accepted by coturn configured with
// the same secret (use-auth-secret): a deployment can swap the embedded
// server for coturn. Runs when coturn's turnserver binary is on PATH; with
// CHORUS_E2E=1 (CI installs coturn) its absence is a failure.
func TestCoturnInterop(t *testing.T) {
	addr := turntest.StartCoturn(t, turntest.Coturn(t), testSecret)
	now := time.Now()
	user, pass := Credentials(testSecret, "alice", time.Hour, now)

	// a plain allocation first: its error is clearer than ICE's
	if _, err := allocate(t, addr, "udp", user, pass); err != nil {
		t.Fatalf("allocation at coturn: %v", err)
	}
	badUser, badPass := Credentials(testSecret, "alice", time.Hour, now.Add(-2*time.Hour))
	if _, err := allocate(t, addr, "udp", badUser, badPass); turnErrorCode(err) != stun.CodeUnauthorized {
		t.Fatalf("expired credentials at coturn: %v, want error 401", err)
	}
	checkRelayedPeerConnection(t, webrtc.ICEServer{URLs: []string{"turn:" + addr + "?transport=udp"},
		Username: user, Credential: pass})
}
