// Package auth implements Chorus access tokens: short-lived JWTs signed
// with HMAC-SHA256 by an API key's secret. A token names a participant
// (its identity), the room it may enter and what it may do there (its
// grants).
//
// Tokens are created with [NewToken] and checked with a [Verifier]; the
// resulting [Claims] decide, with [Claims.Allow], whether an action in a
// room is permitted. Every failure is reported through an exported
// sentinel error so callers can branch with errors.Is, and every error
// message is short and safe to send back to a client.
package auth

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by this package. They are wrapped, with a short detail,
// so test them with errors.Is.
var (
	// ErrNoToken means no token was presented.
	ErrNoToken = errors.New("no access token")
	// ErrMalformed means the token is not a well-formed Chorus access
	// token: not a JWT, bad base64 or JSON, an algorithm other than HS256,
	// or a required claim is missing.
	ErrMalformed = errors.New("malformed access token")
	// ErrUnknownKey means the token names no API key this server knows.
	ErrUnknownKey = errors.New("unknown API key")
	// ErrBadSignature means the token's signature does not match.
	ErrBadSignature = errors.New("invalid token signature")
	// ErrExpired means the token's expiry time has passed.
	ErrExpired = errors.New("access token expired")
	// ErrNotYetValid means the token's not-before time is still ahead.
	ErrNotYetValid = errors.New("access token not valid yet")
	// ErrWrongRoom means the token does not grant access to the room.
	ErrWrongRoom = errors.New("token not valid for this room")
	// ErrMissingGrant means the token lacks a grant the action needs.
	ErrMissingGrant = errors.New("missing grant")
	// ErrWeakSecret means an API secret is shorter than [MinSecretLen].
	ErrWeakSecret = errors.New("API secret too short")
	// ErrInvalidGrants means a grant list could not be parsed.
	ErrInvalidGrants = errors.New("invalid grants")
	// ErrInvalidKey means an API key name is empty.
	ErrInvalidKey = errors.New("invalid API key")
	// ErrInvalidClaims means [NewToken] was given claims or a lifetime it
	// cannot sign.
	ErrInvalidClaims = errors.New("invalid token claims")
)

// MinSecretLen is the shortest API secret, in bytes, accepted for signing
// and by [Keys.Validate]: 32 bytes, the size of an HMAC-SHA256 output.
const MinSecretLen = 32

// Grant names one permission a token can carry.
type Grant int

// The grants. GrantAdmin implies every other grant.
const (
	GrantJoin      Grant = iota + 1 // enter a room
	GrantPublish                    // send audio and video
	GrantSubscribe                  // receive audio and video
	GrantData                       // send and receive data messages
	GrantRecord                     // start and stop recordings
	GrantAdmin                      // everything, in any room if the token names none
)

// grantNames lists the grants in canonical order; index i holds Grant(i+1).
func grantNames() [6]string {
	return [6]string{"join", "publish", "subscribe", "data", "record", "admin"}
}

// String returns the grant's name as used in tokens and grant lists, such
// as "publish".
func (g Grant) String() string {
	names := grantNames()
	if g >= GrantJoin && int(g) <= len(names) {
		return names[g-1]
	}
	return fmt.Sprintf("grant(%d)", int(g))
}

// Grants is the set of permissions a token carries.
type Grants struct {
	Join      bool `json:"join,omitempty"`
	Publish   bool `json:"publish,omitempty"`
	Subscribe bool `json:"subscribe,omitempty"`
	Data      bool `json:"data,omitempty"`
	Record    bool `json:"record,omitempty"`
	Admin     bool `json:"admin,omitempty"`
}

// field returns a pointer to the field holding grant g, or nil for an
// unknown grant.
func (gs *Grants) field(g Grant) *bool {
	switch g {
	case GrantJoin:
		return &gs.Join
	case GrantPublish:
		return &gs.Publish
	case GrantSubscribe:
		return &gs.Subscribe
	case GrantData:
		return &gs.Data
	case GrantRecord:
		return &gs.Record
	case GrantAdmin:
		return &gs.Admin
	}
	return nil
}

// Has reports whether the set permits g; the admin grant permits all.
func (gs Grants) Has(g Grant) bool {
	if gs.Admin {
		return g >= GrantJoin && g <= GrantAdmin
	}
	p := gs.field(g)
	return p != nil && *p
}

