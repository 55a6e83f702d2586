package recorder

import (
	"encoding/binary"

	"github.com/chorus-sfu/chorus/internal/h264"
)

var errBadSPS = h264.ErrBadSPS

// spsInfo is what the recorder needs from an H264 sequence parameter set.
type spsInfo struct {
	profile       int
	chromaFormat  int
	bitDepthLuma  int // minus 8
	bitDepthChrom int // minus 8
	width, height int
}

// parseSPS parses an SPS NAL unit (H.264 section 7.3.2.1.1) far enough to
// know the picture size and the fields avcC needs.
func parseSPS(nal []byte) (spsInfo, error) {
	s, err := h264.ParseSPS(nal)
	if err != nil {
		return spsInfo{}, err
	}
	return spsInfo{profile: s.Profile, chromaFormat: s.ChromaFormat, bitDepthLuma: s.BitDepthLuma,
		bitDepthChrom: s.BitDepthChroma, width: s.Width, height: s.Height}, nil
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
