package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz target's key, secret and clock. The seed corpus under
// testdata/fuzz/FuzzVerify holds a token signed with them that is valid
// at fuzzNow (issued 2025-03-01 12:00 UTC, valid 24 h).
const (
	fuzzKey    = "fuzz-key"
	fuzzSecret = "fuzz-secret-0123456789abcdef-0123"
)

func fuzzNow() time.Time { return time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC) }

// FuzzVerify checks that Verify never panics, fails only with one of its
// sentinels, and never accepts a token that is not an HS256 JWT carrying a
// correct HMAC-SHA256 signature under a known key.
func FuzzVerify(f *testing.F) {
	c := Claims{Room: "demo", Grants: Grants{Join: true, Publish: true}}
	c.Subject = "fuzzer"
	good, err := NewToken(fuzzKey, fuzzSecret, c, 24*time.Hour, fuzzNow().Add(-time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("")
	f.Add("a.b.c")

	v := NewVerifier(Keys{fuzzKey: fuzzSecret}, fuzzNow)
	if _, err := v.Verify(good); err != nil {
		f.Fatalf("valid seed refused: %v", err)
	}
	// Keep the checked-in "valid" seed in step with the key and clock.
	if seed, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", "valid")); err != nil ||
		!strings.Contains(string(seed), strconv.Quote(good)) {
		f.Fatalf("testdata/fuzz/FuzzVerify/valid does not hold %q (%v)", good, err)
	}
	sentinels := []error{ErrNoToken, ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrNotYetValid}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			if claims != nil {
				t.Fatalf("claims %+v returned with error %v", claims, err)
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error %q wraps no sentinel", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error %q echoes the secret", err)
			}
			return
		}
		if claims == nil || claims.Subject == "" || claims.ExpiresAt == nil {
			t.Fatalf("accepted token with claims %+v", claims)
		}
		if !claims.ExpiresAt.Add(ClockSkew).After(fuzzNow()) {
			t.Fatalf("accepted expired token (exp %v)", claims.ExpiresAt)
		}
		// Independently of the jwt library: the header must say HS256 and
		// the signature must be HMAC-SHA256 of the first two segments.
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted token with %d segments", len(parts))
		}
		header, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatalf("accepted token with undecodable header: %v", err)
		}
		var h struct {
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(header, &h); err != nil || h.Alg != "HS256" {
			t.Fatalf("accepted token with header %q", header)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted token with undecodable signature: %v", err)
		}
		m := hmac.New(sha256.New, []byte(fuzzSecret))
		m.Write([]byte(parts[0] + "." + parts[1]))
		if !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatalf("accepted token whose signature does not verify: %q", token)
		}
		again, err := v.Verify(token)
		if err != nil || again.Subject != claims.Subject || again.Room != claims.Room || again.Grants != claims.Grants {
			t.Fatalf("second Verify disagrees: %+v, %v", again, err)
		}
	})
}
