// Package sfu holds rooms, participants, publisher tracks (up tracks) and
// subscriber tracks (down tracks), the packet cache and RTCP handling. It
// knows nothing of the signaling protocol: package signaling translates
// messages into calls of this package.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Config configures an SFU.
type Config struct {
	// UDPPort is the single UDP port all media uses (ICE UDP mux); 0 picks
	// an ephemeral port.
	UDPPort int
	// UDPIP restricts media to one local IP address (e.g. 127.0.0.1). Empty
	// means every interface, loopback included.
	UDPIP string
	// NAT1To1IPs are public addresses advertised instead of the local ones.
	NAT1To1IPs []string
	// TCPPort, if not 0, also accepts ICE over TCP (RFC 6544: passive
	// candidates, clients connect) on this port, for clients whose network
	// blocks UDP; -1 picks an ephemeral port (tests: see TCPAddr). UDPIP
	// and NAT1To1IPs apply to it as well. 0: ICE over UDP only.
	TCPPort int
	// KeyframeInterval is the minimum time between keyframe requests sent to
	// one publisher stream (default 500 ms).
	KeyframeInterval time.Duration
	// NoBandwidthAllocation turns off the per-subscriber bandwidth
	// estimate's say in layer choice (and probing): subscribers then get the
	// layer they ask for whatever their link.
	NoBandwidthAllocation bool
	// PublisherFEC accepts video RED and ULPFEC in publisher answers: a
	// publisher that offers them (browsers do) may then protect its video
	// with FEC, which the SFU decodes (upfec.go). Off by default: Chromium
	// sends FEC only from a 20 ms round trip up, and with FEC negotiated it
	// lowers its encoder rate by what it spends on protection; behind a
	// lossy loopback link it decoded fewer frames with it (docs/benchmarks.md).
	PublisherFEC bool
	// PreferFlexFEC protects subscribers' video with FlexFEC when they
	// negotiated both it and ULPFEC in RED (Chromium does); by default
	// ULPFEC, which decoded as many or more frames in Chromium under loss
	// (docs/benchmarks.md). A subscriber that negotiated only one gets it
	// (FlexFEC only when pion gave the track a FEC stream).
	PreferFlexFEC bool
	// OnRoomCreated, if set, is called when a room is created (with the
	// room directory locked: it must not block or look rooms up).
	OnRoomCreated func(*Room)
	// Net, if set, is the network media runs on instead of the host's: the
	// ICE UDP mux listens on its interfaces and every PeerConnection uses it
	// (e.g. a pion vnet.Net for in-process tests with shaped links).
	// UDPIP and UDPPort apply to its addresses.
	Net transport.Net
	// Data bounds app data on data channels.
	Data   DataLimits
	Logger *slog.Logger
}

// SFU is the media server: a directory of rooms and the WebRTC API that
// creates every PeerConnection with one configuration.
type SFU struct {
	cfg    Config
	log    *slog.Logger
	api    *webrtc.API
	mux    *ice.MultiUDPMuxDefault
	tcpMux ice.TCPMux // nil: ICE over TCP off
	tcpLn  net.Listener
	codecs []webrtc.RTPCodecParameters
	rooms  RoomDirectory
	taps   *tapFactory

	data dataCounters // app data, server-wide

	mu     sync.Mutex
	closed bool
}

