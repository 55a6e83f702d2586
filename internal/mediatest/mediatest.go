// Package mediatest generates and checks synthetic media for tests and
// benchmarks: numbered VP8 and Opus packets that a receiver can count, and
// whose send time it can read back to measure latency.
package mediatest

import (
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/red"
)

// Payload layout after the codec header: 4-byte index, 8-byte send time (ns).
const (
	// vp8HeaderLen: the codec bytes before the frame number: for VP8 a
	// one-byte descriptor and a keyframe's 10-byte header (frame tag, start
	// code, size), so that the SFU can read a layer's size.
	vp8HeaderLen = 11
	infoLen      = 12
)

// Source writes numbered packets to a local track and answers keyframe
// requests by marking the next frame as a keyframe.
type Source struct {
	Track   *webrtc.TrackLocalStaticRTP
	isVideo bool
	mime    string
	size    int

	mu            sync.Mutex
	seq           uint16
	ts            uint32
	next          uint32
	keyNeeded     bool
	plis          int
	rrs           int
	plisCh        chan struct{}
	width, height int          // written into VP8 keyframes
	red           *red.Encoder // RED source: frames wrapped with redundancy
	// simulcast header extensions (pion's sender does not add them)
	mid          string
	midID, ridID uint8
}

// SetSimulcastHeader makes the source tag its packets with the MID and RID
// header extensions a simulcast receiver needs to identify the layer; the
// IDs are those negotiated (RTPSender.GetParameters().HeaderExtensions).
func (s *Source) SetSimulcastHeader(mid string, midID, ridID int) {
	s.mu.Lock()
	s.mid, s.midID, s.ridID = mid, uint8(midID), uint8(ridID)
	s.mu.Unlock()
}

// SetFrameSize sets the size VP8 keyframes declare.
func (s *Source) SetFrameSize(w, h int) {
	s.mu.Lock()
	s.width, s.height = w, h
	s.mu.Unlock()
}

// NewVideoSource returns a VP8 source whose packets have size bytes of payload.
func NewVideoSource(id, stream string, size int) (*Source, error) {
	return NewVideoSourceCodec(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, id, stream, size)
}

// NewVideoSourceCodec returns a source of VP8, VP9 or H264 single-packet
// frames whose first two payload bytes mark keyframes as that codec does.
func NewVideoSourceCodec(c webrtc.RTPCodecCapability, id, stream string, size int) (*Source, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(c, id, stream)
	if err != nil {
		return nil, err
	}
	return &Source{Track: t, isVideo: true, mime: c.MimeType, size: max(size, vp8HeaderLen+infoLen),
		keyNeeded: true, plisCh: make(chan struct{}, 1)}, nil
}

// NewSimulcastSources returns one VP8 source per rid, all layers of one
// track, declaring 320x180, 640x360, 1280x720... in their keyframes. Layer i numbers its frames from i*LayerIndexBase, so a receiver
// can tell which layer a frame came from.
func NewSimulcastSources(id, stream string, rids []string, size int) ([]*Source, error) {
	var out []*Source
	for i, rid := range rids {
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			id, stream, webrtc.WithRTPStreamID(rid))
		if err != nil {
			return nil, err
		}
		out = append(out, &Source{Track: t, isVideo: true, mime: webrtc.MimeTypeVP8, size: max(size, vp8HeaderLen+infoLen),
			keyNeeded: true, plisCh: make(chan struct{}, 1), next: uint32(i) * LayerIndexBase,
			width: 320 << i, height: 180 << i,
			seq: uint16(i * 10000), ts: uint32(i) * 1_000_000})
	}
	return out, nil
}

// LayerIndexBase separates the frame numbers of simulcast layers.
const LayerIndexBase = 1_000_000

// codecHeader returns the first two payload bytes of a single-packet frame.
func codecHeader(mime string, key bool) (byte, byte) {
	switch mime {
	case webrtc.MimeTypeVP9: // descriptor: B and E set, P set for inter frames
		if key {
			return 0x0C, 0
		}
		return 0x4C, 0
	case webrtc.MimeTypeH264: // NAL header: IDR slice or non-IDR slice
		if key {
			return 0x65, 0
		}
		return 0x41, 0
	default: // VP8: S=1, PID=0; then the payload header's P bit
		if key {
			return 0x10, 0x00
		}
		return 0x10, 0x01
	}
}

// MimeRED is Opus with RFC 2198 redundancy.
const MimeRED = "audio/red"

