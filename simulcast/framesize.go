package simulcast

import (
	"strings"

	"github.com/chorus-sfu/chorus/internal/bitstream"
	"github.com/chorus-sfu/chorus/internal/h264"
)

// FrameSize returns the coded width and height carried by p, the RTP payload
// of the first packet of a keyframe, for the codec named by mime ("video/VP8",
// "video/VP9" or "video/H264", compared case-insensitively). It reports
// ok=false when the packet does not carry a size (another codec, a packet that
// does not start a keyframe, or a truncated or malformed header). It never
// panics, whatever the input.
//
//   - VP8: the key frame header after the payload descriptor (RFC 7741
//     section 4.2, RFC 6386 section 9.1); the scaling bits are dropped.
//   - VP9: the scalability structure's resolution of the packet's spatial
//     layer when the descriptor carries one (RFC 9628 section 4.2.1), else
//     the uncompressed header of a key frame (VP9 bitstream specification,
//     section 6.2).
//   - H264: a sequence parameter set (ITU-T H.264 7.3.2.1.1) sent as a
//     single NAL unit or inside a STAP-A (RFC 6184), after frame cropping.
func FrameSize(mime string, p []byte) (w, h int, ok bool) {
	switch {
	case strings.EqualFold(mime, "video/VP8"):
		return vp8FrameSize(p)
	case strings.EqualFold(mime, "video/VP9"):
		return vp9FrameSize(p)
	case strings.EqualFold(mime, "video/H264"):
		return h264FrameSize(p)
	}
	return 0, 0, false
}

// vp8FrameSize reads the key frame header that starts partition 0.
func vp8FrameSize(p []byte) (w, h int, ok bool) {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 { // S=1, PID=0
		return 0, 0, false
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return 0, 0, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I
			if len(p) <= i {
				return 0, 0, false
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if i > len(p) || len(p)-i < 10 {
		return 0, 0, false
	}
	f := p[i : i+10]
	// frame tag: bit 0 of the first byte is the frame type, 0 for a key frame
	if f[0]&0x01 != 0 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0, 0, false
	}
	w = int(f[6]) | int(f[7]&0x3F)<<8 // the top 2 bits are the scale
	h = int(f[8]) | int(f[9]&0x3F)<<8
	if w == 0 || h == 0 {
		return 0, 0, false
	}
	return w, h, true
}

// vp9FrameSize reads the scalability structure or, without one, the
// uncompressed header of the key frame starting in this packet.
func vp9FrameSize(p []byte) (w, h int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	b0 := p[0]
	i := 1
	if b0&0x80 != 0 { // I: picture ID
		if len(p) <= i {
			return 0, 0, false
		}
		if p[i]&0x80 != 0 {
			i++
		}
		i++
	}
	sid := 0
	if b0&0x20 != 0 { // L: layer indices
		if len(p) <= i {
			return 0, 0, false
		}
		sid = int(p[i]>>1) & 0x07
		i++
		if b0&0x10 == 0 { // non-flexible mode: TL0PICIDX
			i++
		}
	}
	if b0&0x50 == 0x50 { // P and F: up to 3 P_DIFF, each with N set if another follows
		for n := 0; ; n++ {
			if n == 3 || len(p) <= i {
				return 0, 0, false
			}
			more := p[i]&0x01 != 0
			i++
			if !more {
				break
			}
		}
	}
	if b0&0x02 != 0 { // V: scalability structure
		if len(p) <= i {
			return 0, 0, false
		}
		ss := p[i]
		i++
		ns := int(ss>>5) + 1
		if ss&0x10 != 0 { // Y: per-layer resolution, 16 bits each
			if len(p)-i < 4*ns {
				return 0, 0, false
			}
			if sid < ns {
				o := i + 4*sid
				w = int(p[o])<<8 | int(p[o+1])
				h = int(p[o+2])<<8 | int(p[o+3])
				if w > 0 && h > 0 {
					return w, h, true
				}
			}
			i += 4 * ns
		}
		if ss&0x08 != 0 { // G: picture group description
			if len(p) <= i {
				return 0, 0, false
			}
			ng := int(p[i])
			i++
			for range ng {
				if len(p) <= i {
					return 0, 0, false
				}
				r := int(p[i]>>2) & 0x03
				i += 1 + r
			}
		}
	}
	if b0&0x08 == 0 || i >= len(p) { // B: the frame must start here
		return 0, 0, false
	}
	return vp9KeyframeSize(p[i:])
}

// vp9KeyframeSize parses the start of a VP9 uncompressed header up to the
// frame size of a key frame.
func vp9KeyframeSize(b []byte) (w, h int, ok bool) {
	r := bitstream.NewReader(b)
	if r.U(2) != 2 { // frame_marker
		return 0, 0, false
	}
	profile := r.U(1) | r.U(1)<<1 // low bit first
	if profile == 3 {
		r.U(1) // reserved_zero
	}
	if r.U(1) != 0 { // show_existing_frame
		return 0, 0, false
	}
	if r.U(1) != 0 { // frame_type: 0 is KEY_FRAME
		return 0, 0, false
	}
	r.U(1)                                                  // show_frame
	r.U(1)                                                  // error_resilient_mode
	if r.U(8) != 0x49 || r.U(8) != 0x83 || r.U(8) != 0x42 { // frame_sync_code
		return 0, 0, false
	}
	// color_config
	if profile >= 2 {
		r.U(1) // ten_or_twelve_bit
	}
	if r.U(3) != 7 { // color_space other than CS_RGB
		r.U(1) // color_range
		if profile == 1 || profile == 3 {
			r.U(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		r.U(1) // reserved_zero
	}
	w = int(r.U(16)) + 1 // frame_width_minus_1
	h = int(r.U(16)) + 1 // frame_height_minus_1
	if r.Err() {
		return 0, 0, false
	}
	return w, h, true
}

// h264FrameSize finds a sequence parameter set in a single NAL unit packet
// or a STAP-A and parses it.
func h264FrameSize(p []byte) (w, h int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	switch p[0] & 0x1F {
	case 7: // SPS
		return h264SPSSize(p)
	case 24: // STAP-A: 16-bit size, NAL unit, repeated
		for i := 1; len(p)-i >= 2; {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if n == 0 || n > len(p)-i {
				return 0, 0, false
			}
			if p[i]&0x1F == 7 {
				return h264SPSSize(p[i : i+n])
			}
			i += n
		}
	}
	return 0, 0, false
}

// h264SPSSize parses an SPS NAL unit (with its one-byte header) and returns
// the cropped picture size.
func h264SPSSize(nal []byte) (w, h int, ok bool) {
	sps, err := h264.ParseSPS(nal)
	if err != nil {
		return 0, 0, false
	}
	return sps.Width, sps.Height, true
}
