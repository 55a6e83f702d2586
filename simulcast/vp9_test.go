package simulcast

import (
	"bytes"
	"testing"
)

// vp9Pkt7 returns a non-flexible descriptor with a 7-bit picture ID, layer
// indices and TL0PICIDX, followed by a payload byte.
func vp9Pkt7(pid, tl0 byte) []byte {
	return []byte{0xA8, pid & 0x7F, 0x20, tl0, 0xEE} // I, L, B; TID 1
}

// vp9Pkt15 is vp9Pkt7 with a 15-bit picture ID.
func vp9Pkt15(pid uint16, tl0 byte) []byte {
	return []byte{0xA8, 0x80 | byte(pid>>8&0x7F), byte(pid), 0x20, tl0, 0xEE}
}

func pid15(p []byte) uint16 { return uint16(p[1]&0x7F)<<8 | uint16(p[2]) }

func TestVP9MungerContinuesNumbering(t *testing.T) {
	var m VP9Munger
	a := vp9Pkt7(120, 200)
	m.Switch(a)
	m.Munge(a)
	if !bytes.Equal(a, vp9Pkt7(120, 200)) {
		t.Fatalf("first source must pass unchanged: %v", a)
	}
	b := vp9Pkt7(5, 9) // another stream's numbering
	m.Switch(b)
	m.Munge(b)
	if !bytes.Equal(b, vp9Pkt7(121, 201)) {
		t.Fatalf("after switch: %v", b)
	}
	c := vp9Pkt7(11, 64)
	m.Munge(c)
	if !bytes.Equal(c, vp9Pkt7(127, 0)) {
		t.Fatalf("next packet: %v (TL0PICIDX wraps at 8 bits)", c)
	}
	d := vp9Pkt7(12, 65)
	m.Munge(d)
	if !bytes.Equal(d, vp9Pkt7(0, 1)) {
		t.Fatalf("next packet: %v (picture ID wraps at 7 bits)", d)
	}
	// a descriptor without picture ID or TL0PICIDX and truncated ones are
	// left alone
	for _, p := range [][]byte{{0x08, 0}, {0x88}, {0xA8, 0x05}, {0xA8, 0x05, 0x00}, {0x80, 0x80}, {0x20}} {
		q := append([]byte(nil), p...)
		m.Munge(q)
		m.MungeOld(q)
		m.Switch(q)
		if !bytes.Equal(q, p) {
			t.Fatalf("changed %v to %v", p, q)
		}
	}
	e := vp9Pkt7(13, 66) // the offsets survived the malformed packets
	m.Munge(e)
	if !bytes.Equal(e, vp9Pkt7(1, 2)) {
		t.Fatalf("after malformed packets: %v", e)
	}
}

func TestVP9MungerWrapsAt15Bits(t *testing.T) {
	var m VP9Munger
	a := vp9Pkt15(0x7FFE, 3)
	m.Switch(a)
	m.Munge(a)
	b := vp9Pkt15(0x7FFF, 4)
	m.Munge(b)
	if pid15(b) != 0x7FFF || b[1]&0x80 == 0 {
		t.Fatalf("before switch: %v", b)
	}
	c := vp9Pkt15(300, 50)
	m.Switch(c)
	m.Munge(c)
	if !bytes.Equal(c, vp9Pkt15(0, 5)) {
		t.Fatalf("after switch %v, want picture ID 0 with M kept and TL0PICIDX 5", c)
	}
	d := vp9Pkt15(301, 51)
	m.Munge(d)
	if !bytes.Equal(d, vp9Pkt15(1, 6)) {
		t.Fatalf("next packet: %v", d)
	}
	// a switch to a stream with 7-bit picture IDs continues modulo 128
	e := vp9Pkt7(90, 7)
	m.Switch(e)
	m.Munge(e)
	if !bytes.Equal(e, vp9Pkt7(2, 7)) {
		t.Fatalf("switch to 7 bits: %v", e)
	}
	// and back to 15 bits continues from the 7-bit value
	f := vp9Pkt15(0x1234, 8)
	m.Switch(f)
	m.Munge(f)
	if !bytes.Equal(f, vp9Pkt15(3, 8)) {
		t.Fatalf("switch back to 15 bits: %v", f)
	}
}

