package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/rtp/codecs/vp9"
	"github.com/pion/webrtc/v4"
)

// codec is a media codec the recorder can write.
type codec int

const (
	codecOpus codec = iota + 1
	codecVP8
	codecVP9
	codecH264
)

// ErrUnsupportedCodec is returned by AddTrack for a codec that cannot be
// recorded (only Opus, VP8, VP9 and H264 can).
var ErrUnsupportedCodec = errors.New("recorder: unsupported codec")

func parseCodec(mime string) (codec, error) {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		return codecOpus, nil
	case strings.ToLower(webrtc.MimeTypeVP8):
		return codecVP8, nil
	case strings.ToLower(webrtc.MimeTypeVP9):
		return codecVP9, nil
	case strings.ToLower(webrtc.MimeTypeH264):
		return codecH264, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedCodec, mime)
}

func (c codec) video() bool { return c != codecOpus }

func (c codec) mime() string {
	switch c {
	case codecOpus:
		return webrtc.MimeTypeOpus
	case codecVP8:
		return webrtc.MimeTypeVP8
	case codecVP9:
		return webrtc.MimeTypeVP9
	default:
		return webrtc.MimeTypeH264
	}
}

func (c codec) matroskaID() string {
	switch c {
	case codecOpus:
		return "A_OPUS"
	case codecVP8:
		return "V_VP8"
	case codecVP9:
		return "V_VP9"
	default:
		return "V_MPEG4/ISO/AVC"
	}
}

// Depacketizing errors: the frame they occur in is dropped.
var (
	errShortPayload = errors.New("payload too short")
	errBadPayload   = errors.New("malformed payload")
	errUnsupported  = errors.New("unsupported packetization")
)

// frame is one media frame being assembled from RTP packets, then queued
// for the file.
type frame struct {
	data    []byte
	extTS   int64     // extended RTP timestamp
	arrival time.Time // arrival of the frame's last packet
	npkts   int       // packets depacketized into it so far

	start  bool // its first packet was seen (the beginning is not missing)
	key    bool // a keyframe (always true for audio)
	broken bool // a packet is missing or malformed

	picID   int32 // VP8/VP9 picture ID, -1 if absent
	picBits uint8 // 7 or 15
	width   int   // video size parsed from a keyframe, 0 if unknown
	height  int

	layers   []int // VP9: offsets in data where further layer frames begin
	nalStart int   // H264: offset of an unfinished FU-A's length prefix, or -1
	spsAt    int   // H264: offset and length of an SPS/PPS NAL in data
	spsLen   int
	ppsAt    int
	ppsLen   int
}

func (f *frame) reset(extTS int64) {
	*f = frame{data: f.data[:0], layers: f.layers[:0], extTS: extTS, picID: -1, nalStart: -1}
}

// depacketize appends the media in one RTP payload to f.
func depacketize(c codec, f *frame, p []byte) error {
	switch c {
	case codecVP8:
		return depacketizeVP8(f, p)
	case codecVP9:
		return depacketizeVP9(f, p)
	case codecH264:
		return depacketizeH264(f, p)
	default:
		f.start, f.key = true, true
		f.data = append(f.data, p...)
		return nil
	}
}

// finishFrame completes a frame's bitstream once all its packets are in:
// VP9 layer frames become a superframe.
func finishFrame(c codec, f *frame) error {
	switch c {
	case codecVP9:
		if len(f.layers) > 0 {
			return vp9Superframe(f)
		}
	case codecH264:
		if f.nalStart >= 0 {
			return fmt.Errorf("%w: unfinished FU-A", errBadPayload)
		}
	}
	return nil
}

