package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/internal/turnserver"
)

// turnConfig is the embedded TURN server's configuration. Its credentials
// are derived (TURN REST style) from the secret of the first API key, or
// from a random one on an open loopback server.
func turnConfig(o options, keys auth.Keys, nat []string) (*turnserver.Config, error) {
	secret := o.apiSecret
	if secret == "" {
		for _, s := range keys {
			secret = s
			break
		}
	}
	if secret == "" {
		return nil, errors.New("--turn needs an API secret (--api-secret): TURN credentials are derived from it")
	}
	public := o.turnPublicIP
	switch {
	case public != "":
	case len(nat) > 0:
		public = nat[0]
	case o.udpIP != "":
		public = o.udpIP
	default:
		public = "127.0.0.1"
	}
	if net.ParseIP(public) == nil {
		return nil, fmt.Errorf("--turn-public-ip: %q is not an IP address", public)
	}
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(o.turnPort))
	cfg := &turnserver.Config{ListenUDP: addr, PublicIP: public, Secret: secret,
		MaxAllocationsPerUser: o.turnMaxPerUser, CredentialTTL: o.turnCredentials}
	if o.turnTCP {
		cfg.ListenTCP = addr
	}
	if o.turnRelayPorts != "" {
		lo, hi, ok := strings.Cut(o.turnRelayPorts, "-")
		min, err1 := strconv.Atoi(lo)
		max, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil || min <= 0 || max < min || max > 65535 {
			return nil, fmt.Errorf("--turn-relay-ports: %q is not a range like 50000-50999", o.turnRelayPorts)
		}
		cfg.RelayPortMin, cfg.RelayPortMax = min, max
	}
	return cfg, nil
}
