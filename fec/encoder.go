package fec

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"github.com/pion/rtp"
)

// ErrOutOfOrder is returned by Encoder.Add for a packet whose sequence
// number is not newer than the previous one (a retransmission, say). The
// packet is not protected; the current group is unaffected.
var ErrOutOfOrder = errors.New("fec: media packet not newer than the previous one")

// DefaultMaxFrames is the default EncoderConfig.MaxFrames.
const DefaultMaxFrames = 3

// restartGap is how far back a sequence number must jump for the encoder
// (and the decoder) to take it for a restarted stream rather than a late
// packet.
const restartGap = 2048

// EncoderConfig configures an Encoder.
type EncoderConfig struct {
	// Protection is the initial protection level (zero: off).
	Protection Protection
	// MaxFrames bounds the frames one group spans: at the end of the
	// MaxFrames-th frame the group closes with at least one FEC packet even
	// if it has not earned one yet (see Encoder). 0 means DefaultMaxFrames;
	// negative means no bound.
	MaxFrames int
	// Mutable lists header extension elements zeroed in the FEC input, the
	// way the receiver zeroes them (see MutableExtension).
	Mutable []MutableExtension
	// Format is the FEC packets' format (default ULPFEC). FlexFEC03 needs
	// SSRC, the protected stream's.
	Format Format
	SSRC   uint32
}

// EncoderStats counts what an Encoder protected and produced.
type EncoderStats struct {
	MediaPackets uint64 // packets protected
	MediaBytes   uint64 // their sizes (whole RTP packets, before RED)
	FECPackets   uint64
	FECBytes     uint64 // FEC payload bytes (no RTP or RED header)
	Groups       uint64
}

// Encoder produces ULPFEC (RFC 5109, level 0 only), or FlexFEC-03 with
// EncoderConfig.Format (flexfec.go: the same groups and XOR, another
// header), for one media stream.
//
// Media packets are added one at a time, in sequence order, exactly as they
// are sent (after sequence number and timestamp rewriting, with the media
// payload type and header extensions as they go on the wire, before RED
// encapsulation). They are collected into a group, and when the group closes
// Add returns the FEC packets protecting it. A group closes:
//
//   - when it holds Group packets (mid-frame if need be): Protection.FEC
//     FEC packets;
//   - at the end of a frame (marker bit) once the group has earned a whole
//     FEC packet (n*FEC >= Group for n packets): round(n*FEC/Group) FEC
//     packets. Small frames are thus merged into one group instead of each
//     costing a FEC packet (a one-packet frame at 1/10 would otherwise cost
//     100 %), and large groups are not held across frames longer than needed;
//   - at the end of the MaxFrames-th frame of the group: max(1,
//     round(n*FEC/Group)) FEC packets, which bounds how long the first
//     frame of a group waits for its FEC;
//   - when the next packet would fall outside the 48-packet mask, or on Flush.
//
// Masks: with m FEC packets over n media packets, media packet i of the group
// is protected by FEC packet i mod m (interleaving). Each media packet is in
// exactly one FEC packet, so any single loss in the group is recovered, and
// m consecutive media packets are all in different FEC packets, so any burst
// of up to m losses is recovered too. (A block of consecutive packets per FEC
// packet would recover the same number of random losses but no bursts.)
// Each FEC packet's SN base is the lowest sequence number it protects and its
// L bit is set only if its own span exceeds 16 sequence numbers.
//
// A ULPFEC packet must be sent as RED (block PT = the ulpfec payload type)
// on the media SSRC with its own sequence number from the same sequence
// space as the media, after the packets it protects; see the package
// documentation. A FlexFEC-03 packet goes on its own stream.
//
// An Encoder is not safe for concurrent use. It does not allocate once its
// buffers have grown to the largest packet and group seen.
type Encoder struct {
	prot      Protection
	maxFrames int
	muts      []MutableExtension
	format    Format
	ssrc      uint32

	pkts    [MaxGroupSize][]byte // copies of the group's packets
	offs    [MaxGroupSize]uint16 // their offsets from base
	n       int
	base    uint16
	last    uint16
	started bool // last is valid
	frames  int

	out   [MaxGroupSize + 1][]byte // FEC payload buffers
	res   [][]byte
	stats EncoderStats
}

