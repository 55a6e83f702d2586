package fec

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
)

// Decoder defaults.
const (
	DefaultWindow = 256 // media packets remembered
	DefaultMaxFEC = 48  // FEC packets waiting for their group
)

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// Window is the number of recent media packets kept for recovery,
	// rounded up to a power of two; at least 64 (a group spans up to 48
	// sequence numbers, plus reordering). 0 means DefaultWindow. Memory is
	// about Window times the largest packet.
	Window int
	// MaxFEC bounds the FEC packets kept while their group is incomplete;
	// the oldest is dropped first. 0 means DefaultMaxFEC.
	MaxFEC int
	// Mutable lists header extension elements zeroed in received media
	// packets before they are used, as the FEC sender did (libwebrtc senders
	// compute FEC with them zeroed; see MutableExtension). Recovered packets
	// carry these elements zeroed.
	Mutable []MutableExtension
}

// DecoderStats counts what a Decoder saw and did.
type DecoderStats struct {
	Media     uint64 // media packets added (duplicates and late ones excluded)
	FEC       uint64 // FEC packets accepted
	Recovered uint64 // media packets rebuilt
	Failed    uint64 // recoveries rejected (inconsistent FEC or packets)
	Expired   uint64 // FEC packets dropped unused (group out of the window or too many FEC)
}

type mediaSlot struct {
	seq uint16
	ok  bool
	buf []byte
}

type fecSlot struct {
	used    bool
	seq     uint16 // the FEC packet's own sequence number
	ssrc    uint32
	order   uint64 // arrival order, for eviction
	hdr     Header
	payload []byte // level 0 payload (copy)
}

// Decoder recovers lost media packets from received media packets and
// ULPFEC packets (RFC 5109 level 0), like libwebrtc's ULPFEC receiver: a FEC
// packet whose protected packets are all present but one rebuilds that one
// (header fields P, X, CC, M, PT, timestamp, length, and every byte after the
// fixed header; the sequence number comes from the mask and the SSRC from the
// FEC packet, as with ULPFEC in RED). Recovered packets are used in turn, so
// losses can be repaired in cascade. Memory is bounded by Window media
// packets and MaxFEC FEC packets.
//
// Inputs are plain RTP media packets and ULPFEC payloads, already out of RED
// (see UnwrapREDPacket). A Decoder is not safe for concurrent use.
type Decoder struct {
	slots   []mediaSlot
	mask    uint16
	newest  uint16
	started bool

	fecs  []fecSlot
	order uint64

	muts  []MutableExtension
	stats DecoderStats
}

// NewDecoder returns a Decoder.
func NewDecoder(cfg DecoderConfig) *Decoder {
	w := cfg.Window
	if w <= 0 {
		w = DefaultWindow
	}
	w = max(w, 64)
	w = min(w, 1<<14)
	w = 1 << bits.Len(uint(w-1)) // next power of two
	f := cfg.MaxFEC
	if f <= 0 {
		f = DefaultMaxFEC
	}
	return &Decoder{
		slots: make([]mediaSlot, w),
		mask:  uint16(w - 1),
		fecs:  make([]fecSlot, f),
		muts:  append([]MutableExtension(nil), cfg.Mutable...),
	}
}

// Stats returns the counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Reset forgets every packet.
func (d *Decoder) Reset() {
	for i := range d.slots {
		d.slots[i].ok = false
	}
	for i := range d.fecs {
		d.fecs[i].used = false
	}
	d.started = false
}

