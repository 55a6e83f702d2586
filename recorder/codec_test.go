package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
)

// x264's SPS for 320x240, constrained baseline (has an emulation
// prevention byte).
var sps320 = []byte{0x67, 0x42, 0xC0, 0x0D, 0xDA, 0x05, 0x07, 0xEC, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
	0x00, 0x00, 0x0F, 0x03, 0xC5, 0x0A, 0xA8}

func TestParseSPS(t *testing.T) {
	s, err := parseSPS(sps320)
	if err != nil {
		t.Fatal(err)
	}
	if s.width != 320 || s.height != 240 || s.profile != 66 {
		t.Fatalf("got %+v", s)
	}
	for i := range sps320 {
		parseSPS(sps320[:i]) // must not panic
	}
	pps := []byte{0x68, 0xCE, 0x0F, 0xC8}
	cfg, _, err := avcConfig(sps320, pps)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1, 0, byte(len(sps320))}, sps320...)
	want = append(append(want, 1, 0, 4), pps...)
	if !bytes.Equal(cfg, want) {
		t.Fatalf("avcC % x\nwant % x", cfg, want)
	}
}

func TestVP8Depacketize(t *testing.T) {
	// keyframe of 320x240 split by pion's payloader (15-bit picture ID)
	key := make([]byte, 3000)
	copy(key, []byte{0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00})
	for i := 10; i < len(key); i++ {
		key[i] = byte(i)
	}
	pay := &codecs.VP8Payloader{EnablePictureID: true}
	pkts := pay.Payload(1200, key)
	if len(pkts) != 3 {
		t.Fatalf("%d packets", len(pkts))
	}
	var f frame
	f.reset(0)
	for _, p := range pkts {
		if err := depacketize(codecVP8, &f, p); err != nil {
			t.Fatal(err)
		}
		f.npkts++
	}
	if !f.start || !f.key || f.width != 320 || f.height != 240 || !bytes.Equal(f.data, key) || f.picBits != 15 {
		t.Fatalf("frame start=%v key=%v %dx%d bits=%d equal=%v", f.start, f.key, f.width, f.height, f.picBits,
			bytes.Equal(f.data, key))
	}
	// the next frame (inter) continues the picture ID
	id := f.picID
	f.reset(1)
	if err := depacketize(codecVP8, &f, pay.Payload(1200, []byte{0x01, 0x02, 0x03})[0]); err != nil {
		t.Fatal(err)
	}
	if f.key || f.picID != (id+1)&0x7FFF {
		t.Fatalf("inter frame key=%v pic %d after %d", f.key, f.picID, id)
	}
	// a frame whose first packet is missing never starts
	f.reset(2)
	depacketize(codecVP8, &f, pkts[1])
	if f.start {
		t.Fatal("continuation packet started a frame")
	}
	// 7-bit picture ID, TL0PICIDX and TID present
	f.reset(3)
	if err := depacketize(codecVP8, &f, []byte{0x90, 0xE0, 0x05, 0x01, 0x40, 0x00}); err != nil {
		t.Fatal(err)
	}
	if !f.start || !f.key || f.picID != 5 || f.picBits != 7 || !bytes.Equal(f.data, []byte{0x00}) {
		t.Fatalf("short descriptor: %+v", f)
	}
	for _, bad := range [][]byte{{}, {0x90}, {0x90, 0x80}, {0x90, 0x80, 0x80, 0x01}, {0x10}} {
		f.reset(4)
		if depacketize(codecVP8, &f, bad) == nil {
			t.Errorf("% x accepted", bad)
		}
	}
}

