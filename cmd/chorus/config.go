package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chorus-sfu/chorus/chat"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
)

// Settings come from, in increasing precedence: the built-in defaults, a
// YAML file (--config or CHORUS_CONFIG; its keys are the flag names), the
// environment (CHORUS_<FLAG_NAME>, dashes as underscores) and the command
// line. docs/configuration.md lists every setting.

type options struct {
	config   string
	listen   string
	tlsCert  string
	tlsKey   string
	udpPort  int
	udpIP    string
	tcpPort  int
	nat1to1  string
	logLevel string
	bwe      bool
	pubFEC   bool
	flexFEC  bool

	apiKey    string
	apiSecret string
	keys      string

	adminListen  string
	drainTimeout time.Duration

	turn            bool
	turnPort        int
	turnPublicIP    string
	turnRelayPorts  string
	turnMaxPerUser  int
	turnTCP         bool
	turnCredentials time.Duration
	turnURLs        string
	turnSecret      string

	recDir          string
	recMaxAge       time.Duration
	recMaxBytes     int64
	autoRecord      string
	clientRecording string

	webhookURLs   string
	webhookSecret string

	limits signaling.Limits
	chat   signaling.ChatOptions
	data   sfu.DataLimits
}

// newFlagSet defines every setting with its built-in default.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("chorus", flag.ContinueOnError)
	d := signaling.DefaultLimits()
	fs.StringVar(&o.config, "config", "", "YAML file with settings (keys are these flag names)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7880", "HTTP and WebSocket address")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM): serve HTTPS and WSS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.IntVar(&o.udpPort, "udp-port", 7882, "the single UDP port for all media")
	fs.StringVar(&o.udpIP, "udp-ip", "", "restrict media to this local IP (default: every interface, loopback included)")
	fs.IntVar(&o.tcpPort, "tcp-port", 0, "ICE over TCP fallback port for clients that cannot use UDP; 0: off")
	fs.StringVar(&o.nat1to1, "nat-1to1-ips", "", "comma-separated public IPs advertised for media (1:1 NAT)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.bwe, "bwe", true, "limit each subscriber's simulcast layers to its estimated bandwidth")
	fs.BoolVar(&o.pubFEC, "publisher-fec", false, "let publishers protect their video with FEC (RED+ULPFEC), which the server decodes")
	fs.BoolVar(&o.flexFEC, "prefer-flexfec", false, "protect subscribers' video with FlexFEC rather than ULPFEC when they support both")
	fs.StringVar(&o.apiKey, "api-key", "chorus", "name of the API key whose secret is --api-secret")
	fs.StringVar(&o.apiSecret, "api-secret", "", "secret (32 bytes or more) that signs access tokens; without keys the server only runs on loopback")
	fs.StringVar(&o.keys, "keys", "", "more API keys as comma-separated name:secret pairs (YAML: a map)")
	fs.StringVar(&o.adminListen, "admin-listen", "", "address for pprof, metrics and health without tokens (e.g. 127.0.0.1:7883; keep it private); empty: off")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long clients get to move before the server closes")
	fs.BoolVar(&o.turn, "turn", false, "run the embedded TURN server")
	fs.IntVar(&o.turnPort, "turn-port", 3478, "embedded TURN server port (UDP, and TCP with --turn-tcp)")
	fs.StringVar(&o.turnPublicIP, "turn-public-ip", "", "relay address the TURN server advertises (default: the first --nat-1to1-ips, else --udp-ip, else 127.0.0.1)")
	fs.StringVar(&o.turnRelayPorts, "turn-relay-ports", "", "relay port range, e.g. 50000-50999; empty: any")
	fs.IntVar(&o.turnMaxPerUser, "turn-max-allocations", 5, "TURN allocations one identity may hold")
	fs.BoolVar(&o.turnTCP, "turn-tcp", false, "also accept TURN over TCP on --turn-port")
	fs.DurationVar(&o.turnCredentials, "turn-credential-ttl", 12*time.Hour, "lifetime of the TURN credentials handed to clients")
	fs.StringVar(&o.turnURLs, "turn-urls", "", "external TURN servers for clients (e.g. coturn with use-auth-secret), comma-separated turn: URLs")
	fs.StringVar(&o.turnSecret, "turn-secret", "", "shared secret of the external TURN servers (default: --api-secret)")
	fs.StringVar(&o.recDir, "recordings-dir", "recordings", "folder for server-side recordings; empty: recording off")
	fs.DurationVar(&o.recMaxAge, "recordings-max-age", 0, "delete finished recordings older than this, e.g. 720h; 0: keep")
	fs.Int64Var(&o.recMaxBytes, "recordings-max-bytes", 0, "delete the oldest finished recordings while the folder holds more bytes; 0: no limit")
	fs.StringVar(&o.autoRecord, "auto-record", "", "comma-separated rooms recorded from their start; * for every room")
	fs.StringVar(&o.clientRecording, "client-recording", "auto",
		"let participants whose token has the record grant (everyone without keys) start and stop recordings: auto or true, or false")
	fs.StringVar(&o.webhookURLs, "webhook-urls", "", "comma-separated URLs that receive signed event webhooks")
	fs.StringVar(&o.webhookSecret, "webhook-secret", "", "HMAC secret of the webhooks (default: --api-secret)")
	fs.IntVar(&o.limits.MaxRooms, "max-rooms", d.MaxRooms, "open rooms at most; 0: no limit")
	fs.IntVar(&o.limits.MaxParticipantsPerRoom, "max-participants", d.MaxParticipantsPerRoom, "participants per room at most; 0: no limit")
	fs.IntVar(&o.limits.MaxTracksPerParticipant, "max-tracks", d.MaxTracksPerParticipant, "tracks one participant may publish; 0: no limit")
	fs.Float64Var(&o.limits.MessagesPerSecond, "message-rate", d.MessagesPerSecond, "signaling messages per second per connection; 0: no limit")
	fs.IntVar(&o.limits.MessageBurst, "message-burst", d.MessageBurst, "signaling messages a connection may send at once above the rate")
	fs.Float64Var(&o.limits.ConnectionsPerMinute, "connection-rate", d.ConnectionsPerMinute, "new connections (WebSocket, WHIP, WHEP) per minute per client IP; 0: no limit")
	fs.IntVar(&o.limits.ConnectionBurst, "connection-burst", d.ConnectionBurst, "new connections a client IP may open at once above the rate")
	fs.IntVar(&o.chat.HistorySize, "chat-history", chat.DefaultHistorySize, "chat messages each room keeps for late joiners")
	fs.IntVar(&o.chat.LargeRoom, "chat-large-room", chat.DefaultLargeRoom, "room size above which clients are notified of new chat messages and pull them instead of receiving pushes")
	fs.Float64Var(&o.chat.PerSenderRate, "chat-rate", chat.DefaultPerSenderRate, "chat messages and reactions per second one participant may send")
	fs.IntVar(&o.data.MaxMessage, "data-max-message", sfu.DefaultDataMaxMessage, fmt.Sprintf("largest app data message in bytes, header included (at most %d)", sfu.MaxDataMessage))
	fs.Float64Var(&o.data.MessagesPerSecond, "data-rate", sfu.DefaultDataRate, "app data messages per second one participant may send")
	fs.Float64Var(&o.data.BytesPerSecond, "data-byte-rate", sfu.DefaultDataByteRate, "app data bytes per second one participant may send")
	fs.Float64Var(&o.data.ReceiveBytesPerSecond, "data-receive-rate", sfu.DefaultDataReceiveByteRate, "app data bytes per second one participant may receive from everyone together")
	return fs
}

