package fec

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Sizes of the fixed parts of an RTP packet and of a ULPFEC payload
// (RFC 5109 sections 7.3 and 7.4).
const (
	rtpHeaderLen = 12 // fixed RTP header; FEC covers everything after it

	// FECHeaderLen is the FEC header: E, L, P/X/CC/M/PT recovery, SN base,
	// TS recovery, length recovery.
	FECHeaderLen = 10
	// LevelHeaderShort is the level 0 header with the L bit clear:
	// protection length + 16-bit mask.
	LevelHeaderShort = 4
	// LevelHeaderLong is the level 0 header with the L bit set:
	// protection length + 48-bit mask.
	LevelHeaderLong = 8

	// MaxGroupSize is the most media packets one FEC packet can protect, and
	// the widest span of sequence numbers it can reach (the 48-bit mask).
	MaxGroupSize  = 48
	shortMaskBits = 16
)

// Errors returned when parsing FEC data or RTP packets.
var (
	ErrShortFEC         = errors.New("fec: ULPFEC payload shorter than its headers")
	ErrProtectionLength = errors.New("fec: protection length exceeds the FEC payload")
	ErrEmptyMask        = errors.New("fec: FEC packet protects no packet (all-zero mask)")
	ErrBadRTP           = errors.New("fec: malformed RTP packet")
)

// Header is a parsed ULPFEC header: the FEC header and the level 0 header
// (RFC 5109 sections 7.3 and 7.4). Only level 0 is used by this package;
// data after the level 0 payload (higher levels) is ignored.
type Header struct {
	// Extension is the E bit as received. RFC 5109 says it SHALL be 0 and
	// SHOULD be ignored by the receiver, so it is reported but not acted on.
	Extension bool
	// Long is the L bit: the mask is 48 bits instead of 16.
	Long bool

	// Recovery fields: the XOR of the corresponding fields of the protected
	// packets (P, X, CC, M and PT of the RTP header, the timestamp, and the
	// 16-bit length of everything after the 12-byte fixed header).
	PRecovery      bool
	XRecovery      bool
	CCRecovery     uint8
	MRecovery      bool
	PTRecovery     uint8
	TSRecovery     uint32
	LengthRecovery uint16

	// SNBase is the lowest sequence number protected by the packet.
	SNBase uint16
	// ProtectionLength is the length of the level 0 payload.
	ProtectionLength uint16
	// Mask has bit i (counting from the least significant bit) set when the
	// packet with sequence number SNBase+i is protected. On the wire the
	// order is the other way round: the most significant mask bit is i = 0.
	Mask uint64
}

// Len is the size of the FEC header plus the level 0 header.
func (h *Header) Len() int {
	if h.Long {
		return FECHeaderLen + LevelHeaderLong
	}
	return FECHeaderLen + LevelHeaderShort
}

// Protects reports whether the packet with sequence number seq is covered.
func (h *Header) Protects(seq uint16) bool {
	off := uint16(seq - h.SNBase)
	return off < MaxGroupSize && h.Mask&(1<<off) != 0
}

// Count is the number of protected packets.
func (h *Header) Count() int { return bits.OnesCount64(h.Mask) }

// ParseHeader reads the FEC header and the level 0 header of a ULPFEC payload
// (the bytes after the RED header when FEC travels in RED) and returns the
// level 0 payload (ProtectionLength bytes after the headers).
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < FECHeaderLen+LevelHeaderShort {
		return h, nil, ErrShortFEC
	}
	h.Extension = b[0]&0x80 != 0
	h.Long = b[0]&0x40 != 0
	hl := h.Len()
	if len(b) < hl {
		return h, nil, ErrShortFEC
	}
	h.PRecovery = b[0]&0x20 != 0
	h.XRecovery = b[0]&0x10 != 0
	h.CCRecovery = b[0] & 0x0F
	h.MRecovery = b[1]&0x80 != 0
	h.PTRecovery = b[1] & 0x7F
	h.SNBase = binary.BigEndian.Uint16(b[2:])
	h.TSRecovery = binary.BigEndian.Uint32(b[4:])
	h.LengthRecovery = binary.BigEndian.Uint16(b[8:])
	h.ProtectionLength = binary.BigEndian.Uint16(b[10:])
	var wire uint64 // wire-order mask, MSB = offset 0
	nbits := shortMaskBits
	if h.Long {
		wire = uint64(binary.BigEndian.Uint16(b[12:]))<<32 | uint64(binary.BigEndian.Uint32(b[14:]))
		nbits = MaxGroupSize
	} else {
		wire = uint64(binary.BigEndian.Uint16(b[12:]))
	}
	// bit (nbits-1-i) on the wire is offset i
	h.Mask = bits.Reverse64(wire) >> (64 - nbits)
	if int(h.ProtectionLength) > len(b)-hl {
		return h, nil, ErrProtectionLength
	}
	return h, b[hl : hl+int(h.ProtectionLength)], nil
}

// putMask writes the level 0 mask of h (offset i -> wire bit i from the MSB).
func putMask(b []byte, mask uint64, long bool) {
	if long {
		w := bits.Reverse64(mask) >> 16 // 48 bits, offset 0 at bit 47
		binary.BigEndian.PutUint16(b, uint16(w>>32))
		binary.BigEndian.PutUint32(b[2:], uint32(w))
		return
	}
	binary.BigEndian.PutUint16(b, uint16(bits.Reverse64(mask)>>48))
}
