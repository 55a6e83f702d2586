package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/chorus-sfu/chorus/internal/turnserver"
)

// turnConfig is the embedded TURN server's configuration. Its credentials
// are derived (TURN REST style) from --api-secret.
func turnConfig(o options, nat []string) (*turnserver.Config, error) {
	secret, err := secretOr("", o.apiSecret, "--turn needs --api-secret: the TURN credentials are derived from it")
	if err != nil {
		return nil, err
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
