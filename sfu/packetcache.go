package sfu

import (
	"sync"
)

// maxPacketSize is the largest RTP packet the cache stores. Larger packets are
// not forwarded (they would not fit an MTU anyway).
const maxPacketSize = 1500

// CachedPacket is the header data the SFU needs from a stored packet. The
// payload is copied separately into a caller-owned buffer.
type CachedPacket struct {
	SeqNum      uint16
	Timestamp   uint32
	Marker      bool
	PayloadType uint8
	PaddingSize uint8
	// Keyframe marks the first packet of a keyframe (a decoder can start here).
	Keyframe bool
	// FrameStart marks the first packet of a frame.
	FrameStart bool
	// Arrival is when the packet reached the SFU (unix nanoseconds).
	Arrival int64
}

type cacheSlot struct {
	mu      sync.RWMutex
	valid   bool
	hdr     CachedPacket
	n       int
	payload [maxPacketSize]byte
}

// PacketCache is a ring of recent packets of one publisher stream. It is the
// single copy of each packet: fan-out and retransmissions both read from it.
// Put is called by the stream's reader goroutine only; Get may be called by any
// number of writers concurrently. Each slot has its own lock so that writers
// copying one packet do not contend with the reader storing the next.
type PacketCache struct {
	slots []cacheSlot
	mask  uint16
}

// NewPacketCache returns a cache holding the last size packets; size is
// rounded up to a power of two between 16 and 32768.
func NewPacketCache(size int) *PacketCache {
	n := 16
	for n < size && n < 32768 {
		n <<= 1
	}
	return &PacketCache{slots: make([]cacheSlot, n), mask: uint16(n - 1)}
}

// Size is the number of packets the cache can hold.
func (c *PacketCache) Size() int { return len(c.slots) }

// Put stores a packet's header fields and payload (without padding). Payloads
// larger than maxPacketSize are refused.
func (c *PacketCache) Put(hdr CachedPacket, payload []byte) bool {
	if len(payload) > maxPacketSize {
		return false
	}
	s := &c.slots[hdr.SeqNum&c.mask]
	s.mu.Lock()
	s.valid = true
	s.hdr = hdr
	s.n = copy(s.payload[:], payload)
	s.mu.Unlock()
	return true
}

// Get copies the payload of packet seq into dst and returns its header and the
// payload length. ok is false when the packet has been overwritten or never
// stored, or dst is too small.
func (c *PacketCache) Get(seq uint16, dst []byte) (hdr CachedPacket, n int, ok bool) {
	s := &c.slots[seq&c.mask]
	s.mu.RLock()
	if s.valid && s.hdr.SeqNum == seq && len(dst) >= s.n {
		hdr, n, ok = s.hdr, copy(dst, s.payload[:s.n]), true
	}
	s.mu.RUnlock()
	return hdr, n, ok
}

// Header returns the header of packet seq, if the cache holds it.
func (c *PacketCache) Header(seq uint16) (hdr CachedPacket, ok bool) {
	s := &c.slots[seq&c.mask]
	s.mu.RLock()
	if s.valid && s.hdr.SeqNum == seq {
		hdr, ok = s.hdr, true
	}
	s.mu.RUnlock()
	return hdr, ok
}
