package fec

import (
	"encoding/binary"
	"errors"
)

// RED (RFC 2198) block headers: a non-final block header is 4 bytes
// (F=1, block PT, 14-bit timestamp offset, 10-bit block length), the final
// (primary) block header is 1 byte (F=0, block PT). A one-block RED payload,
// which is what libwebrtc sends and accepts for video with ULPFEC, is one
// byte 0|PT followed by the encapsulated payload.

// Errors returned by the RED helpers.
var (
	ErrShortRED      = errors.New("fec: truncated RED payload")
	ErrREDMultiBlock = errors.New("fec: RED packet with more than one block")
)

// REDBlock is one block of a RED payload.
type REDBlock struct {
	PT       uint8
	TSOffset uint16 // 0 for the primary block
	Data     []byte // aliases the parsed payload
	Primary  bool   // the last block, described by the 1-byte header
}

// WrapRED appends a one-block RED payload carrying payload under block
// payload type blockPT to dst and returns the extended slice (pass dst[:0]
// to reuse a buffer). RTP padding is not part of the RED payload: a packet
// with padding keeps its P bit and padding after the RED payload.
func WrapRED(dst []byte, blockPT uint8, payload []byte) []byte {
	dst = append(dst, blockPT&0x7F)
	return append(dst, payload...)
}

// UnwrapRED returns the primary block of a RED payload (RTP payload without
// padding): its payload type and data, which aliases red.
func UnwrapRED(red []byte) (blockPT uint8, data []byte, err error) {
	i := 0
	skip := 0 // bytes of redundant blocks preceding the primary data
	for {
		if i >= len(red) {
			return 0, nil, ErrShortRED
		}
		if red[i]&0x80 == 0 {
			pt := red[i] & 0x7F
			start := i + 1 + skip
			if start > len(red) {
				return 0, nil, ErrShortRED
			}
			return pt, red[start:], nil
		}
		if i+4 > len(red) {
			return 0, nil, ErrShortRED
		}
		skip += int(binary.BigEndian.Uint16(red[i+2:]) & 0x03FF)
		i += 4
	}
}

// ParseRED appends every block of a RED payload to blocks (redundant blocks
// first, in header order, then the primary one) and returns it.
func ParseRED(red []byte, blocks []REDBlock) ([]REDBlock, error) {
	first := len(blocks)
	i := 0
	for {
		if i >= len(red) {
			return blocks[:first], ErrShortRED
		}
		if red[i]&0x80 == 0 {
			blocks = append(blocks, REDBlock{PT: red[i] & 0x7F, Primary: true})
			i++
			break
		}
		if i+4 > len(red) {
			return blocks[:first], ErrShortRED
		}
		v := binary.BigEndian.Uint32(red[i:])
		blocks = append(blocks, REDBlock{
			PT:       uint8(v>>24) & 0x7F,
			TSOffset: uint16(v>>10) & 0x3FFF,
		})
		i += 4
	}
	// i is now the start of the first block's data; non-final headers are
	// 4 bytes each, so header j starts at 4*j.
	for k := first; k < len(blocks); k++ {
		if blocks[k].Primary {
			blocks[k].Data = red[i:]
			break
		}
		n := int(binary.BigEndian.Uint16(red[4*(k-first)+2:]) & 0x03FF)
		if i+n > len(red) {
			return blocks[:first], ErrShortRED
		}
		blocks[k].Data = red[i : i+n]
		i += n
	}
	return blocks, nil
}

// UnwrapREDPacket undoes RED encapsulation of one received RTP packet the way
// libwebrtc's ULPFEC receiver does. If the block payload type is fecPT the
// packet carries FEC: the ULPFEC payload (aliasing pkt) is returned with
// isFEC set. Otherwise the encapsulated media packet is rebuilt into dst
// (whose contents are overwritten; it grows if needed): the RTP header with
// the payload type replaced by the block's, then the block data and any RTP
// padding. Only one-block RED is accepted, like libwebrtc.
func UnwrapREDPacket(dst, pkt []byte, fecPT uint8) (out []byte, isFEC bool, err error) {
	hl, end, err := rtpBounds(pkt)
	if err != nil {
		return nil, false, err
	}
	if hl >= end {
		return nil, false, ErrShortRED
	}
	if pkt[hl]&0x80 != 0 {
		return nil, false, ErrREDMultiBlock
	}
	pt := pkt[hl] & 0x7F
	if pt == fecPT&0x7F {
		return pkt[hl+1 : end], true, nil
	}
	dst = append(dst[:0], pkt[:hl]...)
	dst[1] = dst[1]&0x80 | pt
	dst = append(dst, pkt[hl+1:]...) // block data and padding
	return dst, false, nil
}

// rtpBounds returns the header length (fixed header, CSRCs, extension) and
// the end of the payload (before padding) of an RTP packet.
func rtpBounds(b []byte) (hl, end int, err error) {
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return 0, 0, ErrBadRTP
	}
	hl = rtpHeaderLen + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 {
		if len(b) < hl+4 {
			return 0, 0, ErrBadRTP
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(b[hl+2:]))
	}
	if len(b) < hl {
		return 0, 0, ErrBadRTP
	}
	end = len(b)
	if b[0]&0x20 != 0 {
		pad := int(b[end-1])
		if pad == 0 || end-pad < hl {
			return 0, 0, ErrBadRTP
		}
		end -= pad
	}
	return hl, end, nil
}
