package fec

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"math/bits"
)

// FlexFEC-03: the FEC packet format of draft-ietf-payload-flexible-fec-scheme-03
// that libwebrtc implements as "flexfec-03" (Chrome behind its field trials
// WebRTC-FlexFEC-03-Advertised and WebRTC-FlexFEC-03). The FEC packets go on
// their own RTP stream (own SSRC and sequence numbers, signalled with
// a=ssrc-group:FEC-FR), not wrapped in RED, and the media packets go out
// plain. The XOR is the same as ULPFEC's; only the header differs:
//
//	byte 0      R=0, F=0 (flexible mask), P, X, CC recovery
//	byte 1      M, PT recovery
//	bytes 2-3   length recovery
//	bytes 4-7   TS recovery
//	byte 8      SSRCCount (1), bytes 9-11 reserved
//	bytes 12-15 SSRC of the protected stream
//	bytes 16-17 SN base
//	mask        2, 6 or 14 bytes: a K bit then mask bits 0-14; a K bit then
//	            bits 15-45; a K bit then bits 46-108. K set: the mask ends
//	            with this chunk.
//
// Mask bit i protects SN base + i. Then the XOR of everything after each
// protected packet's 12-byte fixed header.
const (
	// FlexHeaderLen is a FlexFEC-03 header with one SSRC, up to the mask.
	FlexHeaderLen = 18
	flexMask0Bits = 15
	flexMask1Bits = 46
)

// Format is the FEC packet format an Encoder produces.
type Format int

// FEC packet formats.
const (
	// ULPFEC (RFC 5109, level 0): sent in RED on the media stream.
	ULPFEC Format = iota
	// FlexFEC03: sent on its own stream; see FlexHeaderLen.
	FlexFEC03
)

// flexMaskLen is the mask length for a span of offsets 0..hi.
func flexMaskLen(hi uint16) int {
	switch {
	case hi < flexMask0Bits:
		return 2
	case hi < flexMask1Bits:
		return 6
	default:
		return 14
	}
}

// putFlexHeader finishes a FlexFEC-03 header in b whose bytes 0-1 and 4-7
// hold the XORed RTP header bytes: mask bit i of mask (LSB first) protects
// snBase+i; maskLen is flexMaskLen of its span.
func putFlexHeader(b []byte, lenRec uint16, ssrc uint32, snBase uint16, mask uint64, maskLen int) {
	b[0] &= 0x3F // R = 0, F = 0 (and drop the XORed version bits)
	binary.BigEndian.PutUint16(b[2:], lenRec)
	b[8] = 1 // SSRCCount
	b[9], b[10], b[11] = 0, 0, 0
	binary.BigEndian.PutUint32(b[12:], ssrc)
	binary.BigEndian.PutUint16(b[16:], snBase)
	m := bits.Reverse64(mask) // offset 0 at bit 63
	c0 := uint16(m >> (64 - flexMask0Bits))
	if maskLen == 2 {
		binary.BigEndian.PutUint16(b[18:], 0x8000|c0)
		return
	}
	binary.BigEndian.PutUint16(b[18:], c0)
	c1 := uint32(m << flexMask0Bits >> (64 - (flexMask1Bits - flexMask0Bits))) // bits 15-45
	if maskLen == 6 {
		binary.BigEndian.PutUint32(b[20:], 0x80000000|c1)
		return
	}
	binary.BigEndian.PutUint32(b[20:], c1)
	binary.BigEndian.PutUint64(b[24:], 0x8000000000000000|m<<flexMask1Bits>>1) // bits 46-108
}

// FlexHeader is a parsed FlexFEC-03 packet with one protected SSRC.
type FlexHeader struct {
	// Recovery fields: P, X, CC (the low 6 bits of B0), M and PT (B1), the
	// timestamp, and the length of everything after the fixed header, each
	// the XOR over the protected packets.
	B0, B1         byte
	LengthRecovery uint16
	TSRecovery     uint32
	SSRC           uint32   // the protected stream
	Seqs           []uint16 // the protected packets, in mask order
	Payload        []byte   // the XOR of what follows their fixed headers
}