// New creates an SFU and opens its UDP port.
func New(cfg Config) (*SFU, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KeyframeInterval == 0 {
		cfg.KeyframeInterval = 500 * time.Millisecond
	}
	s := &SFU{cfg: cfg, log: cfg.Logger}
	s.rooms = newLocalRooms(s)

	me := &webrtc.MediaEngine{}
	s.codecs = supportedCodecs()
	for _, c := range s.codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(c, kind); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	// mid, rid and repaired-rid header extensions: receiving simulcast
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("simulcast extensions: %w", err)
	}
	ir := &interceptor.Registry{}
	// No NACK interceptors: the SFU NACKs publishers from each up track's
	// reader (nackgen.go), which sees repaired packets, and answers
	// subscribers' NACKs itself from the publisher's cache.
	if err := addReports(ir); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, fmt.Errorf("twcc: %w", err)
	}
	// Subscriber connections: transport-wide sequence numbers on what the
	// SFU sends (the header interceptor, added last, runs first on the way
	// out) and the tap behind it that feeds the bandwidth estimator.
	s.taps = &tapFactory{}
	ir.Add(s.taps)
	twccExt, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc header extension: %w", err)
	}
	ir.Add(twccExt)

	filter := func(ip net.IP) bool { return true }
	if cfg.UDPIP != "" {
		want := net.ParseIP(cfg.UDPIP)
		if want == nil {
			return nil, fmt.Errorf("sfu: bad UDP IP %q", cfg.UDPIP)
		}
		filter = func(ip net.IP) bool { return ip.Equal(want) }
	}
	muxOpts := []ice.UDPMuxFromPortOption{
		ice.UDPMuxFromPortWithLoopback(),
		ice.UDPMuxFromPortWithIPFilter(filter),
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4),
	}
	if cfg.Net != nil {
		muxOpts = append(muxOpts, ice.UDPMuxFromPortWithNet(cfg.Net))
	}
	mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, muxOpts...)
	if err != nil {
		return nil, fmt.Errorf("sfu: open UDP port %d: %w", cfg.UDPPort, err)
	}
	s.mux = mux

	var se webrtc.SettingEngine
	cfg.Data = cfg.Data.withDefaults()
	s.cfg.Data = cfg.Data
	// what clients may send in one data message (browsers refuse larger
	// ones locally)
	se.SetSCTPMaxMessageSize(uint32(cfg.Data.MaxMessage))
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	se.SetICEUDPMux(mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(filter)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if cfg.TCPPort != 0 {
		if err := s.listenTCP(); err != nil {
			_ = mux.Close()
			return nil, err
		}
		se.SetICETCPMux(s.tcpMux)
		// passive only: the SFU never dials the addresses clients send
		se.DisableActiveTCP(true)
		networks = append(networks, webrtc.NetworkTypeTCP4)
	}
	se.SetNetworkTypes(networks)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if ip := net.ParseIP(cfg.UDPIP); ip != nil && ip.IsLoopback() {
		// A loopback-bound server cannot reach other addresses: ignore them.
		se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se))
	return s, nil
}

// supportedCodecs are the codecs Chorus negotiates, in order of preference.
func supportedCodecs() []webrtc.RTPCodecParameters {
	videoFB := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	v := func(pt webrtc.PayloadType, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFB}}
	}
	// retransmissions on their own stream (RFC 4588), as browsers expect
	rtx := func(pt, apt webrtc.PayloadType) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", apt)}}
	}
	// Audio NACK: a publisher that offers it (the web client does) has its
	// lost audio packets asked for again, on top of its RED; browsers do
	// not offer it by themselves, and then it is not used.
	audioFB := []webrtc.RTCPFeedback{{Type: "nack"}}
	return []webrtc.RTPCodecParameters{
		{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: MimeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: audioFB}},
		{PayloadType: 63, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: MimeRED, ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111", RTCPFeedback: audioFB}},
		v(96, MimeVP8, ""),
		rtx(97, 96),
		v(98, MimeVP9, "profile-id=0"),
		rtx(99, 98),
		v(102, MimeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		rtx(103, 102),
		v(104, MimeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
		rtx(105, 104),
		// video FEC, from publishers and toward subscribers: ULPFEC inside
		// RED, and retransmissions of RED-wrapped packets
		// (NACK feedback for RED too: a publisher that binds its NACK
		// responder to the codec it sends, as pion does, answers NACKs then)
		{PayloadType: 116, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeVideoRED, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}},
		{PayloadType: 117, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeULPFEC, ClockRate: 90000}},
		rtx(118, 116),
		// FlexFEC-03 toward subscribers that negotiate it (videofec.go);
		// never accepted from publishers (pubcodecs.go)
		{PayloadType: 119, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeFlexFEC03, ClockRate: 90000,
			SDPFmtpLine: flexFECRepairW}},
	}
}

// codecPreferences orders the server's codecs of a track's kind with those
// that can carry the publisher's codec first. Every codec stays listed: pion
// only offers, in later renegotiations, codecs that an earlier answer
// accepted, so restricting a first m-line to VP8 would make a later VP9 or
// H264 track impossible to offer on the same connection.
func (s *SFU) codecPreferences(c webrtc.RTPCodecParameters) []webrtc.RTPCodecParameters {
	var first, rest []webrtc.RTPCodecParameters
	audio := strings.HasPrefix(strings.ToLower(c.MimeType), "audio/")
	for _, sc := range s.codecs {
		if strings.HasPrefix(strings.ToLower(sc.MimeType), "audio/") != audio {
			continue
		}
		if codecCarries(sc, c) {
			first = append(first, sc)
		} else {
			rest = append(rest, sc)
		}
	}
	return append(first, rest...)
}

