package server_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// Helpers of BenchmarkLossResilience (loss_bench_test.go): an in-process
// network with one lossy leg, a multi-packet VP8 source, and a model of the
// subscriber's video decoder that turns packet arrivals into decoded frames,
// keyframe requests and freezes.

// Addresses of the benchmark's network.
const (
	lrCIDR  = "10.0.0.0/24"
	lrSFUIP = "10.0.0.1"
	lrPubIP = "10.0.0.2"
	lrSubIP = "10.0.0.3" // the subscriber under test
	lrRefIP = "10.0.0.4" // the reference subscriber: lossless, no RED, no FEC
)

// lrOneWay is the one-way delay of every hop (the vnet router's minimum
// delay): 50 ms round trips on both legs, 50 ms publisher to subscriber.
const lrOneWay = 25 * time.Millisecond

// lrLeg is a direction of one link, by the addresses of its ends.
type lrLeg struct{ src, dst string }

// lrKey names one RTP stream on one direction of a link.
type lrKey struct {
	lrLeg
	ssrc uint32
}

// lrChunk is one RTP packet the router carried (or dropped).
type lrChunk struct {
	seq     uint16
	at      time.Time
	size    int // UDP payload: the SRTP packet
	dropped bool
}

// lrNet is the benchmark's network: one vnet router that delays every
// packet by lrOneWay and drops RTP and RTCP packets on one leg at random
// with a seeded generator. STUN and DTLS are never dropped, so that ICE
// consent and the handshake survive any loss: the loss is a media-plane
// loss. Every RTP packet routed is logged (time, size, dropped) per stream,
// before the drop, so that what each end sent can be counted.
type lrNet struct {
	router *vnet.Router
	nets   map[string]*vnet.Net
	lossy  lrLeg
	rate   float64

	mu   sync.Mutex
	seed uint64
	rng  *rand.Rand            // RTCP, and RTP of streams not named by seedStream
	rngs map[uint32]*rand.Rand // per named RTP stream (SSRC) on the lossy leg
	log  map[lrKey][]lrChunk
}

func newLRNet(tb testing.TB, lossy lrLeg, rate float64, seed uint64) *lrNet {
	tb.Helper()
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lrCIDR, MinDelay: lrOneWay,
		LoggerFactory: quietLoggerFactory()})
	if err != nil {
		tb.Fatal(err)
	}
	n := &lrNet{router: router, nets: map[string]*vnet.Net{}, lossy: lossy, rate: rate, seed: seed,
		rng: rand.New(rand.NewPCG(seed, 0x1055)), rngs: map[uint32]*rand.Rand{}, log: map[lrKey][]lrChunk{}}
	for _, ip := range []string{lrSFUIP, lrPubIP, lrSubIP, lrRefIP} {
		vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := router.AddNet(vn); err != nil {
			tb.Fatal(err)
		}
		n.nets[ip] = vn
	}
	router.AddChunkFilter(n.filter)
	if err := router.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = router.Stop() })
	return n
}

// filter is the router's chunk filter (called by its one goroutine, after
// the delay): it logs RTP packets and drops RTP and RTCP on the lossy leg.
func (n *lrNet) filter(c vnet.Chunk) bool {
	if c.Network() != "udp" {
		return true
	}
	b := c.UserData()
	if len(b) < 12 || b[0]>>6 != 2 { // STUN (0-3) and DTLS (20-63) pass
		return true
	}
	src, _, err1 := net.SplitHostPort(c.SourceAddr().String())
	dst, _, err2 := net.SplitHostPort(c.DestinationAddr().String())
	if err1 != nil || err2 != nil {
		return true
	}
	leg := lrLeg{src, dst}
	isRTCP := b[1] >= 192 && b[1] <= 223 // RFC 5761
	n.mu.Lock()
	defer n.mu.Unlock()
	if leg != n.lossy || n.rate == 0 {
		if !isRTCP {
			k := lrKey{leg, binary.BigEndian.Uint32(b[8:12])}
			n.log[k] = append(n.log[k], lrChunk{seq: binary.BigEndian.Uint16(b[2:4]), at: time.Now(), size: len(b)})
		}
		return true
	}
	rng := n.rng
	if r, ok := n.rngs[binary.BigEndian.Uint32(b[8:12])]; ok && !isRTCP {
		rng = r
	}
	drop := rng.Float64() < n.rate
	if !isRTCP {
		k := lrKey{leg, binary.BigEndian.Uint32(b[8:12])}
		n.log[k] = append(n.log[k], lrChunk{seq: binary.BigEndian.Uint16(b[2:4]), at: time.Now(), size: len(b), dropped: drop})
	}
	return !drop
}