// NewREDSource returns a source of RED packets carrying its Opus frames
// with distance earlier frames as redundancy (PT 111 inside, as offered by
// browsers: fmtp "111/111").
func NewREDSource(id, stream string, distance int) (*Source, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: MimeRED, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "111/111"}, id, stream)
	if err != nil {
		return nil, err
	}
	enc, err := red.NewEncoder(111)
	if err != nil {
		return nil, err
	}
	enc.SetDistance(distance)
	return &Source{Track: t, size: 80, plisCh: make(chan struct{}, 1), red: enc}, nil
}

// NewAudioSource returns an Opus source.
func NewAudioSource(id, stream string) (*Source, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, id, stream)
	if err != nil {
		return nil, err
	}
	return &Source{Track: t, size: 80, plisCh: make(chan struct{}, 1)}, nil
}

// WriteFrame writes one single-packet frame and returns its index.
func (s *Source) WriteFrame() (uint32, error) {
	s.mu.Lock()
	idx := s.next
	s.next++
	key := s.keyNeeded
	s.keyNeeded = false
	s.seq++
	if s.isVideo {
		s.ts += 3000
	} else {
		s.ts += 960
	}
	hdr := rtp.Header{Version: 2, Marker: true, SequenceNumber: s.seq, Timestamp: s.ts}
	if s.midID != 0 && s.ridID != 0 {
		hdr.Extension, hdr.ExtensionProfile = true, 0xBEDE
		_ = hdr.SetExtension(s.midID, []byte(s.mid))
		_ = hdr.SetExtension(s.ridID, []byte(s.Track.RID()))
	}
	w, h := s.width, s.height
	s.mu.Unlock()

	payload := make([]byte, s.size)
	off := 0
	if s.isVideo {
		payload[0], payload[1] = codecHeader(s.mime, key)
		if key && s.mime == webrtc.MimeTypeVP8 {
			// frame tag (keyframe, shown), start code, 14-bit width and height
			payload[1] = 0x10
			copy(payload[4:], []byte{0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)})
		}
		off = vp8HeaderLen
	}
	binary.BigEndian.PutUint32(payload[off:], idx)
	binary.BigEndian.PutUint64(payload[off+4:], uint64(time.Now().UnixNano()))
	if s.red != nil {
		s.mu.Lock() // the encoder's history is the source's
		payload = s.red.Encode(nil, hdr.SequenceNumber, hdr.Timestamp, payload)
		s.mu.Unlock()
	}
	return idx, s.Track.WriteRTP(&rtp.Packet{Header: hdr, Payload: payload})
}

// Next is the index the next frame will get.
func (s *Source) Next() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// PLIs is the number of keyframe requests received.
func (s *Source) PLIs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plis
}

// ReceiverReports is the number of RTCP receiver reports received.
func (s *Source) ReceiverReports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rrs
}

// PLISignal receives a value after keyframe requests arrive.
func (s *Source) PLISignal() <-chan struct{} { return s.plisCh }