// parseFlags loads the settings: defaults, then the YAML file, then the
// environment, then args.
func parseFlags(args []string, getenv func(string) string) (options, error) {
	return loadOptions(args, getenv, os.ReadFile)
}

func loadOptions(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (options, error) {
	var o options
	fs := newFlagSet(&o)
	fs.SetOutput(os.Stderr)
	path := configPath(args, getenv)
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return o, fmt.Errorf("config: %w", err)
		}
		if err := applyYAML(fs, data); err != nil {
			return o, fmt.Errorf("config %s: %w", path, err)
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "CHORUS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.validate()
}

// validate refuses settings that cannot work.
func (o options) validate() error {
	if o.data.MaxMessage < 64 || o.data.MaxMessage > sfu.MaxDataMessage {
		return fmt.Errorf("--data-max-message %d: must be between 64 and %d", o.data.MaxMessage, sfu.MaxDataMessage)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"data-rate", o.data.MessagesPerSecond}, {"data-byte-rate", o.data.BytesPerSecond},
		{"data-receive-rate", o.data.ReceiveBytesPerSecond}, {"chat-rate", o.chat.PerSenderRate}} {
		if r.v <= 0 {
			return fmt.Errorf("--%s %g: must be above 0", r.name, r.v)
		}
	}
	if o.chat.HistorySize < 1 || o.chat.LargeRoom < 1 {
		return fmt.Errorf("--chat-history and --chat-large-room must be at least 1")
	}
	return nil
}

// configPath finds --config in args (before parsing: the file's values
// must be in place first) or CHORUS_CONFIG.
func configPath(args []string, getenv func(string) string) string {
	path := getenv("CHORUS_CONFIG")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			path = val
		} else if i+1 < len(args) {
			path = args[i+1]
			i++
		}
	}
	return path
}

// applyYAML sets flags from a YAML mapping whose keys are flag names.
// Lists become comma-separated values, and a mapping (keys) name:value
// pairs.
func applyYAML(fs *flag.FlagSet, data []byte) error {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return err
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "config" {
			return errors.New("a config file cannot name another one")
		}
		if fs.Lookup(k) == nil {
			return fmt.Errorf("unknown setting %q (settings are the flag names, see chorus -h)", k)
		}
		v, err := yamlValue(m[k])
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func yamlValue(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := yamlValue(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(x))
		for _, k := range keys {
			s, err := yamlValue(x[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, k+":"+s)
		}
		return strings.Join(parts, ","), nil
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	default:
		return "", fmt.Errorf("unsupported value %v", v)
	}
}
