// Package h264 parses the H.264 structures the SFU and the recorder need.
package h264

import (
	"errors"

	"github.com/chorus-sfu/chorus/internal/bitstream"
)

// ErrBadSPS: a sequence parameter set that does not parse.
var ErrBadSPS = errors.New("h264: malformed sequence parameter set")

// NALSPS is the NAL unit type of a sequence parameter set.
const NALSPS = 7

// SPS is what Chorus reads of a sequence parameter set.
type SPS struct {
	Profile        int
	ChromaFormat   int // chroma_format_idc (1: 4:2:0)
	BitDepthLuma   int // bit_depth_luma_minus8
	BitDepthChroma int // bit_depth_chroma_minus8
	Width, Height  int // the cropped picture size
}

// maxMbs bounds the picture width and height in macroblocks so that the
// arithmetic cannot overflow; it is far above any level's limit.
const maxMbs = 1 << 16

// ParseSPS parses an SPS NAL unit (with its one-byte header; H.264 7.3.2.1.1)
// up to the frame cropping.
func ParseSPS(nal []byte) (SPS, error) {
	var s SPS
	if len(nal) < 4 || nal[0]&0x1F != NALSPS {
		return s, ErrBadSPS
	}
	r := bitstream.NewReader(bitstream.UnescapeRBSP(nal[1:]))
	s.Profile = int(r.U(8))
	r.U(8) // constraint_set0..5_flag, reserved_zero_2bits
	r.U(8) // level_idc
	r.UE() // seq_parameter_set_id
	s.ChromaFormat = 1
	separateColourPlane := false
	switch s.Profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		s.ChromaFormat = int(r.UE())
		if s.ChromaFormat > 3 {
			return s, ErrBadSPS
		}
		if s.ChromaFormat == 3 {
			separateColourPlane = r.U(1) == 1
		}
		s.BitDepthLuma = int(min(r.UE(), 16))
		s.BitDepthChroma = int(min(r.UE(), 16))
		r.U(1)           // qpprime_y_zero_transform_bypass_flag
		if r.U(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if s.ChromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.U(1) == 1 { // seq_scaling_list_present_flag[i]
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(r, size)
				}
			}
		}
	}
	r.UE()          // log2_max_frame_num_minus4
	switch r.UE() { // pic_order_cnt_type
	case 0:
		r.UE() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.U(1)      // delta_pic_order_always_zero_flag
		r.SE()      // offset_for_non_ref_pic
		r.SE()      // offset_for_top_to_bottom_field
		n := r.UE() // num_ref_frames_in_pic_order_cnt_cycle
		if n > 255 {
			return s, ErrBadSPS
		}
		for range n {
			r.SE() // offset_for_ref_frame[i]
		}
	}
	r.UE()                 // max_num_ref_frames
	r.U(1)                 // gaps_in_frame_num_value_allowed_flag
	widthMbs := r.UE()     // pic_width_in_mbs_minus1
	heightUnits := r.UE()  // pic_height_in_map_units_minus1
	frameMbsOnly := r.U(1) // frame_mbs_only_flag
	if frameMbsOnly == 0 {
		r.U(1) // mb_adaptive_frame_field_flag
	}
	r.U(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint32
	if r.U(1) == 1 { // frame_cropping_flag
		cropL, cropR, cropT, cropB = r.UE(), r.UE(), r.UE(), r.UE()
	}
	if r.Err() || widthMbs >= maxMbs || heightUnits >= maxMbs {
		return s, ErrBadSPS
	}
	w := (int(widthMbs) + 1) * 16
	h := (2 - int(frameMbsOnly)) * (int(heightUnits) + 1) * 16
	// crop units (7-19 to 7-22)
	unitX, unitY := 1, 2-int(frameMbsOnly)
	if !separateColourPlane && s.ChromaFormat != 0 {
		subW, subH := 2, 2 // 4:2:0
		switch s.ChromaFormat {
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
		return s, ErrBadSPS
	}
	s.Width, s.Height = w-cw, h-ch
	return s, nil
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

// skipScalingList reads a scaling_list() of size entries (H.264 7.3.2.1.1.1)
// without keeping it.
func skipScalingList(r *bitstream.Reader, size int) {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			delta := r.SE() // delta_scale, -128..127
			if r.Err() || delta < -128 || delta > 127 {
				r.Fail()
				return
			}
			next = (last + delta + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
