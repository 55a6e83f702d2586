package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testKey    = "test-key"
	testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes
)

// t0 is the fixed time of every test.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

func testVerifier(now time.Time) *Verifier {
	return NewVerifier(Keys{testKey: testSecret, "other": strings.Repeat("x", 40)}, clock(now))
}

func mustToken(t *testing.T, key, secret string, c Claims, ttl time.Duration, now time.Time) string {
	t.Helper()
	tok, err := NewToken(key, secret, c, ttl, now)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// handMade builds a JWT from raw header and payload JSON, signed with
// HMAC over h (nil: an empty signature).
func handMade(header, payload string, h func() hash.Hash, secret string) string {
	signing := b64(header) + "." + b64(payload)
	sig := ""
	if h != nil {
		m := hmac.New(h, []byte(secret))
		m.Write([]byte(signing))
		sig = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return signing + "." + sig
}

func TestRoundTrip(t *testing.T) {
	in := Claims{Name: "Alice A.", Room: "demo", Grants: Grants{Join: true, Publish: true, Data: true}}
	in.Subject = "alice"
	tok := mustToken(t, testKey, testSecret, in, time.Hour, t0)
	c, err := testVerifier(t0.Add(time.Minute)).Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Identity() != "alice" || c.Name != "Alice A." || c.Room != "demo" || c.Issuer != testKey {
		t.Errorf("claims = %+v", c)
	}
	if c.Grants != in.Grants {
		t.Errorf("grants = %+v, want %+v", c.Grants, in.Grants)
	}
	if !c.ExpiresAt.Equal(t0.Add(time.Hour)) || !c.NotBefore.Equal(t0) || !c.IssuedAt.Equal(t0) {
		t.Errorf("times: exp %v nbf %v iat %v", c.ExpiresAt, c.NotBefore, c.IssuedAt)
	}
	if err := c.Allow("demo", GrantJoin, GrantPublish); err != nil {
		t.Errorf("Allow: %v", err)
	}
}

func TestNewTokenErrors(t *testing.T) {
	ok := Claims{}
	ok.Subject = "bob"
	tests := []struct {
		name        string
		key, secret string
		c           Claims
		ttl         time.Duration
		want        error
	}{
		{"no identity", testKey, testSecret, Claims{}, time.Hour, ErrInvalidClaims},
		{"zero ttl", testKey, testSecret, ok, 0, ErrInvalidClaims},
		{"negative ttl", testKey, testSecret, ok, -time.Second, ErrInvalidClaims},
		{"weak secret", testKey, "w3ak-s3cret", ok, time.Hour, ErrWeakSecret},
		{"no key", "", testSecret, ok, time.Hour, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewToken(tt.key, tt.secret, tt.c, tt.ttl, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) && tt.secret != "" {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	base := Claims{Room: "demo", Grants: Grants{Join: true, Subscribe: true}}
	base.Subject = "carol"
	valid := mustToken(t, testKey, testSecret, base, time.Hour, t0)
	parts := strings.Split(valid, ".")
	now := t0.Add(10 * time.Minute)
	future := now.Add(time.Hour).Unix()
	payload := func(extra string) string {
		return `{"sub":"carol","iss":"test-key","room":"demo","grants":{"join":true},"exp":` +
			itoa(future) + extra + `}`
	}
	hs256 := `{"alg":"HS256","typ":"JWT"}`

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error // nil: accepted
	}{
		{"valid", valid, now, nil},
		{"valid at exp within leeway", valid, t0.Add(time.Hour + ClockSkew - time.Second), nil},
		{"valid before nbf within leeway", valid, t0.Add(-ClockSkew + time.Second), nil},
		{"missing", "", now, ErrNoToken},
		{"garbage", "not a token at all", now, ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], now, ErrMalformed},
		{"four parts", valid + ".x", now, ErrMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], now, ErrMalformed},
		{"bad base64 payload", parts[0] + ".%%%." + parts[2], now, ErrMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".***", now, ErrMalformed},
		{"header not JSON", b64("nope") + "." + parts[1] + "." + parts[2], now, ErrMalformed},
		{"JSON array claims", handMade(hs256, `["sub","carol"]`, sha256.New, testSecret), now, ErrMalformed},
		{"claims wrong types", handMade(hs256, `{"sub":7,"exp":"soon"}`, sha256.New, testSecret), now, ErrMalformed},
		{"too long", strings.Repeat("a", MaxTokenLen+1), now, ErrMalformed},
		{"expired", valid, t0.Add(time.Hour + ClockSkew + time.Second), ErrExpired},
		{"not yet valid", valid, t0.Add(-ClockSkew - time.Second), ErrNotYetValid},
		{"wrong signature", handMade(hs256, payload(""), sha256.New, strings.Repeat("y", 32)), now, ErrBadSignature},
		{"tampered payload", parts[0] + "." + b64(payload("")) + "." + parts[2], now, ErrBadSignature},
		{"signed by other key", mustToken(t, "other", strings.Repeat("x", 40), base, time.Hour, t0), now, nil},
		{"unknown key", mustToken(t, "stranger", testSecret, base, time.Hour, t0), now, ErrUnknownKey},
		{"no key named", handMade(hs256, `{"sub":"carol","exp":`+itoa(future)+`}`, sha256.New, testSecret), now, ErrUnknownKey},
		{"kid only", handMade(`{"alg":"HS256","kid":"test-key"}`, `{"sub":"carol","exp":`+itoa(future)+`}`, sha256.New, testSecret), now, nil},
		{"kid and iss disagree", handMade(`{"alg":"HS256","kid":"other"}`, payload(""), sha256.New, testSecret), now, ErrMalformed},
		{"kid not a string", handMade(`{"alg":"HS256","kid":1}`, payload(""), sha256.New, testSecret), now, ErrMalformed},
		{"alg none", handMade(`{"alg":"none","typ":"JWT"}`, payload(""), nil, ""), now, ErrMalformed},
		{"alg None", handMade(`{"alg":"None"}`, payload(""), nil, ""), now, ErrMalformed},
		{"no alg", handMade(`{"typ":"JWT"}`, payload(""), sha256.New, testSecret), now, ErrMalformed},
		{"alg RS256", handMade(`{"alg":"RS256"}`, payload(""), sha256.New, testSecret), now, ErrMalformed},
		{"alg HS384", handMade(`{"alg":"HS384"}`, payload(""), sha512.New384, testSecret), now, ErrMalformed},
		{"alg HS512 right secret", handMade(`{"alg":"HS512"}`, payload(""), sha512.New, testSecret), now, ErrMalformed},
		{"no exp", handMade(hs256, `{"sub":"carol","iss":"test-key"}`, sha256.New, testSecret), now, ErrMalformed},
		{"no sub", handMade(hs256, `{"iss":"test-key","exp":`+itoa(future)+`}`, sha256.New, testSecret), now, ErrMalformed},
		{"null claims", handMade(hs256, `null`, sha256.New, testSecret), now, ErrUnknownKey}, // decodes as {},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := testVerifier(tt.now).Verify(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c == nil || c.Identity() != "carol" {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c != nil {
				t.Errorf("claims returned with error: %+v", c)
			}
			msg := err.Error()
			if strings.Contains(msg, testSecret) || len(msg) > 80 {
				t.Errorf("unsafe or long message %q", msg)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestVerifierIgnoresEmptySecret(t *testing.T) {
	v := NewVerifier(Keys{"empty": ""}, clock(t0))
	tok := handMade(`{"alg":"HS256"}`, `{"sub":"a","iss":"empty","exp":`+itoa(t0.Add(time.Hour).Unix())+`}`, sha256.New, "")
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	c := Claims{Room: "r", Grants: Grants{Join: true}}
	c.Subject = "dave"
	good := mustToken(t, testKey, testSecret, c, time.Hour, t0)
	v := testVerifier(t0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				tok := good
				if i%2 == 1 {
					tok = good[:len(good)-2] + "AA"
				}
				_, err := v.Verify(tok)
				if (i%2 == 0) != (err == nil) {
					t.Errorf("goroutine %d: err = %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAllow(t *testing.T) {
	claims := func(room string, g Grants) *Claims {
		c := &Claims{Room: room, Grants: g}
		c.Subject = "erin"
		return c
	}
	subOnly := claims("demo", Grants{Join: true, Subscribe: true})
	admin := claims("", Grants{Admin: true})
	tests := []struct {
		name string
		c    *Claims
		room string
		need []Grant
		want error
	}{
		{"subscriber subscribes", subOnly, "demo", []Grant{GrantJoin, GrantSubscribe}, nil},
		{"subscriber publishes", subOnly, "demo", []Grant{GrantPublish}, ErrMissingGrant},
		{"no grants needed", subOnly, "demo", nil, nil},
		{"wrong room", subOnly, "other", []Grant{GrantJoin}, ErrWrongRoom},
		{"roomless non-admin", claims("", Grants{Join: true}), "demo", []Grant{GrantJoin}, ErrWrongRoom},
		{"roomless non-admin, empty room", claims("", Grants{Join: true}), "", nil, ErrWrongRoom},
		{"admin any room", admin, "anything", []Grant{GrantJoin, GrantPublish, GrantSubscribe, GrantData, GrantRecord, GrantAdmin}, nil},
		{"room admin other room", claims("demo", Grants{Admin: true}), "other", []Grant{GrantRecord}, ErrWrongRoom},
		{"room admin own room", claims("demo", Grants{Admin: true}), "demo", []Grant{GrantRecord}, nil},
		{"unknown grant", admin, "demo", []Grant{Grant(42)}, ErrMissingGrant},
		{"nil claims", nil, "demo", nil, ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Allow(tt.room, tt.need...)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if err := subOnly.Allow("demo", GrantPublish); err == nil || err.Error() != "missing grant: publish" {
		t.Errorf("message = %v, want \"missing grant: publish\"", err)
	}
}

func TestGrantString(t *testing.T) {
	want := map[Grant]string{GrantJoin: "join", GrantPublish: "publish", GrantSubscribe: "subscribe",
		GrantData: "data", GrantRecord: "record", GrantAdmin: "admin", 0: "grant(0)", 9: "grant(9)"}
	for g, s := range want {
		if g.String() != s {
			t.Errorf("Grant(%d).String() = %q, want %q", int(g), g.String(), s)
		}
	}
}

func TestParseGrants(t *testing.T) {
	tests := []struct {
		in      string
		want    Grants
		wantErr bool
	}{
		{"join", Grants{Join: true}, false},
		{"join,publish,subscribe,data", Grants{Join: true, Publish: true, Subscribe: true, Data: true}, false},
		{" Join , PUBLISH ", Grants{Join: true, Publish: true}, false},
		{"all", Grants{Join: true, Publish: true, Subscribe: true, Data: true, Record: true}, false},
		{"all,admin", Grants{Join: true, Publish: true, Subscribe: true, Data: true, Record: true, Admin: true}, false},
		{"admin", Grants{Admin: true}, false},
		{"record,record", Grants{Record: true}, false},
		{"join,,data", Grants{Join: true, Data: true}, false},
		{"join,fly", Grants{}, true},
		{"", Grants{}, true},
		{" , ", Grants{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseGrants(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidGrants) {
					t.Fatalf("err = %v, want ErrInvalidGrants", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseGrants(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, err := ParseGrants(got.String()); err != nil || back != got {
				t.Errorf("round trip via %q = %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestKeysValidate(t *testing.T) {
	tests := []struct {
		name string
		keys Keys
		want error
	}{
		{"none", Keys{}, nil},
		{"strong", Keys{"a": testSecret, "b": strings.Repeat("z", 64)}, nil},
		{"weak", Keys{"a": testSecret, "b": "short-secret"}, ErrWeakSecret},
		{"31 bytes", Keys{"a": testSecret[:31]}, ErrWeakSecret},
		{"empty secret", Keys{"a": ""}, ErrWeakSecret},
		{"empty name", Keys{"": testSecret}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.keys.Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "short-secret") {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		name, auth, url, want string
	}{
		{"bearer", "Bearer abc.def.ghi", "/rtc", "abc.def.ghi"},
		{"bearer lower case", "bearer tok", "/rtc", "tok"},
		{"bearer upper case extra spaces", "BEARER   tok  ", "/rtc", "tok"},
		{"header wins", "Bearer fromheader", "/rtc?access_token=fromquery", "fromheader"},
		{"basic falls back to query", "Basic dXNlcjpwdw==", "/rtc?token=q", "q"},
		{"empty bearer falls back", "Bearer ", "/rtc?access_token=q", "q"},
		{"access_token", "", "/rtc?access_token=a1", "a1"},
		{"token", "", "/rtc?token=t1", "t1"},
		{"access_token before token", "", "/rtc?token=t1&access_token=a1", "a1"},
		{"none", "", "/rtc?room=demo", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.url, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if got := FromRequest(r); got != tt.want {
				t.Errorf("FromRequest = %q, want %q", got, tt.want)
			}
		})
	}
	if FromRequest(nil) != "" {
		t.Error("FromRequest(nil) not empty")
	}
}

// BenchmarkVerify is the cost of checking one access token (every join,
// WHIP/WHEP request and API call pays it once).
func BenchmarkVerify(b *testing.B) {
	secret := strings.Repeat("s", 40)
	v := NewVerifier(Keys{"k": secret}, nil)
	c := Claims{Room: "r", Grants: Grants{Join: true, Publish: true}}
	c.Subject = "alice"
	tok, err := NewToken("k", secret, c, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