// depacketizeVP8 parses the VP8 payload descriptor (RFC 7741 section 4.2).
// A frame starts with S=1 and partition index 0; its first payload byte's
// low bit (P) is clear for a keyframe, whose header also carries the size.
func depacketizeVP8(f *frame, p []byte) error {
	if len(p) < 1 {
		return errShortPayload
	}
	b0 := p[0]
	off := 1
	picID, bits := int32(-1), uint8(0)
	if b0&0x80 != 0 { // X
		if len(p) < 2 {
			return errShortPayload
		}
		x := p[1]
		off = 2
		if x&0x80 != 0 { // I: picture ID, 7 or 15 bits
			if len(p) < off+1 {
				return errShortPayload
			}
			if p[off]&0x80 != 0 {
				if len(p) < off+2 {
					return errShortPayload
				}
				picID, bits = int32(binary.BigEndian.Uint16(p[off:])&0x7FFF), 15
				off += 2
			} else {
				picID, bits = int32(p[off]&0x7F), 7
				off++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			off++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
			off++
		}
	}
	if off >= len(p) {
		return errShortPayload
	}
	data := p[off:]
	if b0&0x10 != 0 && b0&0x07 == 0 { // start of partition 0: the frame's start
		if f.npkts > 0 {
			return fmt.Errorf("%w: VP8 frame starts twice", errBadPayload)
		}
		f.start, f.picID, f.picBits = true, picID, bits
		f.key = data[0]&0x01 == 0
		// keyframe header: 3-byte frame tag, start code 9d 01 2a, then
		// 14-bit width and height (little endian)
		if f.key && len(data) >= 10 && data[3] == 0x9D && data[4] == 0x01 && data[5] == 0x2A {
			f.width = int(binary.LittleEndian.Uint16(data[6:]) & 0x3FFF)
			f.height = int(binary.LittleEndian.Uint16(data[8:]) & 0x3FFF)
		}
	}
	f.data = append(f.data, data...)
	return nil
}

// vp9Desc is the part of a VP9 payload descriptor (RFC 9628 section 4.2)
// the recorder needs.
type vp9Desc struct {
	begin, inter bool
	sid          uint8
	picID        int32
	picBits      uint8
	ssW, ssH     int // largest spatial layer size from the scalability structure
}

func parseVP9Descriptor(p []byte) (d vp9Desc, off int, err error) {
	if len(p) < 1 {
		return d, 0, errShortPayload
	}
	b0 := p[0]
	off = 1
	d.picID = -1
	need := func(n int) bool { return len(p) >= off+n }
	if b0&0x80 != 0 { // I
		if !need(1) {
			return d, 0, errShortPayload
		}
		if p[off]&0x80 != 0 {
			if !need(2) {
				return d, 0, errShortPayload
			}
			d.picID, d.picBits = int32(binary.BigEndian.Uint16(p[off:])&0x7FFF), 15
			off += 2
		} else {
			d.picID, d.picBits = int32(p[off]&0x7F), 7
			off++
		}
	}
	flexible := b0&0x10 != 0
	if b0&0x20 != 0 { // L: TID U SID D, and TL0PICIDX in non-flexible mode
		if !need(1) {
			return d, 0, errShortPayload
		}
		d.sid = p[off] >> 1 & 0x07
		off++
		if !flexible {
			off++
		}
	}
	if flexible && b0&0x40 != 0 { // reference indices, N bit chains up to 3
		for i := 0; ; i++ {
			if !need(1) || i == 3 {
				return d, 0, errShortPayload
			}
			more := p[off]&0x01 != 0
			off++
			if !more {
				break
			}
		}
	}
	if b0&0x02 != 0 { // V: scalability structure
		if !need(1) {
			return d, 0, errShortPayload
		}
		ss := p[off]
		off++
		layers := int(ss>>5) + 1
		if ss&0x10 != 0 { // Y: sizes of each spatial layer
			if !need(4 * layers) {
				return d, 0, errShortPayload
			}
			for range layers {
				d.ssW = int(binary.BigEndian.Uint16(p[off:]))
				d.ssH = int(binary.BigEndian.Uint16(p[off+2:]))
				off += 4
			}
		}
		if ss&0x08 != 0 { // G: picture group description
			if !need(1) {
				return d, 0, errShortPayload
			}
			groups := int(p[off])
			off++
			for range groups {
				if !need(1) {
					return d, 0, errShortPayload
				}
				refs := int(p[off] >> 2 & 0x03)
				off += 1 + refs
			}
		}
	}
	if off >= len(p) {
		return d, 0, errShortPayload
	}
	d.begin = b0&0x08 != 0
	d.inter = b0&0x40 != 0
	return d, off, nil
}

// depacketizeVP9 appends a VP9 packet. B marks the beginning of a layer
// frame; a keyframe is a picture whose first (spatial layer 0) frame is
// not inter-predicted.
func depacketizeVP9(f *frame, p []byte) error {
	d, off, err := parseVP9Descriptor(p)
	if err != nil {
		return err
	}
	data := p[off:]
	if d.begin {
		if f.npkts == 0 {
			f.start, f.picID, f.picBits = true, d.picID, d.picBits
			f.key = !d.inter && d.sid == 0
			if f.key {
				// some packetizers leave P clear on every frame: the frame
				// header has the last word when it can be parsed
				var h vp9.Header
				if h.Unmarshal(data) == nil {
					f.key = !h.NonKeyFrame && !h.ShowExistingFrame
					f.width, f.height = int(h.Width()), int(h.Height())
				}
				if d.ssW > 0 {
					f.width, f.height = d.ssW, d.ssH
				}
			}
		} else if len(f.data) > 0 {
			f.layers = append(f.layers, len(f.data)) // the next spatial layer's frame
		}
	}
	f.data = append(f.data, data...)
	return nil
}

// vp9Superframe turns the concatenated layer frames of one picture into a
// VP9 superframe: the frames followed by an index of their sizes (VP9
// bitstream specification, annex B).
func vp9Superframe(f *frame) error {
	n := len(f.layers) + 1
	if n > 8 {
		return fmt.Errorf("%w: %d VP9 layer frames", errBadPayload, n)
	}
	var sizes [8]int
	prev, largest := 0, 0
	for i := range n {
		end := len(f.data)
		if i < len(f.layers) {
			end = f.layers[i]
		}
		if end <= prev {
			return fmt.Errorf("%w: empty VP9 layer frame", errBadPayload)
		}
		sizes[i] = end - prev
		largest = max(largest, sizes[i])
		prev = end
	}
	mag := 1
	for mag < 4 && largest >= 1<<(8*mag) {
		mag++
	}
	marker := byte(0xC0 | (mag-1)<<3 | (n - 1))
	f.data = append(f.data, marker)
	for _, size := range sizes[:n] {
		for j := range mag {
			f.data = append(f.data, byte(size>>(8*j)))
		}
	}
	f.data = append(f.data, marker)
	return nil
}

// H264 NAL unit types.
const (
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
	nalSTAPA = 24
	nalFUA   = 28
)

// depacketizeH264 converts RFC 6184 packets (single NAL unit, STAP-A,
// FU-A) into length-prefixed (AVCC) NAL units.
func depacketizeH264(f *frame, p []byte) error {
	if len(p) < 1 {
		return errShortPayload
	}
	first := f.npkts == 0
	switch t := p[0] & 0x1F; {
	case t >= 1 && t <= 23:
		if f.nalStart >= 0 {
			return fmt.Errorf("%w: NAL inside FU-A", errBadPayload)
		}
		f.start = f.start || first
		appendNAL(f, p)
	case t == nalSTAPA:
		if f.nalStart >= 0 {
			return fmt.Errorf("%w: STAP-A inside FU-A", errBadPayload)
		}
		f.start = f.start || first
		for i := 1; i < len(p); {
			if i+2 > len(p) {
				return errShortPayload
			}
			n := int(binary.BigEndian.Uint16(p[i:]))
			i += 2
			if n == 0 || i+n > len(p) {
				return fmt.Errorf("%w: STAP-A unit size", errBadPayload)
			}
			appendNAL(f, p[i:i+n])
			i += n
		}
	case t == nalFUA:
		if len(p) < 3 {
			return errShortPayload
		}
		fu := p[1]
		if fu&0x80 != 0 { // S
			if f.nalStart >= 0 {
				return fmt.Errorf("%w: FU-A restarts", errBadPayload)
			}
			f.start = f.start || first
			f.nalStart = len(f.data)
			f.data = append(f.data, 0, 0, 0, 0, p[0]&0xE0|fu&0x1F)
		} else if f.nalStart < 0 {
			return fmt.Errorf("%w: FU-A without start", errBadPayload)
		}
		f.data = append(f.data, p[2:]...)
		if fu&0x40 != 0 { // E
			at := f.nalStart
			f.nalStart = -1
			binary.BigEndian.PutUint32(f.data[at:], uint32(len(f.data)-at-4))
			noteNAL(f, at+4)
		}
	default:
		return fmt.Errorf("%w: H264 NAL type %d", errUnsupported, t)
	}
	return nil
}

func appendNAL(f *frame, nal []byte) {
	f.data = binary.BigEndian.AppendUint32(f.data, uint32(len(nal)))
	at := len(f.data)
	f.data = append(f.data, nal...)
	noteNAL(f, at)
}

// noteNAL records keyframes and parameter sets; the NAL unit starts at at.
func noteNAL(f *frame, at int) {
	n := len(f.data) - at
	switch f.data[at] & 0x1F {
	case nalIDR:
		f.key = true
	case nalSPS:
		f.spsAt, f.spsLen = at, n
	case nalPPS:
		f.ppsAt, f.ppsLen = at, n
	}
}

// opusHead is the CodecPrivate of an Opus track (RFC 7845 section 5.1):
// version 1, channels, no pre-skip, 48 kHz input, no gain, mapping 0.
func opusHead(channels int) []byte {
	b := []byte("OpusHead")
	b = append(b, 1, byte(channels), 0, 0)
	b = binary.LittleEndian.AppendUint32(b, 48000)
	return append(b, 0, 0, 0)
}
