package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/auth"
)

const tokenTestSecret = "token-test-secret-0123456789abcdef"

// tokenEnv returns a getenv reading from m.
func tokenEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestTokenCreate(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tests := []struct {
		name     string
		args     []string
		identity string
		env      map[string]string
		key      string
		room     string
		grants   auth.Grants
		ttl      time.Duration
		display  string
	}{
		{
			name: "defaults from env", identity: "alice",
			args: []string{"create", "--room", "demo", "--identity", "alice", "--name", "Alice"},
			env:  map[string]string{"CHORUS_API_KEY": "prod", "CHORUS_API_SECRET": tokenTestSecret},
			key:  "prod", room: "demo", display: "Alice", ttl: 6 * time.Hour,
			grants: auth.Grants{Join: true, Publish: true, Subscribe: true, Data: true},
		},
		{
			name: "flags win over env", identity: "bob",
			args: []string{"create", "-room=r1", "-identity=bob", "--grants", "join,subscribe", "--ttl", "90m",
				"--api-key", "k2", "--api-secret", strings.Repeat("s", 40)},
			env: map[string]string{"CHORUS_API_KEY": "prod", "CHORUS_API_SECRET": tokenTestSecret},
			key: "k2", room: "r1", ttl: 90 * time.Minute,
			grants: auth.Grants{Join: true, Subscribe: true},
		},
		{
			name: "default key name", identity: "carol",
			args: []string{"create", "--room", "demo", "--identity", "carol", "--grants", "all"},
			env:  map[string]string{"CHORUS_API_SECRET": tokenTestSecret},
			key:  "chorus", room: "demo", ttl: 6 * time.Hour,
			grants: auth.Grants{Join: true, Publish: true, Subscribe: true, Data: true, Record: true},
		},
		{
			name: "admin without room", identity: "ops",
			args: []string{"create", "--identity", "ops", "--grants", "admin", "--ttl", "5m"},
			env:  map[string]string{"CHORUS_API_SECRET": tokenTestSecret},
			key:  "chorus", ttl: 5 * time.Minute,
			grants: auth.Grants{Admin: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runToken(tt.args, tokenEnv(tt.env), &out, clock); err != nil {
				t.Fatalf("runToken: %v", err)
			}
			s := out.String()
			if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
				t.Fatalf("output %q is not one line", s)
			}
			secret := tt.env["CHORUS_API_SECRET"]
			for i, a := range tt.args {
				if a == "--api-secret" {
					secret = tt.args[i+1]
				}
			}
			v := auth.NewVerifier(auth.Keys{tt.key: secret}, func() time.Time { return now.Add(time.Minute) })
			c, err := v.Verify(strings.TrimSuffix(s, "\n"))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Identity() != tt.identity || c.Room != tt.room || c.Name != tt.display || c.Grants != tt.grants {
				t.Errorf("claims = identity %q room %q name %q grants %+v", c.Identity(), c.Room, c.Name, c.Grants)
			}
			if c.Issuer != tt.key {
				t.Errorf("issuer = %q, want %q", c.Issuer, tt.key)
			}
			if !c.ExpiresAt.Equal(now.Add(tt.ttl)) {
				t.Errorf("expiry = %v, want %v", c.ExpiresAt, now.Add(tt.ttl))
			}
			if _, err := auth.NewVerifier(auth.Keys{tt.key: secret},
				func() time.Time { return now.Add(tt.ttl + time.Minute) }).Verify(strings.TrimSpace(s)); !errors.Is(err, auth.ErrExpired) {
				t.Errorf("after ttl: err = %v, want ErrExpired", err)
			}
		})
	}
}

func TestTokenCommandErrors(t *testing.T) {
	env := map[string]string{"CHORUS_API_SECRET": tokenTestSecret}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // substring of the error
	}{
		{"no sub-command", nil, env, "want: create"},
		{"unknown sub-command", []string{"revoke"}, env, "want: create"},
		{"missing secret", []string{"create", "--room", "r", "--identity", "a"}, nil, "--api-secret (or CHORUS_API_SECRET) is required"},
		{"weak secret", []string{"create", "--room", "r", "--identity", "a", "--api-secret", "hunter2"}, nil, "at least 32"},
		{"missing identity", []string{"create", "--room", "r"}, env, "--identity is required"},
		{"missing room", []string{"create", "--identity", "a"}, env, "--room is required"},
		{"bad grants", []string{"create", "--room", "r", "--identity", "a", "--grants", "join,teleport"}, env, `unknown grant "teleport"`},
		{"empty grants", []string{"create", "--room", "r", "--identity", "a", "--grants", ""}, env, "--grants"},
		{"bad ttl", []string{"create", "--room", "r", "--identity", "a", "--ttl", "forever"}, env, "-ttl"},
		{"zero ttl", []string{"create", "--room", "r", "--identity", "a", "--ttl", "0s"}, env, "--ttl must be positive"},
		{"negative ttl", []string{"create", "--room", "r", "--identity", "a", "--ttl", "-1h"}, env, "--ttl must be positive"},
		{"unknown flag", []string{"create", "--rooms", "r"}, env, "-rooms"},
		{"stray argument", []string{"create", "--room", "r", "--identity", "a", "extra"}, env, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := tokenCommand(tt.args, tokenEnv(tt.env), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), tokenTestSecret) {
				t.Errorf("error %q echoes the secret", err)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q on error", out.String())
			}
		})
	}
}

func TestTokenHelp(t *testing.T) {
	env := tokenEnv(map[string]string{"CHORUS_API_SECRET": tokenTestSecret})
	for _, args := range [][]string{{"-h"}, {"--help"}, {"create", "-h"}, {"create", "--room", "r", "--help"}} {
		var out bytes.Buffer
		if err := tokenCommand(args, env, &out); err != nil {
			t.Errorf("%q: err = %v", args, err)
		}
		if !strings.Contains(out.String(), "chorus token create") || !strings.Contains(out.String(), "--api-secret") {
			t.Errorf("%q: usage = %q", args, out.String())
		}
		if strings.Contains(out.String(), tokenTestSecret) {
			t.Errorf("%q: usage shows the secret", args)
		}
	}
}
