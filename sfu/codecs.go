package sfu

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// Codec MIME types Chorus forwards.
const (
	MimeOpus = webrtc.MimeTypeOpus
	MimeVP8  = webrtc.MimeTypeVP8
	MimeVP9  = webrtc.MimeTypeVP9
	MimeH264 = webrtc.MimeTypeH264
)

// keyframeFunc reports whether an RTP payload starts a keyframe.
type keyframeFunc func(payload []byte) bool

func keyframeDetector(mime string) keyframeFunc {
	switch strings.ToLower(mime) {
	case strings.ToLower(MimeVP8):
		return isVP8Keyframe
	case strings.ToLower(MimeVP9):
		return isVP9Keyframe
	case strings.ToLower(MimeH264):
		return isH264Keyframe
	default:
		return func([]byte) bool { return true }
	}
}

// isVP8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2) and
// the first byte of the VP8 payload header.
func isVP8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	if b0&0x10 == 0 || b0&0x07 != 0 { // not the start of partition 0
		return false
	}
	i := 1
	if b0&0x80 != 0 { // X: extension byte present
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture ID
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}

// isVP9Keyframe parses the VP9 payload descriptor: a keyframe is a frame that
// is not inter-predicted (P bit clear) starting here (B bit) in spatial layer 0.
func isVP9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	if b0&0x40 != 0 || b0&0x08 == 0 {
		return false
	}
	i := 1
	if b0&0x80 != 0 { // I: picture ID
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	if b0&0x20 != 0 { // L: layer indices
		if len(p) <= i {
			return false
		}
		if (p[i]>>1)&0x07 != 0 {
			return false
		}
	}
	return true
}

// isH264Keyframe reports whether the packet carries an SPS or IDR slice
// (single NAL unit, STAP-A, or the first fragment of an FU-A).
func isH264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	isKey := func(t byte) bool { return t == 5 || t == 7 }
	switch t := p[0] & 0x1F; t {
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if isKey(p[i] & 0x1F) {
				return true
			}
			i += size
		}
		return false
	case 28: // FU-A
		return len(p) > 1 && p[1]&0x80 != 0 && isKey(p[1]&0x1F)
	default:
		return isKey(t)
	}
}