// seedStream gives the RTP stream ssrc its own loss sequence, number
// stream of the network's seed: its losses then depend on its own packets
// only, not on how they interleave with other streams'.
func (n *lrNet) seedStream(ssrc uint32, stream uint64) {
	if ssrc == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rngs[ssrc] = rand.New(rand.NewPCG(n.seed, stream))
}

// count sums the RTP packets and bytes of the streams ssrcs on leg that the
// router handled in [from, to), and how many of them it dropped.
func (n *lrNet) count(leg lrLeg, from, to time.Time, ssrcs ...uint32) (pkts, bytes, dropped int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range ssrcs {
		if s == 0 {
			continue
		}
		for _, c := range n.log[lrKey{leg, s}] {
			if c.at.Before(from) || !c.at.Before(to) {
				continue
			}
			pkts++
			bytes += c.size
			if c.dropped {
				dropped++
			}
		}
	}
	return pkts, bytes, dropped
}

// duplicates counts the RTP packets of stream ssrc on leg in [from, to)
// that repeat a sequence number already carried (retransmissions, or copies
// forwarded twice), and the packets in all.
func (n *lrNet) duplicates(leg lrLeg, ssrc uint32, from, to time.Time) (dups, pkts int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := map[uint16]bool{}
	for _, c := range n.log[lrKey{leg, ssrc}] {
		if c.at.Before(to) && seen[c.seq] && !c.at.Before(from) {
			dups++
		}
		if !c.at.Before(from) && c.at.Before(to) {
			pkts++
		}
		seen[c.seq] = true
	}
	return dups, pkts
}

// api returns a client API whose PeerConnections live on the vnet address
// ip, with the codecs codecs registers, the interceptors first (ahead of the
// others) and pion's default interceptors (NACK generator and responder,
// receiver and sender reports every second, TWCC feedback).
func (n *lrNet) api(tb testing.TB, ip string, codecs func(*webrtc.MediaEngine) error, first ...interceptor.Factory) *webrtc.API {
	tb.Helper()
	vn := n.nets[ip]
	want := net.ParseIP(ip)
	api, err := client.NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, se *webrtc.SettingEngine) error {
		if err := codecs(me); err != nil {
			return err
		}
		for _, f := range first {
			ir.Add(f)
		}
		se.SetNet(vn)
		se.LoggerFactory = quietLoggerFactory()
		se.SetIncludeLoopbackCandidate(false)
		se.SetIPFilter(func(a net.IP) bool { return a.Equal(want) })
		// the network never partitions: only give up on a dead peer late
		se.SetICETimeouts(10*time.Second, 20*time.Second, 500*time.Millisecond)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return api
}

// lrPlainCodecs are pion's defaults: Opus without RED, VP8 with RTX,
// no video RED or FEC.
func lrPlainCodecs(me *webrtc.MediaEngine) error { return me.RegisterDefaultCodecs() }

// lrREDPublisherCodecs add audio/red to pion's defaults, as a browser
// offers it, and NACK for audio, as the web client offers it.
func lrREDPublisherCodecs(me *webrtc.MediaEngine) error {
	if err := me.RegisterDefaultCodecs(); err != nil {
		return err
	}
	nack := []webrtc.RTCPFeedback{{Type: "nack"}}
	for _, c := range []webrtc.RTPCodecParameters{
		{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000,
			Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: nack}},
		{PayloadType: 63, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mediatest.MimeRED, ClockRate: 48000,
			Channels: 2, SDPFmtpLine: "111/111", RTCPFeedback: nack}},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	return nil
}

