package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ClockSkew is how far the clocks of token issuer and server may disagree:
// a token is still accepted this long after it expires and this long
// before its not-before time.
const ClockSkew = 5 * time.Second

// MaxTokenLen bounds the length of a token [Verifier.Verify] will parse;
// longer input is malformed. Real tokens are a few hundred bytes.
const MaxTokenLen = 8 << 10

// alg is the only signing algorithm Chorus issues or accepts.
const alg = "HS256"

// NewToken signs claims with the API key named key and its secret. It
// sets the issuer to key, the issued-at and not-before times to now and
// the expiry to now+ttl, and names key in the "kid" header. The identity
// (c.Subject) must be set, ttl must be positive, and secret must be at
// least [MinSecretLen] bytes long.
func NewToken(key, secret string, c Claims, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case key == "":
		return "", fmt.Errorf("%w: empty name", ErrInvalidKey)
	case len(secret) < MinSecretLen:
		return "", fmt.Errorf("%w: want at least %d bytes", ErrWeakSecret, MinSecretLen)
	case c.Subject == "":
		return "", fmt.Errorf("%w: identity required", ErrInvalidClaims)
	case ttl <= 0:
		return "", fmt.Errorf("%w: lifetime must be positive", ErrInvalidClaims)
	}
	c.Issuer = key
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	t.Header["kid"] = key
	s, err := t.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// Verifier checks access tokens against a set of API keys. It is safe for
// concurrent use.
type Verifier struct {
	keys   Keys
	parser *jwt.Parser
}

// NewVerifier returns a Verifier accepting tokens signed by any of keys.
// It copies keys and ignores entries with an empty name or secret; use
// [Keys.Validate] to refuse weak secrets up front. now is the clock
// (nil: time.Now).
func NewVerifier(keys Keys, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	own := make(Keys, len(keys))
	for name, secret := range keys {
		if name != "" && secret != "" {
			own[name] = secret
		}
	}
	return &Verifier{
		keys: own,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithLeeway(ClockSkew),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// Verify checks a token and returns its claims. The token must be an
// HS256 JWT whose issuer (or "kid" header; both must agree if both are
// set) names a known API key, whose signature matches that key's secret,
// which has an expiry and a subject, and which is valid now give or take
// [ClockSkew].
//
// Errors wrap one of [ErrNoToken], [ErrMalformed], [ErrUnknownKey],
// [ErrBadSignature], [ErrExpired] or [ErrNotYetValid]; their messages are
// short and safe to show to a client.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	var keyErr error
	keyFunc := func(t *jwt.Token) (any, error) {
		secret, err := v.lookup(t)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return []byte(secret), nil
	}
	claims := &Claims{}
	t, err := v.parser.ParseWithClaims(token, claims, keyFunc)
	if err != nil {
		return nil, classify(t, keyErr, err)
	}
	if !t.Valid {
		return nil, fmt.Errorf("%w: not valid", ErrMalformed)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrMalformed)
	}
	return claims, nil
}

// lookup returns the secret of the key a parsed, not yet verified token
// names.
func (v *Verifier) lookup(t *jwt.Token) (string, error) {
	if h, _ := t.Header["alg"].(string); h != alg {
		return "", fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
	}
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || t.Method.Alg() != alg {
		return "", fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
	}
	c, ok := t.Claims.(*Claims)
	if !ok {
		return "", fmt.Errorf("%w: unexpected claims", ErrMalformed)
	}
	key := c.Issuer
	if raw, set := t.Header["kid"]; set {
		kid, ok := raw.(string)
		if !ok {
			return "", fmt.Errorf("%w: kid is not a string", ErrMalformed)
		}
		if key != "" && kid != key {
			return "", fmt.Errorf("%w: kid and iss disagree", ErrMalformed)
		}
		key = kid
	}
	if key == "" {
		return "", fmt.Errorf("%w: token names no key", ErrUnknownKey)
	}
	secret, ok := v.keys[key]
	if !ok {
		return "", ErrUnknownKey
	}
	return secret, nil
}

// classify maps a jwt parse error to one of this package's sentinels with
// a short message. t is the partially parsed token, if any, and keyErr
// the error the key function returned, if it ran and failed. The jwt
// library's own messages are dropped: they can quote the input.
func classify(t *jwt.Token, keyErr, err error) error {
	if t != nil && t.Method != nil && t.Method.Alg() != alg {
		return fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
	}
	if keyErr != nil {
		return keyErr
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: cannot decode", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Missing or unknown "alg" header.
		return fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: no expiry", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ErrNotYetValid
	}
	return fmt.Errorf("%w: invalid claims", ErrMalformed)
}
