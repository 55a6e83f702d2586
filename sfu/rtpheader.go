package sfu

import (
	"encoding/binary"
	"errors"
)

// ErrBadRTP is returned for packets that are not valid RTP.
var ErrBadRTP = errors.New("sfu: malformed RTP packet")

// rtpInfo is what the forwarding path needs from an incoming RTP header.
type rtpInfo struct {
	marker      bool
	payloadType uint8
	seq         uint16
	timestamp   uint32
	ssrc        uint32
	payload     []byte // without header, extensions and padding
	paddingSize uint8
}

// parseRTP reads an RTP header without allocating. Header extensions are
// skipped: they are hop-by-hop and renegotiated on every leg.
func parseRTP(b []byte) (rtpInfo, error) {
	var r rtpInfo
	if len(b) < 12 || b[0]>>6 != 2 {
		return r, ErrBadRTP
	}
	cc := int(b[0] & 0x0F)
	n := 12 + 4*cc
	if len(b) < n {
		return r, ErrBadRTP
	}
	if b[0]&0x10 != 0 { // extension
		if len(b) < n+4 {
			return r, ErrBadRTP
		}
		extLen := int(binary.BigEndian.Uint16(b[n+2:])) * 4
		n += 4 + extLen
		if len(b) < n {
			return r, ErrBadRTP
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding
		pad := int(b[end-1])
		if pad == 0 || end-pad < n {
			return r, ErrBadRTP
		}
		end -= pad
		r.paddingSize = uint8(pad)
	}
	r.marker = b[1]&0x80 != 0
	r.payloadType = b[1] & 0x7F
	r.seq = binary.BigEndian.Uint16(b[2:])
	r.timestamp = binary.BigEndian.Uint32(b[4:])
	r.ssrc = binary.BigEndian.Uint32(b[8:])
	r.payload = b[n:end]
	return r, nil
}