// AddMedia adds a received media packet (a whole RTP packet; the Decoder
// copies it) and returns the packets it allowed to recover, newly allocated.
// Duplicates, packets already recovered and packets older than the window
// are ignored.
func (d *Decoder) AddMedia(pkt []byte) ([][]byte, error) {
	if len(pkt) < rtpHeaderLen || pkt[0]>>6 != 2 {
		return nil, ErrBadRTP
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	if !d.advance(seq) {
		return nil, nil
	}
	s := &d.slots[seq&d.mask]
	if s.ok && s.seq == seq {
		return nil, nil // duplicate, or already recovered
	}
	s.seq, s.ok = seq, true
	s.buf = append(s.buf[:0], pkt...)
	zeroMutable(s.buf, d.muts)
	d.stats.Media++
	return d.attempt(), nil
}

// AddFEC adds a received ULPFEC payload (what follows the RED header) of
// the FEC packet with sequence number seq and SSRC ssrc, and returns the
// packets it allowed to recover, newly allocated. Recovered packets get
// ssrc as their SSRC (with ULPFEC in RED, FEC and media share the SSRC).
// fec is copied.
func (d *Decoder) AddFEC(seq uint16, ssrc uint32, fec []byte) ([][]byte, error) {
	h, payload, err := ParseHeader(fec)
	if err != nil {
		return nil, err
	}
	if h.Mask == 0 {
		return nil, ErrEmptyMask
	}
	oldest := -1
	free := -1
	for i := range d.fecs {
		f := &d.fecs[i]
		if !f.used {
			if free < 0 {
				free = i
			}
			continue
		}
		if f.seq == seq && f.ssrc == ssrc {
			return nil, nil // duplicate
		}
		if oldest < 0 || f.order < d.fecs[oldest].order {
			oldest = i
		}
	}
	if free < 0 {
		free = oldest
		d.stats.Expired++
	}
	f := &d.fecs[free]
	d.order++
	f.used, f.seq, f.ssrc, f.order, f.hdr = true, seq, ssrc, d.order, h
	f.payload = append(f.payload[:0], payload...)
	d.stats.FEC++
	return d.attempt(), nil
}

// advance records seq as seen and reports whether a media packet with this
// sequence number is recent enough to keep.
func (d *Decoder) advance(seq uint16) bool {
	if !d.started {
		d.started, d.newest = true, seq
		return true
	}
	diff := int(int16(seq - d.newest))
	w := len(d.slots)
	switch {
	case diff > 0:
		if diff >= w { // everything stored is out of the window
			for i := range d.slots {
				d.slots[i].ok = false
			}
		}
		d.newest = seq
	case -diff >= restartGap: // a restarted stream, not a late packet
		d.Reset()
		d.started, d.newest = true, seq
	case -diff >= w:
		return false // too late to be of use
	}
	return true
}

// present reports whether media packet seq is stored, and whether its
// presence can be known at all (its slot may hold a newer packet).
func (d *Decoder) present(seq uint16) (have, known bool) {
	s := &d.slots[seq&d.mask]
	if s.ok && s.seq == seq {
		return true, true
	}
	if d.started {
		back := int(int16(d.newest - seq))
		if back >= len(d.slots) {
			return false, false
		}
	}
	return false, true
}

// attempt recovers what the stored FEC packets allow, repeatedly (a
// recovered packet may complete another FEC packet's group).
func (d *Decoder) attempt() [][]byte {
	var out [][]byte
	for again := true; again; {
		again = false
		for i := range d.fecs {
			f := &d.fecs[i]
			if !f.used {
				continue
			}
			missing, lost, unknown := 0, uint16(0), false
			for m := f.hdr.Mask; m != 0; m &= m - 1 {
				seq := f.hdr.SNBase + uint16(bits.TrailingZeros64(m))
				have, known := d.present(seq)
				if !known {
					unknown = true
					break
				}
				if !have {
					missing++
					lost = seq
					if missing > 1 {
						break
					}
				}
			}
			switch {
			case unknown:
				f.used = false
				d.stats.Expired++
			case missing == 0:
				f.used = false
			case missing == 1:
				f.used = false
				if p := d.rebuild(f, lost); p != nil {
					d.store(lost, p)
					out = append(out, p)
					d.stats.Recovered++
					again = true
				} else {
					d.stats.Failed++
				}
			}
		}
	}
	return out
}

// store keeps a recovered packet so that it can serve further recoveries.
func (d *Decoder) store(seq uint16, p []byte) {
	if int(int16(seq-d.newest)) > 0 {
		d.advance(seq)
	}
	s := &d.slots[seq&d.mask]
	s.seq, s.ok = seq, true
	s.buf = append(s.buf[:0], p...)
}

// rebuild XORs the FEC packet with its present protected packets (RFC 5109
// section 10.1) and returns the missing packet, or nil if the result is not
// a consistent RTP packet.
func (d *Decoder) rebuild(f *fecSlot, seq uint16) []byte {
	h := &f.hdr
	plen := int(h.ProtectionLength)
	var b0, b1 byte
	if h.PRecovery {
		b0 |= 0x20
	}
	if h.XRecovery {
		b0 |= 0x10
	}
	b0 |= h.CCRecovery
	if h.MRecovery {
		b1 |= 0x80
	}
	b1 |= h.PTRecovery
	ts := h.TSRecovery
	length := h.LengthRecovery

	p := make([]byte, rtpHeaderLen+plen)
	copy(p[rtpHeaderLen:], f.payload)
	for m := h.Mask; m != 0; m &= m - 1 {
		s := h.SNBase + uint16(bits.TrailingZeros64(m))
		if s == seq {
			continue
		}
		q := d.slots[s&d.mask].buf
		body := q[rtpHeaderLen:]
		if len(body) > plen {
			return nil // not covered by level 0: cannot be undone
		}
		b0 ^= q[0]
		b1 ^= q[1]
		ts ^= binary.BigEndian.Uint32(q[4:])
		length ^= uint16(len(body))
		if len(body) > 0 {
			subtle.XORBytes(p[rtpHeaderLen:rtpHeaderLen+len(body)], p[rtpHeaderLen:rtpHeaderLen+len(body)], body)
		}
	}
	if int(length) > plen {
		return nil
	}
	p = p[:rtpHeaderLen+int(length)]
	p[0] = 0x80 | b0&0x3F
	p[1] = b1
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], f.ssrc)
	if _, _, err := rtpBounds(p); err != nil {
		return nil
	}
	return p
}
