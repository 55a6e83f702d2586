// Package bitstream reads the bit fields of codec headers (VP9 frame
// headers, H.264 parameter sets).
package bitstream

// Reader reads big-endian bit fields. Reading past the end sets Err and
// returns zeros, so a parser can read a whole structure and check Err once.
type Reader struct {
	b   []byte
	pos int // in bits
	err bool
}

// NewReader reads b from its first bit.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err reports whether a read went past the end (or a code was malformed).
func (r *Reader) Err() bool { return r.err }

// Fail marks the data malformed.
func (r *Reader) Fail() { r.err = true }

// U reads an n-bit unsigned value, n <= 32.
func (r *Reader) U(n int) uint32 {
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

// UE reads an unsigned Exp-Golomb value (H.264 9.1). Codes longer than 32
// bits set Err.
func (r *Reader) UE() uint32 {
	zeros := 0
	for r.U(1) == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.U(zeros)
}

// SE reads a signed Exp-Golomb value (H.264 9.1.1).
func (r *Reader) SE() int32 {
	k := r.UE()
	if k&1 == 1 {
		return int32((k + 1) / 2)
	}
	return -int32(k / 2)
}

// UnescapeRBSP removes the emulation prevention bytes (0x03 after two zero
// bytes) of a NAL unit payload. It returns b itself when there are none.
func UnescapeRBSP(b []byte) []byte {
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
