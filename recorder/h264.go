package recorder

import (
	"encoding/binary"
	"errors"
)

var errBadSPS = errors.New("recorder: malformed H264 SPS")

// spsInfo is what the recorder needs from an H264 sequence parameter set.
type spsInfo struct {
	profile       int
	chromaFormat  int
	bitDepthLuma  int // minus 8
	bitDepthChrom int // minus 8
	width, height int
}

// bitReader reads an RBSP bit by bit; reading past the end sets err and
// returns zeros.
type bitReader struct {
	b   []byte
	pos int // in bits
	err bool
}

func (r *bitReader) u(n int) uint32 {
	var v uint32
	for range n {
		if r.pos >= 8*len(r.b) {
			r.err = true
			return 0
		}
		v = v<<1 | uint32(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v
}

// ue reads an unsigned Exp-Golomb code.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.u(1) == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.u(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int32 {
	k := r.ue()
	if k&1 != 0 {
		return int32((k + 1) / 2)
	}
	return -int32(k / 2)
}

// unescapeRBSP removes emulation prevention bytes (00 00 03).
func unescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// parseSPS parses an SPS NAL unit (H.264 section 7.3.2.1.1) far enough to
// know the picture size and the fields avcC needs.
func parseSPS(nal []byte) (spsInfo, error) {
	var s spsInfo
	if len(nal) < 4 || nal[0]&0x1F != nalSPS {
		return s, errBadSPS
	}
	r := &bitReader{b: unescapeRBSP(nal[1:])}
	s.profile = int(r.u(8))
	r.u(16) // constraint flags, level
	r.ue()  // seq_parameter_set_id
	s.chromaFormat = 1
	switch s.profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		s.chromaFormat = int(r.ue())
		if s.chromaFormat > 3 {
			return s, errBadSPS
		}
		if s.chromaFormat == 3 {
			r.u(1) // separate_colour_plane_flag
		}
		s.bitDepthLuma = int(r.ue())
		s.bitDepthChrom = int(r.ue())
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if s.chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.u(1) == 0 {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := int32(8), int32(8)
				for range size {
					if next != 0 {
						next = (last + r.se() + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se()
		r.se()
		n := r.ue()
		if n > 255 {
			return s, errBadSPS
		}
		for range n {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMbs := int(r.ue()) + 1
	hUnits := int(r.ue()) + 1
	frameMbsOnly := int(r.u(1))
	if frameMbsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb int
	if r.u(1) == 1 { // frame_cropping_flag
		cl, cr, ct, cb = int(r.ue()), int(r.ue()), int(r.ue()), int(r.ue())
	}
	if r.err || wMbs > 1024 || hUnits > 1024 {
		return s, errBadSPS
	}
	s.width = wMbs * 16
	s.height = (2 - frameMbsOnly) * hUnits * 16
	cropX, cropY := 1, 2-frameMbsOnly
	switch s.chromaFormat {
	case 1:
		cropX, cropY = 2, 2*(2-frameMbsOnly)
	case 2:
		cropX = 2
	}
	s.width -= (cl + cr) * cropX
	s.height -= (ct + cb) * cropY
	if s.width <= 0 || s.height <= 0 {
		return s, errBadSPS
	}
	return s, nil
}

// avcConfig builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// section 5.3.3.1) with 4-byte NAL lengths, one SPS and one PPS.
func avcConfig(sps, pps []byte) ([]byte, spsInfo, error) {
	info, err := parseSPS(sps)
	if err != nil {
		return nil, info, err
	}
	if len(pps) == 0 || len(sps) > 0xFFFF || len(pps) > 0xFFFF {
		return nil, info, errBadSPS
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	b = append(b, pps...)
	switch info.profile {
	case 100, 110, 122, 144:
		b = append(b, 0xFC|byte(info.chromaFormat), 0xF8|byte(info.bitDepthLuma&7),
			0xF8|byte(info.bitDepthChrom&7), 0)
	}
	return b, info, nil
}
