package simulcast

import "testing"

func TestVP8MungerContinuesNumbering(t *testing.T) {
	var m VP8Munger
	// X, S; I, L, K; 7-bit picture ID; TL0PICIDX; KEYIDX
	pkt := func(pid, tl0, key byte) []byte { return []byte{0x90, 0xD0, pid & 0x7F, tl0, 0x20 | key&0x1F, 0} }
	a := pkt(120, 200, 30)
	m.Switch(a)
	m.Munge(a)
	if a[2] != 120 || a[3] != 200 || a[4]&0x1F != 30 {
		t.Fatalf("first source must pass unchanged: %v", a)
	}
	b := pkt(5, 9, 2) // another layer's numbering
	m.Switch(b)
	m.Munge(b)
	if b[2] != 121 || b[3] != 201 || b[4]&0x1F != 31 || b[4]&0xE0 != 0x20 {
		t.Fatalf("after switch: %v", b)
	}
	c := pkt(6, 10, 3)
	m.Munge(c)
	if c[2] != 122 || c[3] != 202 || c[4]&0x1F != 0 {
		t.Fatalf("next packet: %v (7-bit and 5-bit wrap)", c)
	}
	// a descriptor without extension and truncated ones are left alone
	for _, p := range [][]byte{{0x10, 0}, {0x90}, {0x90, 0x80}, {0x90, 0x80, 0x80}} {
		q := append([]byte(nil), p...)
		m.Munge(q)
		if string(q) != string(p) {
			t.Fatalf("changed %v to %v", p, q)
		}
	}
}

// A late packet (a retransmission forwarded out of order, or an old packet a
// publisher resent as padding) must not become the "last" numbers: the next
// switch would then restart the picture IDs and TL0PICIDX behind what the
// subscriber already has, and its decoder would drop frames as already seen.
func TestVP8MungerLatePacketKeepsNewest(t *testing.T) {
	var m VP8Munger
	// 15-bit picture ID this time
	pkt := func(pid uint16, tl0, key byte) []byte {
		return []byte{0x90, 0xD0, 0x80 | byte(pid>>8), byte(pid), tl0, 0x20 | key&0x1F, 0}
	}
	first := pkt(1000, 50, 3)
	m.Switch(first)
	m.Munge(first)
	for i := uint16(1); i <= 20; i++ {
		m.Munge(pkt(1000+i, 50+byte(i/4), 3))
	}
	m.Munge(pkt(900, 20, 1)) // late
	k := pkt(7, 200, 9)      // the next layer's keyframe
	m.Switch(k)
	m.Munge(k)
	pid := uint16(k[2]&0x7F)<<8 | uint16(k[3])
	if pid != 1021 || k[4] != 56 || k[5]&0x1F != 4 {
		t.Fatalf("after a late packet the switch continued at picture ID %d, TL0PICIDX %d, KEYIDX %d; want 1021, 56, 4", pid, k[4], k[5]&0x1F)
	}
}
