package server_test

import (
	"encoding/binary"
	"slices"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// The uplink rows' publisher protects its video with ULPFEC in RED the way
// Chrome does when the SFU negotiates RED and ULPFEC (libwebrtc's hybrid
// NACK/FEC protection, used from a 20 ms round trip up; the benchmark's is
// 50 ms). libwebrtc sizes the FEC from the loss in the receiver reports
// (the maximum over about 10 s) with its table of protection factors,
// whose row for this stream's rate (~500 kbit/s, 16 kbit per frame) gives,
// as a share of all packets sent: 20 % (its minimum once there is loss) up
// to 18 % loss, 27 % at 19 - 21 %, 33 % at 22 - 37 %, 41 % at 38 - 47 %,
// and 35 % beyond (the table stops at 50 %). That share becomes FEC packets per
// media packet (x / (1 - x)), applied over groups of at least 4 media
// packets (2 frames here) for the factors above 80/255, at most 3 frames.
// Keyframes get twice the delta protection, at most one FEC packet per
// media packet. This is an approximation of Chrome's behaviour (its masks
// differ from this package's interleaved ones), not a copy of it.

// Payload types of the benchmark publisher's video (it offers them, so
// they are the ones on its wire).
const (
	lrPubVP8PT = 96
	lrPubREDPT = 122
	lrPubFECPT = 123
	lrPubRTXPT = 124 // RTX of RED-wrapped packets
)

// lrChromeFECTable is the delta-frame protection of the table row
// described above: from loss (of 255) lossFrom on, factor (of 255).
var lrChromeFECTable = []struct{ lossFrom, factor int }{
	{0, 0}, {15, 6}, {18, 23}, {33, 44}, {39, 50}, {48, 68}, {55, 85}, {96, 105}, {120, 88},
}

// lrChromeFEC is the publisher's FEC state.
type lrChromeFEC struct {
	mu     sync.Mutex
	losses []int // fraction lost (of 255) of the last receiver reports, newest last
	enc    *fec.Encoder
}

func newLRChromeFEC() *lrChromeFEC {
	enc, err := fec.NewEncoder(fec.EncoderConfig{MaxFrames: 3})
	if err != nil {
		panic(err) // no protection: cannot fail
	}
	return &lrChromeFEC{enc: enc}
}

// noteReport takes a receiver report block about the video stream.
func (c *lrChromeFEC) noteReport(fractionLost uint8) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.losses = append(c.losses, int(fractionLost))
	if len(c.losses) > 10 {
		c.losses = c.losses[1:]
	}
}

// factors returns the FEC per media packet (of 256) for delta frames and
// keyframes, from the highest loss reported lately.
func (c *lrChromeFEC) factors() (delta, key int) {
	c.mu.Lock()
	loss := 0
	for _, l := range c.losses {
		loss = max(loss, l)
	}
	c.mu.Unlock()
	if loss == 0 {
		return 0, 0
	}
	loss = min(loss, 128)
	d := 0
	for _, r := range lrChromeFECTable {
		if loss >= r.lossFrom {
			d = r.factor
		}
	}
	d = max(d, 51) // the first partition's protection: libwebrtc's minimum
	k := max(loss, min(2*d, 128))
	conv := func(x int) int { return min(255, (255*x+(255-x)/2)/(255-x)) }
	return conv(min(d, 128)), conv(min(k, 128))
}

// protect sets the encoder up for the next frame: its FEC packets per
// group of media packets.
func (c *lrChromeFEC) protect(key bool, parts int) {
	delta, keyF := c.factors()
	f, group := delta, 4
	if key {
		f, group = keyF, parts
	}
	n := (group*f + 128) >> 8
	if f > 0 {
		n = max(n, 1)
	}
	_ = c.enc.SetProtection(min(n, group), group)
}

// wrap returns the wire packets of one frame's media packets (plain VP8
// with lrPubVP8PT, numbered from *seq on): each media packet in RED, then
// the FEC packets of any group that closed; *seq advances past them all.
func (c *lrChromeFEC) wrap(media [][]byte, key bool, seq *uint16) [][]byte {
	if key {
		// the open delta group closes before a keyframe's own protection
		out := c.fecPackets(c.enc.Flush(), media[0], seq)
		c.protect(true, len(media))
		out = append(out, c.wrapMedia(media, seq)...)
		c.protect(false, 0)
		return out
	}
	c.protect(false, 0)
	return c.wrapMedia(media, seq)
}

func (c *lrChromeFEC) wrapMedia(media [][]byte, seq *uint16) [][]byte {
	var out [][]byte
	for _, m := range media {
		binary.BigEndian.PutUint16(m[2:], *seq)
		*seq++
		fecs, err := c.enc.Add(m)
		if err != nil {
			panic(err) // in order by construction
		}
		red := append(slices.Clone(m[:12]), fec.WrapRED(nil, lrPubVP8PT, m[12:])...)
		red[1] = red[1]&0x80 | lrPubREDPT
		out = append(out, red)
		out = append(out, c.fecPackets(fecs, m, seq)...)
	}
	return out
}

// fecPackets makes RED packets of FEC payloads, after media packet last.
func (c *lrChromeFEC) fecPackets(fecs [][]byte, last []byte, seq *uint16) [][]byte {
	var out [][]byte
	for _, f := range fecs {
		h := make([]byte, 12, 13+len(f))
		h[0], h[1] = 0x80, lrPubREDPT
		binary.BigEndian.PutUint16(h[2:], *seq)
		*seq++
		copy(h[4:8], last[4:8]) // the protected frame's timestamp
		out = append(out, append(h, fec.WrapRED(nil, lrPubFECPT, f)...))
	}
	return out
}

// lrFECPublisherCodecs are lrREDPublisherCodecs plus video RED, ULPFEC and
// RTX for RED, as Chrome offers them.
func lrFECPublisherCodecs(me *webrtc.MediaEngine) error {
	if err := lrREDPublisherCodecs(me); err != nil {
		return err
	}
	for _, c := range []webrtc.RTPCodecParameters{
		{PayloadType: lrPubREDPT, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/red", ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}},
		{PayloadType: lrPubFECPT, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/ulpfec", ClockRate: 90000}},
		{PayloadType: lrPubRTXPT, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000,
			SDPFmtpLine: "apt=122"}},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}

// reportsOf returns the fraction lost of the report blocks about ssrc.
func reportsOf(p rtcp.Packet, ssrc uint32) []uint8 {
	rr, ok := p.(*rtcp.ReceiverReport)
	if !ok {
		return nil
	}
	var out []uint8
	for _, r := range rr.Reports {
		if r.SSRC == ssrc {
			out = append(out, r.FractionLost)
		}
	}
	return out
}
