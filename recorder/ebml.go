package recorder

import (
	"encoding/binary"
	"math"
)

// A minimal EBML (RFC 8794) encoder: just what the Matroska writer needs.
// Elements are appended to byte slices so that a cluster is built in one
// reusable buffer without allocations.

// Element IDs (Matroska, RFC 9559). IDs are written as they are listed
// here: the marker bits are part of the value.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idVoid               = 0xEC

	idSegment      = 0x18538067
	idSeekHead     = 0x114D9B74
	idSeek         = 0x4DBB
	idSeekID       = 0x53AB
	idSeekPosition = 0x53AC

	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idDateUTC       = 0x4461
	idMuxingApp     = 0x4D80
	idWritingApp    = 0x5741

	idTracks            = 0x1654AE6B
	idTrackEntry        = 0xAE
	idTrackNumber       = 0xD7
	idTrackUID          = 0x73C5
	idTrackType         = 0x83
	idFlagLacing        = 0x9C
	idCodecID           = 0x86
	idCodecPrivate      = 0x63A2
	idSeekPreRoll       = 0x56BB
	idVideo             = 0xE0
	idPixelWidth        = 0xB0
	idPixelHeight       = 0xBA
	idAudio             = 0xE1
	idSamplingFrequency = 0xB5
	idChannels          = 0x9F

	idCluster     = 0x1F43B675
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3

	idCues              = 0x1C53BB6B
	idCuePoint          = 0xBB
	idCueTime           = 0xB3
	idCueTrackPositions = 0xB7
	idCueTrack          = 0xF7
	idCueClusterPos     = 0xF1
)

// maxVintValue is the largest size an 8-byte vint can carry (all ones is
// reserved for "unknown").
const maxVintValue = 1<<56 - 2

// unknownSize is the 8-byte vint meaning "size unknown": the element runs
// until a parent ends or an element that cannot be its child starts.
var unknownSize = [8]byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// vintLen is the number of bytes of the shortest vint that holds n.
func vintLen(n uint64) int {
	l := 1
	// a vint of l bytes carries 7*l bits; all ones is reserved
	for l < 8 && n >= 1<<(7*l)-1 {
		l++
	}
	return l
}

// putVint writes n as a vint of exactly len(b) bytes (1..8).
func putVint(b []byte, n uint64) {
	l := len(b)
	for i := l - 1; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	b[0] |= 0x80 >> (l - 1)
}

// appendVint appends n as the shortest vint.
func appendVint(b []byte, n uint64) []byte {
	return appendVintN(b, n, vintLen(n))
}

// appendVintN appends n as a vint of l bytes.
func appendVintN(b []byte, n uint64, l int) []byte {
	var tmp [8]byte
	putVint(tmp[:l], n)
	return append(b, tmp[:l]...)
}

// appendID appends an element ID (1 to 4 bytes, marker included).
func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	default:
		return append(b, byte(id))
	}
}

// idLen is the encoded length of an element ID.
func idLen(id uint32) int {
	switch {
	case id >= 1<<24:
		return 4
	case id >= 1<<16:
		return 3
	case id >= 1<<8:
		return 2
	default:
		return 1
	}
}

// appendUint appends an unsigned integer element in its shortest form.
func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	return appendUintN(b, id, v, n)
}

// appendUintN appends an unsigned integer element of exactly n bytes, so
// that it can be patched later in place.
func appendUintN(b []byte, id uint32, v uint64, n int) []byte {
	b = appendID(b, id)
	b = appendVint(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendInt appends a signed integer element (8 bytes, two's complement).
func appendInt(b []byte, id uint32, v int64) []byte {
	b = appendID(b, id)
	b = appendVint(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// appendFloat appends a 64-bit float element.
func appendFloat(b []byte, id uint32, v float64) []byte {
	b = appendID(b, id)
	b = appendVint(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// appendString appends a string (ASCII or UTF-8) element.
func appendString(b []byte, id uint32, s string) []byte {
	b = appendID(b, id)
	b = appendVint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBinary appends a binary element.
func appendBinary(b []byte, id uint32, data []byte) []byte {
	b = appendID(b, id)
	b = appendVint(b, uint64(len(data)))
	return append(b, data...)
}

// appendMaster appends a master element whose children fill appends. The
// size is computed afterwards and written in its shortest form.
func appendMaster(b []byte, id uint32, fill func([]byte) []byte) []byte {
	b = appendID(b, id)
	at := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // room for the longest size
	b = fill(b)
	n := uint64(len(b) - at - 8)
	l := vintLen(n)
	putVint(b[at:at+l], n)
	copy(b[at+l:], b[at+8:])
	return b[:len(b)-(8-l)]
}

// appendUnknownMaster appends the header of a master element of unknown
// size (its children follow).
func appendUnknownMaster(b []byte, id uint32) []byte {
	b = appendID(b, id)
	return append(b, unknownSize[:]...)
}

// appendVoid appends a Void element occupying exactly total bytes
// (total >= 2), to reserve room for an element written later.
func appendVoid(b []byte, total int) []byte {
	if total < 2 {
		panic("recorder: a Void element needs at least 2 bytes")
	}
	// the size vint grows with the size; pick the length that adds up
	for l := 1; l <= 8; l++ {
		n := total - 1 - l
		if n >= 0 && vintLen(uint64(n)) <= l {
			b = append(b, idVoid)
			b = appendVintN(b, uint64(n), l)
			return append(b, make([]byte, n)...)
		}
	}
	panic("recorder: Void size out of range")
}

// blockHeaderLen is the length of a SimpleBlock's payload prefix: track
// number (1-byte vint, tracks 1..126), int16 timecode, flags.
const blockHeaderLen = 4

// SimpleBlock flags.
const (
	blockKeyframe = 0x80
)

// appendSimpleBlock appends a SimpleBlock of track (1..126) at rel ms from
// the cluster's timecode.
func appendSimpleBlock(b []byte, track int, rel int16, key bool, data []byte) []byte {
	b = appendID(b, idSimpleBlock)
	b = appendVint(b, uint64(blockHeaderLen+len(data)))
	var flags byte
	if key {
		flags |= blockKeyframe
	}
	b = append(b, 0x80|byte(track), byte(uint16(rel)>>8), byte(uint16(rel)), flags)
	return append(b, data...)
}