// NewEncoder returns an Encoder.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.Protection.Validate(); err != nil {
		return nil, err
	}
	if cfg.Format != ULPFEC && cfg.Format != FlexFEC03 {
		return nil, ErrFormat
	}
	e := &Encoder{
		prot:      cfg.Protection,
		maxFrames: cfg.MaxFrames,
		muts:      append([]MutableExtension(nil), cfg.Mutable...),
		format:    cfg.Format,
		ssrc:      cfg.SSRC,
		res:       make([][]byte, 0, MaxGroupSize+1),
	}
	if e.maxFrames == 0 {
		e.maxFrames = DefaultMaxFrames
	}
	return e, nil
}

// SetProtection changes the protection level to fecPerGroup FEC packets per
// groupSize media packets (fecPerGroup 0: off, which drops the open group).
// It applies from the next group close (the open group keeps its packets).
func (e *Encoder) SetProtection(fecPerGroup, groupSize int) error {
	p := Protection{FEC: fecPerGroup, Group: groupSize}
	if p.FEC == 0 {
		p = Protection{}
	}
	if err := p.Validate(); err != nil {
		return err
	}
	e.prot = p
	if p.Off() {
		e.n, e.frames = 0, 0
	}
	return nil
}

// Protection returns the current protection level.
func (e *Encoder) Protection() Protection { return e.prot }

// Stats returns the counters.
func (e *Encoder) Stats() EncoderStats { return e.stats }

// Reset drops the open group and forgets the last sequence number (for a
// stream that restarts, e.g. after an SSRC change).
func (e *Encoder) Reset() {
	e.n, e.frames, e.started = 0, 0, false
}