func TestVP9Depacketize(t *testing.T) {
	// a keyframe header of 320x240, profile 0: frame marker, sync code,
	// color config, size
	key := []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xF0, 0x0E, 0xF6}
	key = append(key, bytes.Repeat([]byte{7}, 2500)...)
	pay := &codecs.VP9Payloader{InitialPictureIDFn: func() uint16 { return 100 }}
	pkts := pay.Payload(1200, key)
	var f frame
	f.reset(0)
	for _, p := range pkts {
		if err := depacketize(codecVP9, &f, p); err != nil {
			t.Fatal(err)
		}
		f.npkts++
	}
	if err := finishFrame(codecVP9, &f); err != nil {
		t.Fatal(err)
	}
	if !f.start || !f.key || f.width != 320 || f.height != 240 || !bytes.Equal(f.data, key) || f.picID != 100 {
		t.Fatalf("keyframe start=%v key=%v %dx%d pic=%d equal=%v", f.start, f.key, f.width, f.height, f.picID,
			bytes.Equal(f.data, key))
	}

	// two spatial layers in one picture become a superframe
	f.reset(1)
	l0 := append([]byte{0x2C, 0x00, 0x00}, key[:9]...) // I=0 P=0 L=1 F=0 B=1 E=1, SID 0
	l1 := []byte{0x2C, 0x02, 0x00, 0xCC, 0xDD, 0xEE}   // SID 1
	for _, p := range [][]byte{l0, l1} {
		if err := depacketize(codecVP9, &f, p); err != nil {
			t.Fatal(err)
		}
		f.npkts++
	}
	if err := finishFrame(codecVP9, &f); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), key[:9]...), 0xCC, 0xDD, 0xEE, 0xC1, 9, 3, 0xC1)
	if !bytes.Equal(f.data, want) || !f.key {
		t.Fatalf("superframe % x (key %v), want % x", f.data, f.key, want)
	}

	// P clear but the frame header says inter frame: not a keyframe
	f.reset(5)
	if err := depacketize(codecVP9, &f, []byte{0x9C, 0x05, 0x86, 0x00}); err != nil || f.key || !f.start {
		t.Fatalf("mislabelled inter frame: %v key=%v", err, f.key)
	}

	// flexible mode with reference indices, inter frame
	f.reset(2)
	if err := depacketize(codecVP9, &f, []byte{0xDC, 0x85, 0x00, 0x03, 0x04, 0x42}); err != nil {
		t.Fatal(err)
	}
	if f.key || !f.start || !bytes.Equal(f.data, []byte{0x42}) || f.picID != 0x0500 {
		t.Fatalf("flexible: %+v", f)
	}
	for _, bad := range [][]byte{{}, {0x80}, {0xD8, 0x05, 0x03, 0x03, 0x03}, {0x0A}} {
		f.reset(3)
		if depacketize(codecVP9, &f, bad) == nil {
			t.Errorf("% x accepted", bad)
		}
	}
}

func TestH264Depacketize(t *testing.T) {
	pps := []byte{0x68, 0xCE, 0x0F, 0xC8}
	idr := append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0x11}, 3000)...)
	annexB := func(nals ...[]byte) []byte {
		var b []byte
		for _, n := range nals {
			b = append(append(b, 0, 0, 0, 1), n...)
		}
		return b
	}
	avcc := func(nals ...[]byte) []byte {
		var b []byte
		for _, n := range nals {
			b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
			b = append(b, n...)
		}
		return b
	}
	pay := &codecs.H264Payloader{}
	pkts := pay.Payload(1200, annexB(sps320, pps, idr)) // STAP-A(SPS, PPS), then FU-A
	if len(pkts) != 4 || pkts[0][0]&0x1F != nalSTAPA || pkts[1][0]&0x1F != nalFUA {
		t.Fatalf("unexpected packetization: %d packets", len(pkts))
	}
	var f frame
	f.reset(0)
	for _, p := range pkts {
		if err := depacketize(codecH264, &f, p); err != nil {
			t.Fatal(err)
		}
		f.npkts++
	}
	if err := finishFrame(codecH264, &f); err != nil {
		t.Fatal(err)
	}
	if !f.start || !f.key || !bytes.Equal(f.data, avcc(sps320, pps, idr)) {
		t.Fatalf("frame start=%v key=%v len %d", f.start, f.key, len(f.data))
	}
	if !bytes.Equal(f.data[f.spsAt:f.spsAt+f.spsLen], sps320) || !bytes.Equal(f.data[f.ppsAt:f.ppsAt+f.ppsLen], pps) {
		t.Fatal("parameter sets not located")
	}
	// a frame of two single-NAL slices
	f.reset(1)
	for _, n := range [][]byte{{0x41, 0x9A, 1}, {0x41, 0x02, 2}} {
		if err := depacketize(codecH264, &f, n); err != nil {
			t.Fatal(err)
		}
		f.npkts++
	}
	if f.key || !bytes.Equal(f.data, avcc([]byte{0x41, 0x9A, 1}, []byte{0x41, 0x02, 2})) {
		t.Fatalf("slices: % x", f.data)
	}
	// FU-A without its start, or unfinished
	f.reset(2)
	if depacketize(codecH264, &f, pkts[2]) == nil {
		t.Fatal("FU-A continuation without start accepted")
	}
	f.reset(3)
	depacketize(codecH264, &f, pkts[1])
	if finishFrame(codecH264, &f) == nil {
		t.Fatal("unfinished FU-A accepted")
	}
	f.reset(4)
	if err := depacketize(codecH264, &f, []byte{0x19, 0, 0}); !errors.Is(err, errUnsupported) {
		t.Fatalf("STAP-B: %v", err)
	}
	f.reset(5)
	if depacketize(codecH264, &f, []byte{0x18, 0x00, 0x09, 0x67}) == nil {
		t.Fatal("STAP-A with a bad size accepted")
	}
}