// lrBrowserSubscriberCodecs are what a browser accepts for receiving: Opus
// and audio RED, VP8 with NACK, PLI and TWCC, video RED and ULPFEC, and RTX
// when rtx is set. Without RTX, retransmissions come on the media stream
// under their own sequence numbers, and a spurious one (the packet arrived
// meanwhile) is dropped by SRTP as a replay, which the subscriber's TWCC
// feedback then reports as a loss; with RTX, pion's NACK generator would ask
// for RTX-repaired packets again and again (it does not see them), so RTX
// goes with lrNacker only.
func lrBrowserSubscriberCodecs(rtx bool) func(*webrtc.MediaEngine) error {
	return func(me *webrtc.MediaEngine) error {
		fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}
		for _, c := range []webrtc.RTPCodecParameters{
			{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}},
			{PayloadType: 63, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mediatest.MimeRED, ClockRate: 48000,
				Channels: 2, SDPFmtpLine: "111/111"}},
		} {
			if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
				return err
			}
		}
		video := []webrtc.RTPCodecParameters{
			{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}},
			{PayloadType: 122, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/red", ClockRate: 90000}},
			{PayloadType: 123, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/ulpfec", ClockRate: 90000}},
		}
		if rtx {
			video = append(video, webrtc.RTPCodecParameters{PayloadType: 97, RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}})
		}
		for _, c := range video {
			if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
				return err
			}
		}
		return nil
	}
}

// Video frames of the benchmark's source.
const (
	lrPacketPayload = 1040 // bytes of VP8 payload per packet
	lrDeltaPackets  = 2    // packets per inter frame: ~500 kbit/s at 30 fps
	lrKeyPackets    = 8    // packets per keyframe (4x an inter frame)
	lrMaxParts      = 8    // packet numbers per frame in the sinks' indices
	lrFrameInterval = time.Second / 30
)

// lrFrame is one video frame as sent.
type lrFrame struct {
	sentAt time.Time
	seq    uint16 // of its first packet, as sent by the publisher
	parts  int
	key    bool
	tid    uint8 // temporal layer (0 without temporal layers)
	ref    int64 // the frame it refers to; -1: none (a keyframe)
}

// lrVideoSource sends VP8 frames of several packets: each packet carries
// the index frame*lrMaxParts+part (where mediatest's sinks read a frame
// index) and the send time, so that a mediatest.Sink records one "frame"
// per packet. Keyframes are sent first and on PLI/FIR.
type lrVideoSource struct {
	Track *webrtc.TrackLocalStaticRTP
	fec   *lrChromeFEC // nil: plain VP8, no FEC

	mu        sync.Mutex
	seq       uint16
	ts        uint32
	keyNeeded bool
	frames    []lrFrame
	layers    lrLayering
}

func newLRVideoSource(tb testing.TB, id, stream string, withFEC, temporal bool) *lrVideoSource {
	tb.Helper()
	mime := webrtc.MimeTypeVP8
	if withFEC {
		mime = "video/red" // every packet goes out in RED
	}
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, id, stream)
	if err != nil {
		tb.Fatal(err)
	}
	s := &lrVideoSource{Track: t, keyNeeded: true, seq: 1000, ts: 90000, layers: lrLayering{temporal: temporal}}
	if withFEC {
		s.fec = newLRChromeFEC()
	}
	return s
}

// writeFrame sends the next frame, its packets back to back.
func (s *lrVideoSource) writeFrame() error {
	s.mu.Lock()
	f := uint32(len(s.frames))
	key := s.keyNeeded
	s.keyNeeded = false
	parts := lrDeltaPackets
	if key {
		parts = lrKeyPackets
	}
	s.ts += 3000
	ts, seq := s.ts, s.seq
	now := time.Now()
	tid, ref, desc := s.layers.next(f, key)
	fr := lrFrame{sentAt: now, seq: seq, parts: parts, key: key, tid: tid, ref: ref}
	if s.fec != nil {
		defer s.mu.Unlock() // numbering FEC with the media
		return s.writeFECFrame(f, fr, desc, ts)
	}
	s.seq += uint16(parts)
	// recorded before sending: a receiver may see the packets at once
	s.frames = append(s.frames, fr)
	s.mu.Unlock()

	for i := 0; i < parts; i++ {
		payload := make([]byte, lrPacketPayload)
		lrStamp(payload, f, i, key, now, desc)
		p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == parts-1, SequenceNumber: seq + uint16(i), Timestamp: ts},
			Payload: payload}
		if err := s.Track.WriteRTP(p); err != nil {
			return err
		}
	}
	return nil
}