// codecCarries reports whether negotiated codec n can carry packets of the
// publisher's codec c: unchanged, or Opus and RED converted into each other.
func codecCarries(n, c webrtc.RTPCodecParameters) bool {
	if isAudioPair(n.MimeType, c.MimeType) {
		return true // converted by the down track (RED built or unwrapped)
	}
	if !strings.EqualFold(n.MimeType, c.MimeType) {
		return false
	}
	return !strings.EqualFold(c.MimeType, MimeH264) || h264Compatible(n.SDPFmtpLine, c.SDPFmtpLine)
}

// LocalAddrs are the UDP addresses media is received on.
func (s *SFU) LocalAddrs() []net.Addr { return s.mux.GetListenAddresses() }

// Rooms is the room directory.
func (s *SFU) Rooms() RoomDirectory { return s.rooms }

// JoinOptions describe a new participant.
type JoinOptions struct {
	Name     string
	Listener Listener
	// Publish allows the participant to send media (a publisher PeerConnection).
	Publish bool
	// Subscribe gives the participant a subscriber PeerConnection.
	Subscribe bool
	// AutoSubscribe subscribes to every other participant's tracks, now and
	// as they are published, renegotiating as needed. Without it, tracks are
	// attached only by HandleSubscriberOffer (WHEP).
	AutoSubscribe bool
	// OnJoined, if set, is called with the room's state at the moment of
	// joining, before any event about later changes reaches Listener. It
	// must not block.
	OnJoined func(self ParticipantInfo, others []ParticipantInfo)
	// Data opens app data channels on the subscriber connection (it needs
	// Subscribe); DataSend lets the participant send on them, not only
	// receive.
	Data, DataSend bool
}

// Join adds a participant to a room, creating the room if needed.
func (s *SFU) Join(room string, o JoinOptions) (*Participant, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if o.Listener == nil {
		o.Listener = NopListener{}
	}
	for {
		r := s.rooms.GetOrCreate(room)
		p := newParticipant(s, r, o)
		if p.wantsData {
			if err := p.prepareData(o.DataSend, s.cfg.Data); err != nil {
				p.closeUnjoined()
				return nil, err
			}
		}
		err := r.addParticipant(p)
		if err == nil {
			p.start()
			return p, nil
		}
		p.closeUnjoined()
		if err != ErrRoomClosed {
			return nil, err
		}
		// the room closed between lookup and join: create a fresh one
	}
}

// Close closes every room and the UDP port.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	for _, r := range s.rooms.List() {
		r.Close()
	}
	err := s.mux.Close()
	if s.tcpMux != nil {
		err = errors.Join(err, s.tcpMux.Close()) // closes the listener too
	}
	return err
}

// listenTCP opens the ICE-TCP port (on UDPIP when set; IPv4, like the UDP
// mux) and the mux that hands its connections to PeerConnections.
func (s *SFU) listenTCP() error {
	port := s.cfg.TCPPort
	if port < 0 {
		port = 0
	}
	addr := &net.TCPAddr{Port: port}
	if s.cfg.UDPIP != "" {
		addr.IP = net.ParseIP(s.cfg.UDPIP) // checked by New
	}
	var ln net.Listener
	var err error
	if s.cfg.Net != nil {
		ln, err = s.cfg.Net.ListenTCP("tcp4", addr)
	} else {
		ln, err = net.ListenTCP("tcp4", addr)
	}
	if err != nil {
		return fmt.Errorf("sfu: open ICE-TCP port %d: %w", port, err)
	}
	s.tcpLn = ln
	// 64 packets of read buffer per connection: a full buffer pauses
	// reading (TCP backpressure) rather than dropping
	s.tcpMux = webrtc.NewICETCPMux(logging.NewDefaultLoggerFactory().NewLogger("ice-tcp"), ln, 64)
	s.log.Info("ICE over TCP", "addr", ln.Addr())
	return nil
}

// TCPAddr is the ICE-TCP listening address; nil when ICE over TCP is off.
func (s *SFU) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}