func TestJitterReorderAndLoss(t *testing.T) {
	t0 := time.Unix(1000, 0)
	j := newJitter(64, 100*time.Millisecond)
	var out []uint64
	lostTotal := 0
	put := func(seq uint16, at time.Duration) bool {
		p := &packet{seq: seq, arrival: t0.Add(at)}
		p.ext = j.extend(seq)
		ok := j.insert(p)
		for {
			q, lost := j.pop(t0.Add(at), false)
			if q == nil && lost == 0 {
				break
			}
			lostTotal += lost
			if q != nil {
				out = append(out, q.ext&0xFFFF)
			}
		}
		return ok
	}
	// wraps around 65535; 65535 and 0 swapped; 2 duplicated; 4 lost
	put(65533, 0)
	put(65534, 0)
	put(0, 0)
	put(65535, 10*time.Millisecond)
	put(1, 20*time.Millisecond)
	put(2, 20*time.Millisecond)
	if put(2, 21*time.Millisecond) {
		t.Fatal("duplicate accepted")
	}
	put(3, 30*time.Millisecond)
	put(5, 40*time.Millisecond)
	put(6, 50*time.Millisecond)
	if len(out) != 7 || lostTotal != 0 {
		t.Fatalf("released %v, lost %d (waiting for 4)", out, lostTotal)
	}
	// 100 ms after 5 arrived, 4 is declared lost
	put(7, 139*time.Millisecond)
	if lostTotal != 0 {
		t.Fatal("gave up too early")
	}
	put(8, 140*time.Millisecond)
	want := []uint64{65533, 65534, 65535, 0, 1, 2, 3, 5, 6, 7, 8}
	if lostTotal != 1 || len(out) != len(want) {
		t.Fatalf("released %v, lost %d", out, lostTotal)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("released %v, want %v", out, want)
		}
	}
	if put(4, 150*time.Millisecond) {
		t.Fatal("packet older than those released accepted")
	}
}

func TestTimestampUnwrap(t *testing.T) {
	var u tsUnwrap
	a := u.extend(0xFFFFFF00)
	b := u.extend(0x00000100) // wrapped
	c := u.extend(0xFFFFFF80) // reordered, before the wrap
	if b-a != 0x200 || c-a != 0x80 {
		t.Fatalf("a=%d b=%d c=%d", a, b, c)
	}
	m := clockMap{rate: 90000, wall: time.Unix(10, 0), ts: a, set: true}
	if got := m.at(a + 90000*3600*30); !got.Equal(time.Unix(10+3600*30, 0)) {
		t.Fatalf("30 h later: %v", got)
	}
	if got := m.at(a - 45000); !got.Equal(time.Unix(9, 500_000_000)) {
		t.Fatalf("before the anchor: %v", got)
	}
}
