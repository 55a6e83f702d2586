// Package red implements the RTP payload format for redundant audio data
// (RFC 2198, "audio/red") as WebRTC browsers use it with Opus: every RTP
// packet carries the current Opus payload as the primary block and copies of
// the payloads of one or more previous packets as redundant blocks, so that
// a receiver can rebuild a lost packet from one of the packets that follow.
//
// The package has three parts:
//
//   - Parse and Append read and write the payload format itself;
//   - Encoder builds RED payloads for one outgoing stream from plain Opus
//     payloads, with an adjustable number of redundant copies
//     (DistanceForLoss maps a measured loss rate to that number);
//   - Decoder turns a received RED stream back into plain Opus packets,
//     rebuilding lost packets from the redundancy of later ones, for
//     receivers that did not negotiate RED.
//
// In an SFU, a Decoder sits on a published RED stream (it repairs the
// publisher's uplink losses for everyone), and an Encoder on each
// subscriber stream that accepts RED, its distance following that
// subscriber's downlink loss.
//
// Encoder and Decoder are owned by one goroutine each and are not safe for
// concurrent use.
package red

import (
	"errors"
	"fmt"
)

// Limits of the RFC 2198 block header.
const (
	// MaxBlockLen is the largest redundant block: the block length field
	// has 10 bits. The primary block has no length field and no limit.
	MaxBlockLen = 1<<10 - 1
	// MaxTSOffset is the largest timestamp offset of a redundant block: the
	// field has 14 bits (16383 ticks, 341 ms at 48 kHz, 17 frames of 20 ms).
	MaxTSOffset = 1<<14 - 1
	// MaxPT is the largest payload type: the field has 7 bits.
	MaxPT = 1<<7 - 1
)

// Errors. Parse wraps ErrMalformed, Append wraps the others; use errors.Is.
var (
	// ErrMalformed reports a payload that is not a valid RFC 2198 payload.
	ErrMalformed = errors.New("red: malformed payload")
	// ErrBlockTooLong reports a redundant block longer than MaxBlockLen.
	ErrBlockTooLong = errors.New("red: redundant block too long")
	// ErrOffsetTooLarge reports a redundant block's timestamp offset beyond
	// MaxTSOffset, or a primary block with a non-zero offset.
	ErrOffsetTooLarge = errors.New("red: timestamp offset out of range")
	// ErrBadPayloadType reports a block payload type beyond MaxPT.
	ErrBadPayloadType = errors.New("red: payload type out of range")
)

// Block is one encoding carried in a RED payload.
type Block struct {
	// PT is the block's payload type (7 bits), the Opus payload type for
	// browser RED.
	PT uint8
	// TSOffset is how many RTP timestamp ticks the block's data precedes
	// the packet's timestamp: the block's timestamp is the RTP header's
	// timestamp minus TSOffset. It is 0 for the primary block.
	TSOffset uint16
	// Data is the block's payload. Blocks returned by Parse reference the
	// parsed payload; they are not copies.
	Data []byte
}

// Wire format (RFC 2198 section 3). Each redundant block has a 4-byte
// header, in the order the blocks' data follows:
//
//	byte 0: F=1 (1 bit) | block PT (7 bits)
//	byte 1: timestamp offset, bits 13..6
//	byte 2: timestamp offset, bits 5..0 | block length, bits 9..8
//	byte 3: block length, bits 7..0
//
// The last header is one byte, F=0 | primary PT; the primary block has no
// length field: its data is whatever follows the redundant blocks' data.

// Parse splits a RED payload into its blocks. The redundant blocks come
// first, in payload order, and the primary block is always the last element
// of the result, with TSOffset 0. blocks is reused: Parse truncates it and
// appends, so it does not allocate when blocks has enough capacity. The
// blocks' Data slices reference payload.
//
// Errors wrap ErrMalformed: an empty payload, a header cut short, or block
// lengths that add up to more than the payload holds. The slice returned
// with an error is empty. Empty blocks, redundant or primary, are valid.
func Parse(payload []byte, blocks []Block) ([]Block, error) {
	blocks = blocks[:0]
	// First pass: headers, and the total length of the redundant blocks.
	i, n, total := 0, 0, 0
	for {
		if i >= len(payload) {
			if n == 0 {
				return blocks, fmt.Errorf("%w: empty payload", ErrMalformed)
			}
			return blocks, fmt.Errorf("%w: no final header after %d block headers", ErrMalformed, n)
		}
		if payload[i]&0x80 == 0 {
			break
		}
		if len(payload)-i < 4 {
			return blocks, fmt.Errorf("%w: block header %d truncated (%d of 4 bytes)", ErrMalformed, n, len(payload)-i)
		}
		total += int(payload[i+2]&0x03)<<8 | int(payload[i+3])
		i += 4
		n++
	}
	data := i + 1 // the final header is one byte
	if total > len(payload)-data {
		return blocks, fmt.Errorf("%w: redundant blocks claim %d bytes, %d left after %d headers",
			ErrMalformed, total, len(payload)-data, n+1)
	}
	// Second pass: the blocks.
	for h := 0; h < i; h += 4 {
		l := int(payload[h+2]&0x03)<<8 | int(payload[h+3])
		blocks = append(blocks, Block{
			PT:       payload[h] & 0x7F,
			TSOffset: uint16(payload[h+1])<<6 | uint16(payload[h+2]>>2),
			Data:     payload[data : data+l : data+l],
		})
		data += l
	}
	return append(blocks, Block{PT: payload[i] & 0x7F, Data: payload[data:]}), nil
}

// Append appends a RED payload to dst: the redundant blocks in the given
// order (by convention oldest first, that is decreasing TSOffset), then the
// primary. It returns an error, and dst unchanged, when a payload type does
// not fit 7 bits, a redundant block is longer than MaxBlockLen or its
// offset larger than MaxTSOffset, or the primary's TSOffset is not 0.
func Append(dst []byte, primary Block, redundant []Block) ([]byte, error) {
	if primary.PT > MaxPT {
		return dst, fmt.Errorf("%w: primary PT %d", ErrBadPayloadType, primary.PT)
	}
	if primary.TSOffset != 0 {
		return dst, fmt.Errorf("%w: primary block offset %d, must be 0", ErrOffsetTooLarge, primary.TSOffset)
	}
	for i, b := range redundant {
		switch {
		case b.PT > MaxPT:
			return dst, fmt.Errorf("%w: redundant block %d PT %d", ErrBadPayloadType, i, b.PT)
		case len(b.Data) > MaxBlockLen:
			return dst, fmt.Errorf("%w: redundant block %d is %d bytes, max %d", ErrBlockTooLong, i, len(b.Data), MaxBlockLen)
		case b.TSOffset > MaxTSOffset:
			return dst, fmt.Errorf("%w: redundant block %d offset %d, max %d", ErrOffsetTooLarge, i, b.TSOffset, MaxTSOffset)
		}
	}
	return appendBlocks(dst, primary, redundant), nil
}

// appendBlocks is Append without the checks.
func appendBlocks(dst []byte, primary Block, redundant []Block) []byte {
	for _, b := range redundant {
		l := len(b.Data)
		dst = append(dst,
			0x80|b.PT,
			byte(b.TSOffset>>6),
			byte(b.TSOffset<<2)|byte(l>>8),
			byte(l))
	}
	dst = append(dst, primary.PT)
	for _, b := range redundant {
		dst = append(dst, b.Data...)
	}
	return append(dst, primary.Data...)
}
