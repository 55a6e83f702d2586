package sfu

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

func TestPacketCacheStoresAndEvicts(t *testing.T) {
	c := NewPacketCache(100)
	if c.Size() != 128 {
		t.Fatalf("size %d, want 128 (next power of two)", c.Size())
	}
	buf := make([]byte, maxPacketSize)
	for i := 0; i < 300; i++ {
		seq := uint16(65500 + i) // wraps around 65535
		if !c.Put(CachedPacket{SeqNum: seq, Timestamp: uint32(i)}, []byte{byte(i), 1, 2}) {
			t.Fatal("put refused")
		}
	}
	// the last 128 are present, older ones are gone
	for i := 0; i < 300; i++ {
		seq := uint16(65500 + i)
		hdr, n, ok := c.Get(seq, buf)
		want := i >= 300-128
		if ok != want {
			t.Fatalf("seq %d: present=%v, want %v", seq, ok, want)
		}
		if ok && (hdr.Timestamp != uint32(i) || !bytes.Equal(buf[:n], []byte{byte(i), 1, 2})) {
			t.Fatalf("seq %d: wrong packet %+v %v", seq, hdr, buf[:n])
		}
	}
}

func TestPacketCacheRejects(t *testing.T) {
	c := NewPacketCache(16)
	if c.Put(CachedPacket{SeqNum: 1}, make([]byte, maxPacketSize+1)) {
		t.Fatal("oversized payload accepted")
	}
	if _, _, ok := c.Get(1, make([]byte, 10)); ok {
		t.Fatal("missing packet found")
	}
	c.Put(CachedPacket{SeqNum: 2}, make([]byte, 100))
	if _, _, ok := c.Get(2, make([]byte, 10)); ok {
		t.Fatal("packet copied into a too small buffer")
	}
	if _, _, ok := c.Get(2+16, make([]byte, 200)); ok {
		t.Fatal("a different sequence number in the same slot was returned")
	}
}

func TestParseRTP(t *testing.T) {
	// header with CSRC, one-byte extension and padding
	b := []byte{
		0xB1, 0xE0, 0x12, 0x34, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD, // V=2 P X CC=1, M, PT=96
		1, 2, 3, 4, // CSRC
		0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0, // extension, 1 word
		7, 8, 9, // payload
		0, 0, 3, // padding of 3
	}
	r, err := parseRTP(b)
	if err != nil {
		t.Fatal(err)
	}
	if !r.marker || r.payloadType != 96 || r.seq != 0x1234 || r.timestamp != 9 || r.ssrc != 0xAABBCCDD ||
		!bytes.Equal(r.payload, []byte{7, 8, 9}) || r.paddingSize != 3 {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range [][]byte{nil, make([]byte, 11), {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, b[:18], append(b[:24:24], 0, 0, 0, 50)} {
		if _, err := parseRTP(bad); err == nil {
			t.Fatalf("accepted %x", bad)
		}
	}
}

func FuzzParseRTP(f *testing.F) {
	f.Add([]byte{0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x10, 0})
	f.Add([]byte{0xB1, 0xE0, 0x12, 0x34, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD, 1, 2, 3, 4, 0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0, 7, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRTP(b)
		if err != nil {
			return
		}
		if len(r.payload) > len(b) {
			t.Fatal("payload longer than packet")
		}
		for _, kf := range []keyframeFunc{isVP8Keyframe, isVP9Keyframe, isH264Keyframe} {
			kf(r.payload)
		}
	})
}

func TestKeyframeDetection(t *testing.T) {
	cases := []struct {
		name string
		f    keyframeFunc
		p    []byte
		want bool
	}{
		{"vp8 key", isVP8Keyframe, []byte{0x10, 0x00}, true},
		{"vp8 delta", isVP8Keyframe, []byte{0x10, 0x01}, false},
		{"vp8 not start", isVP8Keyframe, []byte{0x00, 0x00}, false},
		{"vp8 key with picture id", isVP8Keyframe, []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"vp8 delta with pid tl0 tid", isVP8Keyframe, []byte{0x90, 0xE0, 0x05, 0x01, 0x20, 0x01}, false},
		{"vp8 truncated", isVP8Keyframe, []byte{0x90, 0x80}, false},
		{"vp9 key", isVP9Keyframe, []byte{0x08}, true},
		{"vp9 inter", isVP9Keyframe, []byte{0x48}, false},
		{"vp9 key upper spatial layer", isVP9Keyframe, []byte{0xA8, 0x01, 0x02}, false},
		{"h264 idr", isH264Keyframe, []byte{0x65}, true},
		{"h264 sps", isH264Keyframe, []byte{0x67}, true},
		{"h264 slice", isH264Keyframe, []byte{0x41}, false},
		{"h264 stap-a with sps", isH264Keyframe, []byte{0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68}, true},
		{"h264 stap-a bad size", isH264Keyframe, []byte{0x78, 0, 9, 0x67}, false},
		{"h264 fu-a idr start", isH264Keyframe, []byte{0x7C, 0x85}, true},
		{"h264 fu-a idr middle", isH264Keyframe, []byte{0x7C, 0x05}, false},
	}
	for _, c := range cases {
		if got := c.f(c.p); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRTTFromReport(t *testing.T) {
	now := time.Unix(1_800_000_000, 250_000_000)
	ntpMid := func(at time.Time) uint32 {
		secs := uint64(at.Unix()) + 2208988800
		frac := uint64(at.Nanosecond()) << 32 / 1e9
		return uint32((secs<<32 | frac) >> 16)
	}
	// SR sent 300 ms ago, held 100 ms by the receiver: RTT 200 ms
	rr := rtcp.ReceptionReport{LastSenderReport: ntpMid(now.Add(-300 * time.Millisecond)), Delay: 65536 / 10}
	rtt, ok := rttFromReport(rr, now)
	if !ok || rtt < 199*time.Millisecond || rtt > 201*time.Millisecond {
		t.Fatalf("rtt %v %v, want 200 ms", rtt, ok)
	}
	if _, ok := rttFromReport(rtcp.ReceptionReport{}, now); ok {
		t.Fatal("no sender report yet: no RTT")
	}
	if _, ok := rttFromReport(rtcp.ReceptionReport{LastSenderReport: ntpMid(now.Add(time.Hour))}, now); ok {
		t.Fatal("a report from the future gave an RTT")
	}
}
