package simulcast

import "strings"

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
	r := bitReader{b: b}
	if r.u(2) != 2 { // frame_marker
		return 0, 0, false
	}
	profile := r.u(1) | r.u(1)<<1 // low bit first
	if profile == 3 {
		r.u(1) // reserved_zero
	}
	if r.u(1) != 0 { // show_existing_frame
		return 0, 0, false
	}
	if r.u(1) != 0 { // frame_type: 0 is KEY_FRAME
		return 0, 0, false
	}
	r.u(1)                                                  // show_frame
	r.u(1)                                                  // error_resilient_mode
	if r.u(8) != 0x49 || r.u(8) != 0x83 || r.u(8) != 0x42 { // frame_sync_code
		return 0, 0, false
	}
	// color_config
	if profile >= 2 {
		r.u(1) // ten_or_twelve_bit
	}
	if r.u(3) != 7 { // color_space other than CS_RGB
		r.u(1) // color_range
		if profile == 1 || profile == 3 {
			r.u(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		r.u(1) // reserved_zero
	}
	w = int(r.u(16)) + 1 // frame_width_minus_1
	h = int(r.u(16)) + 1 // frame_height_minus_1
	if r.err {
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

// h264MaxMbs bounds the picture width and height in macroblocks so that the
// arithmetic cannot overflow; it is far above any level's limit.
const h264MaxMbs = 1 << 16

// h264SPSSize parses an SPS NAL unit (with its one-byte header) up to the
// frame cropping and returns the cropped size.
func h264SPSSize(nal []byte) (w, h int, ok bool) {
	if len(nal) < 4 {
		return 0, 0, false
	}
	r := bitReader{b: unescapeRBSP(nal[1:])}
	profile := r.u(8)
	r.u(8) // constraint_set0..5_flag, reserved_zero_2bits
	r.u(8) // level_idc
	r.ue() // seq_parameter_set_id
	chromaFormat := uint32(1)
	separateColourPlane := false
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chromaFormat = r.ue()
		if chromaFormat > 3 {
			return 0, 0, false
		}
		if chromaFormat == 3 {
			separateColourPlane = r.u(1) == 1
		}
		r.ue()           // bit_depth_luma_minus8
		r.ue()           // bit_depth_chroma_minus8
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.u(1) == 1 { // seq_scaling_list_present_flag[i]
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1)      // delta_pic_order_always_zero_flag
		r.se()      // offset_for_non_ref_pic
		r.se()      // offset_for_top_to_bottom_field
		n := r.ue() // num_ref_frames_in_pic_order_cnt_cycle
		if n > 255 {
			return 0, 0, false
		}
		for range n {
			r.se() // offset_for_ref_frame[i]
		}
	}
	r.ue()                 // max_num_ref_frames
	r.u(1)                 // gaps_in_frame_num_value_allowed_flag
	widthMbs := r.ue()     // pic_width_in_mbs_minus1
	heightUnits := r.ue()  // pic_height_in_map_units_minus1
	frameMbsOnly := r.u(1) // frame_mbs_only_flag
	if frameMbsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint32
	if r.u(1) == 1 { // frame_cropping_flag
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err || widthMbs >= h264MaxMbs || heightUnits >= h264MaxMbs {
		return 0, 0, false
	}
	w = (int(widthMbs) + 1) * 16
	h = (2 - int(frameMbsOnly)) * (int(heightUnits) + 1) * 16
	// crop units (7-19 to 7-22)
	unitX, unitY := 1, 2-int(frameMbsOnly)
	if !separateColourPlane && chromaFormat != 0 {
		subW, subH := 2, 2 // 4:2:0
		switch chromaFormat {
		case 2:
			subH = 1
		case 3:
			subW, subH = 1, 1
		}
		unitX, unitY = subW, subH*(2-int(frameMbsOnly))
	}
	cw := unitX * (clampCrop(cropL) + clampCrop(cropR))
	ch := unitY * (clampCrop(cropT) + clampCrop(cropB))
	if cw >= w || ch >= h {
		return 0, 0, false
	}
	return w - cw, h - ch, true
}

// clampCrop converts a crop offset to int, clamped far above any picture
// size so that the products stay inside int range on 32-bit platforms too.
func clampCrop(v uint32) int {
	const limit = 1 << 20
	if v > limit {
		return limit
	}
	return int(v)
}

// unescapeRBSP removes the emulation prevention bytes (0x03 after two zero
// bytes) of a NAL unit payload. It returns b itself when there are none.
func unescapeRBSP(b []byte) []byte {
	var out []byte
	zeros := 0
	for i, c := range b {
		if zeros >= 2 && c == 0x03 {
			if out == nil {
				out = append(make([]byte, 0, len(b)), b[:i]...)
			}
			zeros = 0
			continue
		}
		if out != nil {
			out = append(out, c)
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if out == nil {
		return b
	}
	return out
}

// bitReader reads big-endian bit fields. Reading past the end sets err and
// returns zeros, so a parser can read a whole structure and check err once.
type bitReader struct {
	b   []byte
	pos int // in bits
	err bool
}

// u reads an n-bit unsigned value, n <= 32.
func (r *bitReader) u(n int) uint32 {
	var v uint32
	for range n {
		if r.pos >= 8*len(r.b) {
			r.err = true
			return 0
		}
		bit := r.b[r.pos>>3] >> (7 - r.pos&7) & 1
		v = v<<1 | uint32(bit)
		r.pos++
	}
	return v
}

// ue reads an unsigned Exp-Golomb value (H.264 9.1). Codes longer than 32
// bits set err.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.u(1) == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.u(zeros)
}

// se reads a signed Exp-Golomb value (H.264 9.1.1).
func (r *bitReader) se() int32 {
	k := r.ue()
	if k&1 == 1 {
		return int32((k + 1) / 2)
	}
	return -int32(k / 2)
}

// skipScalingList reads a scaling_list() of size entries (H.264 7.3.2.1.1.1)
// without keeping it.
func (r *bitReader) skipScalingList(size int) {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			delta := r.se() // delta_scale, -128..127
			if r.err || delta < -128 || delta > 127 {
				r.err = true
				return
			}
			next = (last + delta + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
