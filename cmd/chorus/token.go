package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/chorus-sfu/chorus/auth"
)

// tokenUsage describes "chorus token".
const tokenUsage = `usage: chorus token create --identity <id> --room <room> [flags]

Sub-commands:
  create    print a signed access token

Flags of create:
  --room string        room the token is valid for (required unless --grants includes admin)
  --identity string    participant identity, the token's subject (required)
  --name string        display name
  --grants string      comma-separated grants: join, publish, subscribe, data, record,
                       admin, or all (every grant but admin) (default "join,publish,subscribe,data")
  --ttl duration       lifetime of the token (default 6h0m0s)
  --api-key string     name of the signing API key (default $CHORUS_API_KEY, else "chorus")
  --api-secret string  secret of the API key, 32 bytes or more (default $CHORUS_API_SECRET; required)
`

// tokenCommand runs "chorus token"; args are the arguments after "token".
// "create" prints a signed access token, followed by a newline, to
// stdout; getenv supplies CHORUS_API_KEY and CHORUS_API_SECRET.
func tokenCommand(args []string, getenv func(string) string, stdout io.Writer) error {
	return runToken(args, getenv, stdout, time.Now)
}

// runToken is tokenCommand with an injected clock.
func runToken(args []string, getenv func(string) string, stdout io.Writer, now func() time.Time) error {
	if len(args) == 0 {
		return errors.New("token: missing sub-command (want: create)")
	}
	switch args[0] {
	case "create":
		return createToken(args[1:], getenv, stdout, now)
	case "-h", "-help", "--help", "help":
		_, err := io.WriteString(stdout, tokenUsage)
		return err
	}
	return fmt.Errorf("token: unknown sub-command %q (want: create)", args[0])
}

// createToken runs "chorus token create".
func createToken(args []string, getenv func(string) string, stdout io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("chorus token create", flag.ContinueOnError)
	// Usage goes to stdout on -h only; errors are returned, not printed.
	fs.SetOutput(io.Discard)
	var room, identity, name, grantList, apiKey, apiSecret string
	var ttl time.Duration
	fs.StringVar(&room, "room", "", "room the token is valid for")
	fs.StringVar(&identity, "identity", "", "participant identity")
	fs.StringVar(&name, "name", "", "display name")
	fs.StringVar(&grantList, "grants", "join,publish,subscribe,data", "comma-separated grants")
	fs.DurationVar(&ttl, "ttl", 6*time.Hour, "lifetime of the token")
	// The key defaults are applied after parsing so that a secret from
	// the environment never shows up in a usage message.
	fs.StringVar(&apiKey, "api-key", "", "name of the signing API key")
	fs.StringVar(&apiSecret, "api-secret", "", "secret of the API key")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.WriteString(stdout, tokenUsage)
			return err
		}
		return fmt.Errorf("token create: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token create: unexpected argument %q", fs.Arg(0))
	}
	if apiKey == "" {
		apiKey = getenv("CHORUS_API_KEY")
	}
	if apiKey == "" {
		apiKey = "chorus"
	}
	if apiSecret == "" {
		apiSecret = getenv("CHORUS_API_SECRET")
	}

	grants, err := auth.ParseGrants(grantList)
	if err != nil {
		return fmt.Errorf("token create: --grants: %w", err)
	}
	switch {
	case identity == "":
		return errors.New("token create: --identity is required")
	case room == "" && !grants.Admin:
		return errors.New("token create: --room is required (unless --grants includes admin)")
	case ttl <= 0:
		return fmt.Errorf("token create: --ttl must be positive, got %v", ttl)
	case apiSecret == "":
		return errors.New("token create: --api-secret (or CHORUS_API_SECRET) is required")
	case len(apiSecret) < auth.MinSecretLen:
		return fmt.Errorf("token create: --api-secret: %w: %d bytes, want at least %d",
			auth.ErrWeakSecret, len(apiSecret), auth.MinSecretLen)
	}

	c := auth.Claims{Name: name, Room: room, Grants: grants}
	c.Subject = identity
	tok, err := auth.NewToken(apiKey, apiSecret, c, ttl, now())
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
