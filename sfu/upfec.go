package sfu

import (
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// Publisher FEC. A browser publisher that negotiated video RED and ULPFEC
// wraps its media in RED and, after its frames, sends ULPFEC packets sized
// by the loss the SFU reports (Chrome does so for VP8 and VP9 once its
// round trip is 20 ms or more). The up track unwraps the media, rebuilds
// lost packets from the FEC without waiting for a retransmission, and
// forwards plain media: subscribers get FEC of their own, sized by their own
// loss (videofec.go). The FEC packets' sequence numbers are taken out of
// each subscriber's numbering (DownTrack.skip).

// upFEC is an up track's publisher-FEC state, owned by its reader.
type upFEC struct {
	redPT, fecPT uint8
	dec          *fec.Decoder
	media        []byte   // the unwrapped media packet
	batch        [][]byte // media and rebuilt packets, in sequence order
}

func newUpFEC(redPT, fecPT uint8, mutable []fec.MutableExtension) *upFEC {
	return &upFEC{redPT: redPT & 0x7F, fecPT: fecPT & 0x7F,
		dec:   fec.NewDecoder(fec.DecoderConfig{Mutable: mutable}),
		media: make([]byte, 0, maxPacketSize+64)}
}

// handleRED takes one packet of a stream that may carry RED and ULPFEC:
// media is unwrapped and stored, FEC feeds the decoder, and every packet
// rebuilt is stored as if it had arrived. Called only by the reader.
func (t *UpTrack) handleRED(b []byte) {
	u := t.fec
	r, err := parseRTP(b)
	if err != nil {
		t.malformed.Add(1)
		return
	}
	media := b
	if r.payloadType == u.redPT {
		out, isFEC, err := fec.UnwrapREDPacket(u.media, b, u.fecPT)
		if err != nil {
			t.malformed.Add(1)
			return
		}
		if isFEC {
			t.handleFEC(r, out)
			return
		}
		u.media, media = out, out
	}
	rebuilt, err := u.dec.AddMedia(media)
	if err != nil {
		t.malformed.Add(1)
		return
	}
	t.handleBatch(media, rebuilt)
}

// handleFEC takes one ULPFEC packet: it counts as received (it is no gap to
// NACK), rebuilds what it can, and its number is taken out of subscribers'
// numbering when nothing after it was forwarded yet.
func (t *UpTrack) handleFEC(r rtpInfo, payload []byte) {
	t.fecPackets.Add(1)
	t.packets.Add(1)
	t.bytes.Add(uint64(len(payload)))
	now := time.Now()
	t.lastPacket.Store(now.UnixNano())
	t.noteArrival(r.seq, true, now) // a frame's FEC follows its last packet
	rebuilt, err := t.fec.dec.AddFEC(r.seq, r.ssrc, payload)
	if err != nil {
		t.malformed.Add(1)
	}
	t.handleBatch(nil, rebuilt)
	if t.havePrev && !seqNewer(r.seq, t.lastSeq) {
		return // late: later media went out already
	}
	t.havePrev, t.lastSeq = true, r.seq
	for _, d := range *t.downs.Load() {
		d.skip(t.layer, r.seq)
	}
}

// handleBatch stores and forwards a media packet (nil: none) and the
// packets rebuilt with it, oldest first, so that down tracks see them in
// order when they fill the gap just before.
func (t *UpTrack) handleBatch(media []byte, rebuilt [][]byte) {
	if len(rebuilt) == 0 {
		if media != nil {
			t.handleMedia(media)
		}
		return
	}
	t.fecRecovered.Add(uint64(len(rebuilt)))
	u := t.fec
	u.batch = append(u.batch[:0], rebuilt...)
	if media != nil {
		u.batch = append(u.batch, media)
	}
	slices.SortFunc(u.batch, func(a, b []byte) int { return int(int16(rtpSeq(a) - rtpSeq(b))) })
	for _, p := range u.batch {
		t.handleMedia(p)
	}
	clear(u.batch)
}

func rtpSeq(b []byte) uint16 { return uint16(b[2])<<8 | uint16(b[3]) }

// publisherStream is what onTrack needs to know of a publisher's stream
// that may come wrapped in RED.
type publisherStream struct {
	codec        webrtc.RTPCodecParameters // the media codec
	redPT, fecPT uint8                     // both 0 unless RED and ULPFEC were negotiated
	mutable      []fec.MutableExtension
	source       RTPSource // where to read the stream from
}

// publisherRED finds out a video stream's media codec and, when the SFU
// accepts publisher FEC (accept), its RED and ULPFEC payload types. pion
// names a stream's codec after its first packet's payload type, which is
// RED's when the publisher wraps its media: then the media codec is the one
// that first packet's RED block carries. That packet is read here and
// handed back first by the returned source. (The offer's RED and ULPFEC
// are among the receiver's codecs even when the answer left them out, so
// accept decides: a stream without FEC skips the decoder's copy of every
// packet.)
func publisherRED(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, accept bool) publisherStream {
	s := publisherStream{codec: remote.Codec(), source: remote}
	if remote.Kind() != webrtc.RTPCodecTypeVideo || !accept && !strings.EqualFold(s.codec.MimeType, MimeVideoRED) {
		return s
	}
	params := recv.GetParameters()
	for _, c := range params.Codecs {
		switch {
		case strings.EqualFold(c.MimeType, MimeVideoRED):
			s.redPT = uint8(c.PayloadType)
		case strings.EqualFold(c.MimeType, MimeULPFEC):
			s.fecPT = uint8(c.PayloadType)
		}
	}
	if s.redPT == 0 || s.fecPT == 0 {
		s.redPT, s.fecPT = 0, 0
		return s
	}
	exts := map[string]int{}
	for _, h := range params.HeaderExtensions {
		exts[h.URI] = h.ID
	}
	s.mutable = fec.LibwebrtcMutable(exts)
	if !strings.EqualFold(s.codec.MimeType, MimeVideoRED) {
		return s
	}
	first := make([]byte, maxPacketSize+64)
	n, _, err := remote.Read(first)
	if err != nil {
		return s // the stream ended: the reader will see it too
	}
	s.source = &prefetched{first: first[:n], src: remote}
	if r, err := parseRTP(first[:n]); err == nil && len(r.payload) > 0 && r.payload[0]&0x80 == 0 {
		inner := r.payload[0] & 0x7F
		for _, c := range params.Codecs {
			if uint8(c.PayloadType) == inner && inner != s.fecPT {
				s.codec = c
				return s
			}
		}
	}
	// no media in the first packet (FEC first): the first media codec
	// negotiated, which is what browsers send
	for _, c := range params.Codecs {
		m := strings.ToLower(c.MimeType)
		if m != strings.ToLower(MimeVideoRED) && m != strings.ToLower(MimeULPFEC) && m != strings.ToLower(webrtc.MimeTypeRTX) {
			s.codec = c
			break
		}
	}
	return s
}

// prefetched hands back a packet already read, then reads from src.
type prefetched struct {
	first []byte
	src   RTPSource
}

func (p *prefetched) Read(b []byte) (int, interceptor.Attributes, error) {
	if p.first != nil {
		if len(b) < len(p.first) {
			p.first = nil
			return 0, nil, io.ErrShortBuffer
		}
		n := copy(b, p.first)
		p.first = nil
		return n, nil, nil
	}
	return p.src.Read(b)
}