// Errors of ParseFlexFEC03, RecoverFlexFEC03 and NewEncoder.
var (
	ErrFormat      = errors.New("fec: unknown FEC format")
	ErrFlexHeader  = errors.New("fec: malformed FlexFEC-03 header")
	ErrFlexMissing = errors.New("fec: FlexFEC packet needs exactly one of its packets missing")
)

// ParseFlexFEC03 reads a FlexFEC-03 payload the way libwebrtc's -03 reader
// does: R and F clear, one SSRC, K bits closing the mask (the third chunk
// must have its own). The returned header's slices alias p.
func ParseFlexFEC03(p []byte) (FlexHeader, error) {
	if len(p) < FlexHeaderLen+2 || p[0]&0xC0 != 0 || p[8] != 1 {
		return FlexHeader{}, ErrFlexHeader
	}
	h := FlexHeader{B0: p[0], B1: p[1], LengthRecovery: binary.BigEndian.Uint16(p[2:]),
		TSRecovery: binary.BigEndian.Uint32(p[4:]), SSRC: binary.BigEndian.Uint32(p[12:])}
	base := binary.BigEndian.Uint16(p[16:])
	off, first := FlexHeaderLen, 0
	for i, w := range []int{2, 4, 8} {
		if len(p) < off+w {
			return FlexHeader{}, ErrFlexHeader
		}
		var v uint64
		for j := range w {
			v = v<<8 | uint64(p[off+j])
		}
		v <<= 64 - 8*w // top aligned: the K bit, then the mask bits
		off += w
		for j := range 8*w - 1 {
			if v&(1<<(62-j)) != 0 {
				h.Seqs = append(h.Seqs, base+uint16(first+j))
			}
		}
		first += 8*w - 1
		if v&(1<<63) != 0 {
			break
		}
		if i == 2 {
			return FlexHeader{}, ErrFlexHeader // no K bit in the last chunk
		}
	}
	if len(h.Seqs) == 0 {
		return FlexHeader{}, ErrEmptyMask
	}
	h.Payload = p[off:]
	return h, nil
}

// RecoverFlexFEC03 rebuilds the one packet of h's set that have does not
// return (have returns nil for a missing packet): a whole RTP packet with
// h.SSRC.
func RecoverFlexFEC03(h FlexHeader, have func(seq uint16) []byte) ([]byte, error) {
	missing := -1
	b0, b1, length, ts := h.B0, h.B1, h.LengthRecovery, h.TSRecovery
	body := append([]byte(nil), h.Payload...)
	for _, s := range h.Seqs {
		p := have(s)
		if p == nil {
			if missing >= 0 {
				return nil, ErrFlexMissing
			}
			missing = int(s)
			continue
		}
		if len(p) < rtpHeaderLen || len(p)-rtpHeaderLen > len(body) {
			return nil, ErrBadRTP
		}
		b0, b1 = b0^p[0], b1^p[1]
		length ^= uint16(len(p) - rtpHeaderLen)
		ts ^= binary.BigEndian.Uint32(p[4:])
		subtle.XORBytes(body, body, p[rtpHeaderLen:])
	}
	if missing < 0 {
		return nil, ErrFlexMissing
	}
	if int(length) > len(body) {
		return nil, ErrProtectionLength
	}
	out := make([]byte, rtpHeaderLen+int(length))
	out[0], out[1] = 0x80|b0&0x3F, b1
	binary.BigEndian.PutUint16(out[2:], uint16(missing))
	binary.BigEndian.PutUint32(out[4:], ts)
	binary.BigEndian.PutUint32(out[8:], h.SSRC)
	copy(out[rtpHeaderLen:], body[:length])
	return out, nil
}
