package server_test

import (
	"testing"
	"time"

	"github.com/pion/rtp/codecs"

	"github.com/chorus-sfu/chorus/internal/mediatest"
)

// VP8 temporal layers for the benchmark's publisher (CHORUS_LOSS_TEMPORAL=1).
// Chrome encodes each VP8 simulcast stream (what the web client sends) with
// libwebrtc's default three temporal layers, in a four-frame cycle from each
// keyframe: TL0, TL2, TL1, TL2. A TL0 frame refers to the TL0 before it (or
// the keyframe), the TL1 and the first TL2 to their cycle's TL0, the second
// TL2 to the TL1 before it. Nothing refers to a TL2 frame, and only one TL2
// to a TL1: a receiver that cannot complete one in time skips it (and what
// refers to it) and shows the next frame instead of freezing. Only a lost
// TL0 frame breaks the picture until a keyframe.
//
// Every frame keeps lrDeltaPackets packets (libwebrtc gives the layers
// different shares of the rate; the model does not), so that the rows with
// and without temporal layers differ only by the references.

// lrCycle is the temporal layer of each frame of a cycle.
var lrCycle = [4]uint8{0, 2, 1, 2}

// lrLayering numbers a temporal-layer source's frames; the source's mutex
// guards it.
type lrLayering struct {
	temporal         bool
	since            int // frames since the last keyframe
	lastTL0, lastTL1 uint32
	picID            uint16
	tl0              uint8
}

// lrDesc is what a packet's VP8 payload descriptor says (RFC 7741 section
// 4.2): with ext false, only the S bit.
type lrDesc struct {
	ext   bool
	picID uint16 // 15 bits
	tl0   uint8
	tid   uint8
	sync  bool // Y: refers to TL0 only
}

// next returns frame f's temporal layer, the frame it refers to (-1: none,
// a keyframe) and its descriptor.
func (l *lrLayering) next(f uint32, key bool) (tid uint8, ref int64, d lrDesc) {
	if !l.temporal {
		if key {
			return 0, -1, d
		}
		return 0, int64(f) - 1, d
	}
	if key {
		l.since = 0
	}
	phase := l.since % len(lrCycle)
	l.since++
	tid = lrCycle[phase]
	switch {
	case key:
		ref = -1
	case phase == 3:
		ref = int64(l.lastTL1)
	default:
		ref = int64(l.lastTL0)
	}
	switch tid {
	case 0:
		l.lastTL0 = f
		l.tl0++
	case 1:
		l.lastTL1 = f
	}
	l.picID = (l.picID + 1) & 0x7FFF
	return tid, ref, lrDesc{ext: true, picID: l.picID, tl0: l.tl0, tid: tid, sync: phase == 1 || phase == 2}
}

// put writes the descriptor of packet part of a frame at the start of
// payload and returns its length.
func (d lrDesc) put(payload []byte, part int) int {
	var s byte
	if part == 0 {
		s = 0x10 // S: the frame's first packet
	}
	if !d.ext {
		payload[0] = s
		return 1
	}
	payload[0] = 0x80 | s                                         // X
	payload[1] = 0xE0                                             // I, L, T
	payload[2], payload[3] = 0x80|byte(d.picID>>8), byte(d.picID) // 15-bit picture ID
	payload[4] = d.tl0
	payload[5] = d.tid << 6
	if d.sync {
		payload[5] |= 0x20
	}
	return 6
}

// lrSkipAfter is how long after a frame of layer tid is due the next frame
// that does not refer to it is due: when a receiver shows that one instead.
func lrSkipAfter(tid uint8) time.Duration {
	if tid == 1 {
		return 2 * lrFrameInterval // the TL2 after it refers to it
	}
	return lrFrameInterval
}

func TestLRLayeringFollowsChromesCycle(t *testing.T) {
	l := lrLayering{temporal: true}
	type want struct {
		tid uint8
		ref int64
	}
	got := func(f uint32, key bool) want {
		tid, ref, d := l.next(f, key)
		payload := make([]byte, 32)
		if n := d.put(payload, 0); n != 6 || mediatest.VP8IndexOffset(payload) != 16 {
			t.Fatalf("frame %d: descriptor of %d bytes, index at %d", f, n, mediatest.VP8IndexOffset(payload))
		}
		var vp8 codecs.VP8Packet
		if _, err := vp8.Unmarshal(payload); err != nil || vp8.TID != tid || vp8.PictureID != d.picID || vp8.TL0PICIDX != d.tl0 || vp8.S != 1 {
			t.Fatalf("frame %d: descriptor %x read as %+v (%v)", f, payload[:6], vp8, err)
		}
		return want{tid, ref}
	}
	wants := []want{{0, -1}, {2, 0}, {1, 0}, {2, 2}, {0, 0}, {2, 4}, {1, 4}}
	for f, w := range wants {
		if g := got(uint32(f), f == 0); g != w {
			t.Fatalf("frame %d: layer %d ref %d, want %d %d", f, g.tid, g.ref, w.tid, w.ref)
		}
	}
	// a keyframe starts a new cycle
	for f, w := range []want{{0, -1}, {2, 7}, {1, 7}} {
		if g := got(uint32(7+f), f == 0); g != w {
			t.Fatalf("frame %d: layer %d ref %d, want %d %d", 7+f, g.tid, g.ref, w.tid, w.ref)
		}
	}
	var plain lrLayering
	payload := make([]byte, 32)
	if tid, ref, d := plain.next(5, false); tid != 0 || ref != 4 || d.put(payload, 0) != 1 || mediatest.VP8IndexOffset(payload) != 11 {
		t.Fatalf("without temporal layers: layer %d ref %d, index at %d", tid, ref, mediatest.VP8IndexOffset(payload))
	}
}