// lrStamp fills packet part of frame f's payload: the VP8 descriptor, the
// frame tag on the first packet, then (where mediatest's sinks read them,
// after a keyframe header's length) the sinks' index and the send time.
func lrStamp(payload []byte, f uint32, part int, key bool, now time.Time, desc lrDesc) {
	h := desc.put(payload, part)
	if part == 0 {
		if key {
			// frame tag (keyframe, shown), start code, 640x360
			payload[h] = 0x10
			copy(payload[h+3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
		} else {
			payload[h] = 0x01 // inter frame
		}
	}
	off := mediatest.VP8IndexOffset(payload)
	binary.BigEndian.PutUint32(payload[off:], f*lrMaxParts+uint32(part))
	binary.BigEndian.PutUint64(payload[off+4:], uint64(now.UnixNano()))
}

// writeFECFrame sends frame f as a Chrome publisher with FEC does
// (lrChromeFEC); s.mu is held.
func (s *lrVideoSource) writeFECFrame(f uint32, fr lrFrame, desc lrDesc, ts uint32) error {
	key, parts, now := fr.key, fr.parts, fr.sentAt
	media := make([][]byte, parts)
	for i := range media {
		b := make([]byte, 12+lrPacketPayload)
		b[0], b[1] = 0x80, lrPubVP8PT
		if i == parts-1 {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint32(b[4:], ts)
		lrStamp(b[12:], f, i, key, now, desc)
		media[i] = b
	}
	pkts := s.fec.wrap(media, key, &s.seq)
	first := binary.BigEndian.Uint16(media[0][2:])
	fr.seq = first
	s.frames = append(s.frames, fr)
	for _, p := range pkts {
		if _, err := s.Track.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readRTCP reads the sender's RTCP (which drives pion's NACK responder)
// until it ends; a PLI or FIR makes the next frame a keyframe.
func (s *lrVideoSource) readRTCP(sender *webrtc.RTPSender) {
	var ssrc uint32
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		ssrc = uint32(enc[0].SSRC)
	}
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if s.fec != nil {
				for _, fl := range reportsOf(p, ssrc) {
					s.fec.noteReport(fl)
				}
			}
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.mu.Lock()
				s.keyNeeded = true
				s.mu.Unlock()
			}
		}
	}
}

// next is the number of frames sent.
func (s *lrVideoSource) next() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint32(len(s.frames))
}

func (s *lrVideoSource) frame(f uint32) lrFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames[f]
}

// keyframes counts the keyframes among frames [from, to).
func (s *lrVideoSource) keyframes(from, to uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.frames[from:to] {
		if f.key {
			n++
		}
	}
	return n
}

// lrEvery calls fn every interval (a ticker: after a stall of the process,
// missed ticks are not made up) until the benchmark ends or fn fails.
func lrEvery(tb testing.TB, interval time.Duration, fn func() error) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if fn() != nil {
					return
				}
			}
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
}

// lrAudioPump sends an Opus (or RED) frame every 20 ms and remembers when
// each was sent.
type lrAudioPump struct {
	mu   sync.Mutex
	sent map[uint32]time.Time
}

func startLRAudio(tb testing.TB, src *mediatest.Source) *lrAudioPump {
	p := &lrAudioPump{sent: map[uint32]time.Time{}}
	lrEvery(tb, 20*time.Millisecond, func() error {
		at := time.Now()
		idx, err := src.WriteFrame()
		p.mu.Lock()
		p.sent[idx] = at
		p.mu.Unlock()
		return err
	})
	return p
}

func (p *lrAudioPump) sentAt(idx uint32) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.sent[idx]
	return t, ok
}

// firstArrivals maps each index a sink received to when it first arrived.
func firstArrivals(sk *mediatest.Sink) map[uint32]time.Time {
	fs, as := sk.Frames(), sk.Arrivals()
	out := make(map[uint32]time.Time, len(fs))
	for i := 0; i < min(len(fs), len(as)); i++ {
		if _, ok := out[fs[i]]; !ok {
			out[fs[i]] = as[i]
		}
	}
	return out
}

// lrDeadline is the playout deadline: a frame (audio or video) that is not
// complete this long after it was sent is too late.
const lrDeadline = 400 * time.Millisecond