// String returns the grants as a comma-separated list in the form
// [ParseGrants] reads, such as "join,publish"; "" for none.
func (gs Grants) String() string {
	var names []string
	for g := GrantJoin; g <= GrantAdmin; g++ {
		if *gs.field(g) {
			names = append(names, g.String())
		}
	}
	return strings.Join(names, ",")
}

// ParseGrants reads a comma-separated list of grant names: join, publish,
// subscribe, data, record and admin, or "all" for every grant but admin.
// Names are case-insensitive and may be surrounded by spaces. An unknown
// name, or an empty list, is an error wrapping [ErrInvalidGrants].
func ParseGrants(s string) (Grants, error) {
	var gs Grants
	sawName := false
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		sawName = true
		if name == "all" {
			gs.Join, gs.Publish, gs.Subscribe, gs.Data, gs.Record = true, true, true, true, true
			continue
		}
		found := false
		for i, n := range grantNames() {
			if n == name {
				*gs.field(Grant(i + 1)) = true
				found = true
				break
			}
		}
		if !found {
			return Grants{}, fmt.Errorf("%w: unknown grant %q (want join, publish, subscribe, data, record, admin or all)",
				ErrInvalidGrants, name)
		}
	}
	if !sawName {
		return Grants{}, fmt.Errorf("%w: no grants given", ErrInvalidGrants)
	}
	return gs, nil
}

// Claims is the payload of an access token.
type Claims struct {
	// RegisteredClaims carries the standard JWT claims: Subject is the
	// participant's identity, Issuer the name of the API key that signed
	// the token, and ExpiresAt, NotBefore and IssuedAt its validity.
	jwt.RegisteredClaims
	// Name is the participant's display name.
	Name string `json:"name,omitempty"`
	// Room is the room the token is valid for. Empty means any room, but
	// only for a token with the admin grant; otherwise no room.
	Room string `json:"room,omitempty"`
	// Grants is what the holder may do in the room.
	Grants Grants `json:"grants"`
}

// Identity returns the participant's identity, the token's subject.
func (c *Claims) Identity() string {
	return c.Subject
}

// Allow reports whether the claims permit the holder to act in room with
// every one of the grants in need. It returns nil if so, an error wrapping
// [ErrWrongRoom] if the token is not valid for the room, or one wrapping
// [ErrMissingGrant] that names the first grant lacking, as in
// "missing grant: publish". A nil *Claims is [ErrNoToken].
func (c *Claims) Allow(room string, need ...Grant) error {
	if c == nil {
		return ErrNoToken
	}
	switch {
	case c.Room == "" && c.Grants.Admin:
		// An admin token naming no room is valid in every room.
	case c.Room == "" || c.Room != room:
		return ErrWrongRoom
	}
	for _, g := range need {
		if !c.Grants.Has(g) {
			return fmt.Errorf("%w: %s", ErrMissingGrant, g)
		}
	}
	return nil
}

// Keys maps API key names to their secrets.
type Keys map[string]string

// Validate checks every key: names must be non-empty ([ErrInvalidKey])
// and secrets at least [MinSecretLen] bytes long ([ErrWeakSecret]). The
// error names the key, never its secret. An empty set is valid.
func (k Keys) Validate() error {
	for _, name := range slices.Sorted(maps.Keys(k)) {
		secret := k[name]
		if name == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidKey)
		}
		if len(secret) < MinSecretLen {
			return fmt.Errorf("%w: API key %q: secret has %d bytes, want at least %d",
				ErrWeakSecret, name, len(secret), MinSecretLen)
		}
	}
	return nil
}

// FromRequest returns the access token a request presents: the one in an
// "Authorization: Bearer <token>" header (the scheme is case-insensitive),
// else the access_token or, failing that, the token query parameter.
// It returns "" if there is none.
func FromRequest(r *http.Request) string {
	if r == nil {
		return ""
	}
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if t := strings.TrimSpace(rest); t != "" {
				return t
			}
		}
	}
	if r.URL == nil {
		return ""
	}
	q := r.URL.Query()
	if t := q.Get("access_token"); t != "" {
		return t
	}
	return q.Get("token")
}