// Add protects one media packet (a whole RTP packet, see Encoder). It
// returns the FEC payloads (ULPFEC header and level 0 header, or FlexFEC-03
// header; then the XOR payload) of
// any group this packet closed, in the order to send them. The returned
// slices belong to the Encoder and are valid until its next Add, AddHeader or
// Flush; the packet itself is copied.
func (e *Encoder) Add(pkt []byte) ([][]byte, error) {
	if len(pkt) < rtpHeaderLen || pkt[0]>>6 != 2 || len(pkt)-rtpHeaderLen > 0xFFFF {
		return nil, ErrBadRTP
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	slot, err := e.admit(seq)
	if err != nil || slot < 0 {
		return e.res, err
	}
	e.pkts[slot] = append(e.pkts[slot][:0], pkt...)
	return e.added(slot, pkt[1]&0x80 != 0), nil
}

// AddHeader is Add for a packet given as a header and a payload, the way
// pion writers receive it; RTP padding is taken from h.PaddingSize as pion
// marshals it.
func (e *Encoder) AddHeader(h *rtp.Header, payload []byte) ([][]byte, error) {
	hl := h.MarshalSize()
	pad := int(h.PaddingSize)
	if h.Version != 2 || hl+len(payload)+pad-rtpHeaderLen > 0xFFFF {
		return nil, ErrBadRTP
	}
	slot, err := e.admit(h.SequenceNumber)
	if err != nil || slot < 0 {
		return e.res, err
	}
	size := hl + len(payload) + pad
	b := e.pkts[slot]
	if cap(b) < size {
		b = make([]byte, size, max(size, 1500))
	}
	b = b[:size]
	if _, err := h.MarshalTo(b); err != nil {
		return e.res[:0], err
	}
	copy(b[hl:], payload)
	if pad > 0 {
		clear(b[hl+len(payload):])
		if h.Padding {
			b[size-1] = byte(pad)
		}
	}
	e.pkts[slot] = b
	return e.added(slot, h.Marker), nil
}

// admit checks the sequence number of the next packet, closes the open group
// if the packet cannot join it, and returns the slot the packet goes to (-1
// if FEC is off).
func (e *Encoder) admit(seq uint16) (int, error) {
	e.res = e.res[:0]
	if e.started {
		d := int16(seq - e.last)
		if d <= 0 && d > -restartGap {
			return -1, ErrOutOfOrder
		}
		if e.n > 0 && (d <= 0 || uint16(seq-e.base) >= MaxGroupSize) {
			e.close(e.partialCount()) // restart, or outside the mask
		}
	}
	e.last, e.started = seq, true
	if e.prot.Off() {
		e.n, e.frames = 0, 0
		return -1, nil
	}
	if e.n == 0 {
		e.base = seq
	}
	e.offs[e.n] = uint16(seq - e.base)
	return e.n, nil
}

// added finishes adding the packet now stored in slot and closes the group
// if it is due.
func (e *Encoder) added(slot int, marker bool) [][]byte {
	zeroMutable(e.pkts[slot], e.muts)
	e.n++
	e.stats.MediaPackets++
	e.stats.MediaBytes += uint64(len(e.pkts[slot]))
	k, m := e.prot.Group, e.prot.FEC
	switch {
	case e.n >= k:
		e.close(min(m, e.n))
	case marker:
		e.frames++
		if e.n*m >= k || (e.maxFrames > 0 && e.frames >= e.maxFrames) {
			e.close(e.partialCount())
		}
	}
	return e.res
}

// partialCount is the FEC count for a group closed before it is full:
// round(n*m/k), at least 1 and at most n.
func (e *Encoder) partialCount() int {
	k, m := e.prot.Group, e.prot.FEC
	if k <= 0 || m <= 0 {
		return 1
	}
	c := (2*e.n*m + k) / (2 * k) // round half up
	return max(1, min(c, e.n, m))
}

// Flush closes the open group, if any, and returns its FEC packets (valid
// until the next call, as for Add).
func (e *Encoder) Flush() [][]byte {
	e.res = e.res[:0]
	if e.n > 0 && !e.prot.Off() {
		e.close(e.partialCount())
	}
	return e.res
}

// close computes count FEC packets over the open group, appends them to
// e.res and empties the group.
func (e *Encoder) close(count int) {
	n := e.n
	e.n, e.frames = 0, 0
	if n == 0 || count <= 0 {
		return
	}
	count = min(count, n)
	e.stats.Groups++
	for j := range count {
		// packets j, j+count, j+2*count, ...: lowest and highest offsets,
		// longest protected length
		lo, hi := e.offs[j], e.offs[j]
		plen := 0
		for i := j; i < n; i += count {
			hi = e.offs[i]
			plen = max(plen, len(e.pkts[i])-rtpHeaderLen)
		}
		long := hi-lo >= shortMaskBits
		hl := FECHeaderLen + LevelHeaderShort
		if long {
			hl = FECHeaderLen + LevelHeaderLong
		}
		flexMask := flexMaskLen(hi - lo)
		if e.format == FlexFEC03 {
			hl = FlexHeaderLen + flexMask
		}
		size := hl + plen
		idx := len(e.res)
		b := e.out[idx]
		if cap(b) < size {
			b = make([]byte, size, max(size, 1500))
		}
		b = b[:size]
		clear(b)
		var mask uint64
		var lenRec uint16
		for i := j; i < n; i += count {
			p := e.pkts[i]
			b[0] ^= p[0]
			b[1] ^= p[1]
			b[4] ^= p[4]
			b[5] ^= p[5]
			b[6] ^= p[6]
			b[7] ^= p[7]
			lenRec ^= uint16(len(p) - rtpHeaderLen)
			if body := p[rtpHeaderLen:]; len(body) > 0 {
				subtle.XORBytes(b[hl:hl+len(body)], b[hl:hl+len(body)], body)
			}
			mask |= 1 << (e.offs[i] - lo)
		}
		if e.format == FlexFEC03 {
			putFlexHeader(b, lenRec, e.ssrc, e.base+lo, mask, flexMask)
		} else {
			b[0] &= 0x3F // E = 0, and drop the XORed version bits
			if long {
				b[0] |= 0x40
			}
			binary.BigEndian.PutUint16(b[2:], e.base+lo)
			binary.BigEndian.PutUint16(b[8:], lenRec)
			binary.BigEndian.PutUint16(b[10:], uint16(plen))
			putMask(b[12:], mask, long)
		}
		e.out[idx] = b
		e.res = append(e.res, b)
		e.stats.FECPackets++
		e.stats.FECBytes += uint64(size)
	}
}