// ReadRTCP consumes the sender's RTCP until it ends, counting PLIs and FIRs.
// For a simulcast layer it reads that layer's RTCP.
func (s *Source) ReadRTCP(sender *webrtc.RTPSender) {
	rid := s.Track.RID()
	for {
		var pkts []rtcp.Packet
		var err error
		if rid != "" {
			pkts, _, err = sender.ReadSimulcastRTCP(rid)
		} else {
			pkts, _, err = sender.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.ReceiverReport:
				s.mu.Lock()
				s.rrs++
				s.mu.Unlock()
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.mu.Lock()
				s.plis++
				s.keyNeeded = true
				s.mu.Unlock()
				select {
				case s.plisCh <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Sink records the packets of one received track.
type Sink struct {
	Track *webrtc.TrackRemote

	mu         sync.Mutex
	indices    map[uint32]bool
	latencies  []time.Duration
	seqs       []uint16
	timestamps []uint32
	frames     []uint32 // frame indices in arrival order
	arrivals   []time.Time
	padding    int  // padding-only packets received
	red        bool // the track is RED (set at creation)
	// FEC-decoding sinks (NewReceiverSink)
	redPackets, fecPackets, recovered int
	cond                              chan struct{} // closed and replaced on every packet
}

// NewSink starts reading a remote track in a goroutine that ends with the track.
func NewSink(t *webrtc.TrackRemote) *Sink {
	s := &Sink{Track: t, indices: map[uint32]bool{}, cond: make(chan struct{}),
		red: strings.EqualFold(t.Codec().MimeType, MimeRED)}
	go s.read()
	return s
}

func (s *Sink) read() {
	isVideo := s.Track.Kind() == webrtc.RTPCodecTypeVideo
	isVP8 := strings.EqualFold(s.Track.Codec().MimeType, webrtc.MimeTypeVP8)
	var dec *red.Decoder
	if s.red {
		dec = red.NewDecoder() // a RED receiver: count what it recovers
	}
	for {
		p, _, err := s.Track.ReadRTP()
		if err != nil {
			return
		}
		if dec != nil {
			_ = dec.Decode(p.SequenceNumber, p.Timestamp, p.Payload, func(seq uint16, ts uint32, opus []byte) {
				s.record(seq, ts, opus, 0, false)
			})
			continue
		}
		off := 0
		if isVideo {
			off = vp8HeaderLen
			if isVP8 {
				off = VP8IndexOffset(p.Payload)
			}
		}
		s.record(p.SequenceNumber, p.Timestamp, p.Payload, off, p.Padding)
	}
}

// VP8IndexOffset is where a video packet's frame number starts: the VP8
// payload descriptor (RFC 7741 section 4.2; one byte for this package's
// sources, up to six for a source that signals temporal layers), then the
// 10 bytes of a keyframe's header (frame tag, start code, size), padded to
// that length on every packet.
func VP8IndexOffset(payload []byte) int {
	if len(payload) < 2 || payload[0]&0x80 == 0 {
		return vp8HeaderLen
	}
	n, x := 2, payload[1]
	if x&0x80 != 0 { // I: picture ID, 7 or 15 bits
		if len(payload) > n && payload[n]&0x80 != 0 {
			n++
		}
		n++
	}
	if x&0x40 != 0 { // L: TL0PICIDX
		n++
	}
	if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
		n++
	}
	return n + vp8HeaderLen - 1
}

func (s *Sink) record(seq uint16, ts uint32, payload []byte, off int, padding bool) {
	if len(payload) < off+infoLen {
		if padding { // a bandwidth probe's padding: part of the sequence
			s.mu.Lock()
			s.seqs = append(s.seqs, seq)
			s.padding++
			s.mu.Unlock()
		}
		return
	}
	idx := binary.BigEndian.Uint32(payload[off:])
	sent := int64(binary.BigEndian.Uint64(payload[off+4:]))
	lat := time.Duration(time.Now().UnixNano() - sent)
	s.mu.Lock()
	if !s.indices[idx] {
		s.indices[idx] = true
		s.latencies = append(s.latencies, lat)
	}
	s.seqs = append(s.seqs, seq)
	s.frames = append(s.frames, idx)
	s.arrivals = append(s.arrivals, time.Now())
	s.timestamps = append(s.timestamps, ts)
	close(s.cond)
	s.cond = make(chan struct{})
	s.mu.Unlock()
}

// RED reports whether the track arrived as RED (the sink unwraps it and
// records the frames it carries, recovered ones included).
func (s *Sink) RED() bool { return s.red }

// Has reports whether frame idx arrived.
func (s *Sink) Has(idx uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indices[idx]
}

// Count is the number of distinct frames received.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.indices)
}

// Seqs returns the sequence numbers received, in arrival order, padding-only
// packets included.
func (s *Sink) Seqs() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint16(nil), s.seqs...)
}

// Frames returns the frame indices received, in arrival order.
func (s *Sink) Frames() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.frames...)
}

// Arrivals returns the arrival time of each packet, in arrival order (the
// same order as Frames).
func (s *Sink) Arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

// Padding is the number of padding-only packets received.
func (s *Sink) Padding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.padding
}

// Timestamps returns the RTP timestamps of the media packets received, in
// arrival order.
func (s *Sink) Timestamps() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.timestamps...)
}

// Latencies returns the one-way latency of each distinct frame.
func (s *Sink) Latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.latencies...)
}

// ErrTimeout is returned when a wait ends before its condition holds.
var ErrTimeout = errors.New("mediatest: timed out")

// WaitFor waits until cond (called with the sink's state locked) holds.
func (s *Sink) WaitFor(ctx context.Context, cond func(indices map[uint32]bool) bool) error {
	for {
		s.mu.Lock()
		ok := cond(s.indices)
		ch := s.cond
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ErrTimeout
		}
	}
}

// WaitRange waits until every frame in [from, to) has arrived.
func (s *Sink) WaitRange(ctx context.Context, from, to uint32) error {
	return s.WaitFor(ctx, func(ix map[uint32]bool) bool {
		for i := from; i < to; i++ {
			if !ix[i] {
				return false
			}
		}
		return true
	})
}

// Percentile returns the p-th percentile (0..100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
