package fec

import "encoding/binary"

// MutableExtension names an RTP header extension element whose value is
// written after FEC is computed (by a pacer or a transport interceptor), so
// both ends leave it out of the FEC computation by zeroing it. libwebrtc's
// ULPFEC receiver zeroes, in every received media packet before using it for
// recovery, the whole of transport-wide-cc (both versions), toffset and
// abs-send-time, and the video-timing extension from byte 7 (the pacer-exit
// delta) on. A sender that does not zero the same bytes produces FEC that
// Chrome cannot use, so configure the negotiated IDs (see LibwebrtcMutable).
type MutableExtension struct {
	ID   uint8 // negotiated extension ID (1-14 one-byte form, 1-255 two-byte form)
	From uint8 // first byte of the element's data to zero; 0 zeroes all of it
}

// Header extension URIs whose values libwebrtc treats as mutable.
const (
	URITransportCC   = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
	URITransportCC02 = "http://www.webrtc.org/experiments/rtp-hdrext/transport-wide-cc-02"
	URITimeOffset    = "urn:ietf:params:rtp-hdrext:toffset"
	URIAbsSendTime   = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
	URIVideoTiming   = "http://www.webrtc.org/experiments/rtp-hdrext/video-timing"

	videoTimingPacerExitOffset = 7
)

// LibwebrtcMutable returns the mutable extensions among the negotiated ones
// (URI -> ID, as in the SDP extmap lines), matching what libwebrtc zeroes.
func LibwebrtcMutable(negotiated map[string]int) []MutableExtension {
	var out []MutableExtension
	for uri, id := range negotiated {
		if id <= 0 || id > 255 {
			continue
		}
		switch uri {
		case URITransportCC, URITransportCC02, URITimeOffset, URIAbsSendTime:
			out = append(out, MutableExtension{ID: uint8(id)})
		case URIVideoTiming:
			out = append(out, MutableExtension{ID: uint8(id), From: videoTimingPacerExitOffset})
		}
	}
	return out
}

// zeroMutable zeroes, in place, the data of the mutable extension elements of
// an RTP packet. Malformed extension blocks are left as they are (the packet
// is protected byte for byte; a receiver parsing the same bytes stops at the
// same place).
func zeroMutable(pkt []byte, muts []MutableExtension) {
	if len(muts) == 0 || len(pkt) < rtpHeaderLen || pkt[0]&0x10 == 0 {
		return
	}
	off := rtpHeaderLen + 4*int(pkt[0]&0x0F)
	if len(pkt) < off+4 {
		return
	}
	profile := binary.BigEndian.Uint16(pkt[off:])
	start := off + 4
	end := start + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	if end > len(pkt) {
		return
	}
	switch {
	case profile == 0xBEDE: // one-byte elements (RFC 8285 section 4.2)
		for i := start; i < end; {
			id := pkt[i] >> 4
			if id == 0 { // padding
				i++
				continue
			}
			if id == 15 { // reserved: stop parsing
				return
			}
			n := int(pkt[i]&0x0F) + 1
			data := i + 1
			if data+n > end {
				return
			}
			zeroElement(pkt[data:data+n], id, muts)
			i = data + n
		}
	case profile&0xFFF0 == 0x1000: // two-byte elements (RFC 8285 section 4.3)
		for i := start; i < end; {
			id := pkt[i]
			if id == 0 {
				i++
				continue
			}
			if i+1 >= end {
				return
			}
			n := int(pkt[i+1])
			data := i + 2
			if data+n > end {
				return
			}
			zeroElement(pkt[data:data+n], id, muts)
			i = data + n
		}
	}
}

func zeroElement(data []byte, id uint8, muts []MutableExtension) {
	for _, m := range muts {
		if m.ID == id {
			if int(m.From) < len(data) {
				clear(data[m.From:])
			}
			return
		}
	}
}