func TestVP9MungeOldKeepsLastNumbers(t *testing.T) {
	var m VP9Munger
	for i := range 10 {
		p := vp9Pkt15(uint16(1000+i), byte(40+i))
		if i == 0 {
			m.Switch(p)
		}
		m.Munge(p)
	}
	b := vp9Pkt15(7, 200) // second stream: 1009 + 1 and 49 + 1
	m.Switch(b)
	m.Munge(b)
	if !bytes.Equal(b, vp9Pkt15(1010, 50)) {
		t.Fatalf("after switch: %v", b)
	}
	// a retransmission of an older packet of this stream is rewritten with
	// the current offsets but does not become the last number written
	old := vp9Pkt15(2, 195)
	m.MungeOld(old)
	if !bytes.Equal(old, vp9Pkt15(1005, 45)) {
		t.Fatalf("retransmission: %v", old)
	}
	c := vp9Pkt7(100, 17) // third stream
	m.Switch(c)
	m.Munge(c)
	if !bytes.Equal(c, vp9Pkt7(byte(1011%128), 51)) {
		t.Fatalf("third stream continues from %v, not from the retransmission", c)
	}
	// MungeOld before any Munge does not anchor a later switch
	var n VP9Munger
	p := vp9Pkt7(10, 10)
	n.Switch(p)
	n.MungeOld(p)
	q := vp9Pkt7(50, 50)
	n.Switch(q)
	n.Munge(q)
	if !bytes.Equal(q, vp9Pkt7(50, 50)) {
		t.Fatalf("switch anchored on a retransmission: %v", q)
	}
}

func TestVP9MungerLeavesOtherFieldsAlone(t *testing.T) {
	var m VP9Munger
	m.Switch(vp9Pkt7(10, 10))
	m.Munge(vp9Pkt7(10, 10))
	// flexible mode: no TL0PICIDX; the byte after the layer indices is a
	// P_DIFF, then comes a scalability structure
	flex := []byte{0xF2, 0x05, 0x22, 0x03, 0x30, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x99}
	m.Switch(flex)
	m.Munge(flex)
	want := []byte{0xF2, 11, 0x22, 0x03, 0x30, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x99}
	if !bytes.Equal(flex, want) {
		t.Fatalf("flexible mode: %v, want %v", flex, want)
	}
	// non-flexible with a scalability structure: only the picture ID and
	// TL0PICIDX change
	ss := []byte{0xAE, 0x80, 0x64, 0x00, 0x77, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x55}
	m.Switch(ss)
	m.Munge(ss)
	want = []byte{0xAE, 0x80, 12, 0x00, 11, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x55}
	if !bytes.Equal(ss, want) {
		t.Fatalf("with SS: %v, want %v", ss, want)
	}
	// a stream without picture IDs keeps having none; its TL0PICIDX continues
	nopid := []byte{0x28, 0x00, 0x90, 0x42}
	m.Switch(nopid)
	m.Munge(nopid)
	if !bytes.Equal(nopid, []byte{0x28, 0x00, 12, 0x42}) {
		t.Fatalf("without picture ID: %v", nopid)
	}
}

// vp9Seeds are descriptors of every shape for FuzzVP9Munger.
var vp9Seeds = [][]byte{
	vp9Pkt7(120, 200), vp9Pkt15(0x7FFF, 255),
	{0xF2, 0x05, 0x22, 0x03, 0x30, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x99},
	{0xAE, 0x80, 0x64, 0x00, 0x77, 0x10, 0x01, 0x40, 0x00, 0xB4, 0x55},
	{0x28, 0x00, 0x90, 0x42}, {0x88}, {0xA8, 0x85}, {},
}

func FuzzVP9Munger(f *testing.F) {
	for _, a := range vp9Seeds {
		for _, b := range vp9Seeds {
			f.Add(a, b, uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte, ops uint8) {
		var m VP9Munger
		step := func(op uint8, p []byte) {
			before := append([]byte(nil), p...)
			fb, okb := parseVP9Fields(before)
			switch op % 3 {
			case 0:
				m.Switch(p)
			case 1:
				m.Munge(p)
			case 2:
				m.MungeOld(p)
			}
			fa, oka := parseVP9Fields(p)
			if (!okb || !fb.hasField) && !bytes.Equal(p, before) {
				t.Fatalf("malformed or fieldless descriptor changed: % x -> % x", before, p)
			}
			if oka != okb || fa.pidOff != fb.pidOff || fa.pid15 != fb.pid15 || fa.tl0Off != fb.tl0Off {
				t.Fatalf("descriptor layout changed: % x -> % x", before, p)
			}
			for i := range p {
				if i == fb.pidOff && fb.pidOff >= 0 {
					if p[i]&0x80 != before[i]&0x80 {
						t.Fatalf("M bit changed: % x -> % x", before, p)
					}
					continue
				}
				if (fb.pid15 && i == fb.pidOff+1) || i == fb.tl0Off {
					continue
				}
				if p[i] != before[i] {
					t.Fatalf("byte %d outside picture ID and TL0PICIDX changed: % x -> % x", i, before, p)
				}
			}
		}
		// a: the first stream; b: a second one switched to; ops picks
		// what happens to copies of both afterwards
		step(0, a)
		step(1, a)
		step(0, b)
		step(1, b)
		for i := range 4 {
			src := a
			if ops>>(2*i)&1 == 1 {
				src = b
			}
			step(ops>>(2*i+1)&1+1, append([]byte(nil), src...))
		}
	})
}
