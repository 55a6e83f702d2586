package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTP headers set on every webhook request.
const (
	HeaderEvent     = "X-Chorus-Event"
	HeaderDelivery  = "X-Chorus-Delivery"
	HeaderTimestamp = "X-Chorus-Timestamp"
	HeaderSignature = "X-Chorus-Signature"
)

// signaturePrefix is the scheme prefix of the X-Chorus-Signature value.
const signaturePrefix = "sha256="

// DefaultTolerance is the timestamp tolerance Verify uses when it is given a
// tolerance of zero or less.
const DefaultTolerance = 5 * time.Minute

// Errors returned (wrapped) by Verify.
var (
	// ErrMissingHeader means the timestamp or signature header is absent.
	ErrMissingHeader = errors.New("webhook: missing header")
	// ErrBadSignature means the signature is malformed or does not match
	// the body, timestamp and secret.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrStale means the signature is valid but the timestamp is outside
	// the allowed tolerance (a possible replay, or a skewed clock).
	ErrStale = errors.New("webhook: stale timestamp")
)

// Sign returns the X-Chorus-Signature value for body sent with the given
// X-Chorus-Timestamp value: "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>" keyed with secret.
func Sign(secret string, timestamp int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received webhook request. header holds the request
// headers and body the raw, undecoded request body. It returns nil when the
// X-Chorus-Signature header is a valid HMAC-SHA256 of the timestamp and body
// under secret, and the X-Chorus-Timestamp is within tolerance of now (in
// either direction; DefaultTolerance if tolerance <= 0).
//
// Errors wrap ErrMissingHeader, ErrBadSignature or ErrStale. The signature
// is compared in constant time and checked before the timestamp, so ErrStale
// is only reported for authentic requests.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsValue := strings.TrimSpace(header.Get(HeaderTimestamp))
	if tsValue == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	}
	sigValue := strings.TrimSpace(header.Get(HeaderSignature))
	if sigValue == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}

	ts, err := strconv.ParseInt(tsValue, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp %q: %w", ErrBadSignature, tsValue, err)
	}
	hexSig, ok := strings.CutPrefix(sigValue, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: unsupported scheme, want %q", ErrBadSignature, signaturePrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: malformed hex: %w", ErrBadSignature, err)
	}
	// Sign over the header text exactly as received, so that equivalent
	// spellings of the number cannot produce a different MAC input.
	if !hmac.Equal(got, mac(secret, tsValue, body)) {
		return ErrBadSignature
	}

	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s from now (tolerance %s)", ErrStale, ts, skew.Round(time.Second), tolerance)
	}
	return nil
}
