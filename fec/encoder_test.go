package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
)

// The FEC payload layout, computed independently from RFC 5109 sections
// 7.3, 7.4 and 8 for two hand-made packets.
func TestFECPacketLayout(t *testing.T) {
	p1 := []byte{
		0x80 | 0x20 | 0x01, 0x80 | 96, 0xFF, 0xFF, // P, CC=1, M, PT 96, seq 65535
		0x00, 0x00, 0x10, 0x00, 1, 2, 3, 4, // ts 4096, ssrc
		0xAA, 0xBB, 0xCC, 0xDD, // CSRC
		0x01, 0x02, 0x03, // payload
		0x00, 0x02, // padding (2)
	}
	p2 := []byte{
		0x80, 97, 0x00, 0x00, // PT 97, seq 0 (wrapped)
		0x00, 0x00, 0x20, 0x00, 1, 2, 3, 4, // ts 8192
		0x10, 0x20, // payload
	}
	fecs := encodeGroup(t, [][]byte{p1, p2}, 1)
	f := fecs[0]
	want := []byte{
		0x21, 0x80 | (96 ^ 97), // E=0 L=0 P=1^0 X=0 CC=1^0, M=1^0, PT 96^97
		0xFF, 0xFF, // SN base: the lowest, 65535
		0x00, 0x00, 0x30, 0x00, // TS recovery 4096^8192
		0x00, 9 ^ 2, // length recovery: (21-12) ^ (14-12)
		0x00, 9, // protection length: the longest
		0xC0, 0x00, // mask: offsets 0 and 1, MSB first
		0xAA ^ 0x10, 0xBB ^ 0x20, 0xCC, 0xDD, 0x01, 0x02, 0x03, 0x00, 0x02,
	}
	if !bytes.Equal(f, want) {
		t.Fatalf("FEC payload\n got % x\nwant % x", f, want)
	}
	h, payload, err := ParseHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.SNBase != 65535 || h.Long || !h.Protects(65535) || !h.Protects(0) || h.Protects(1) || h.Count() != 2 ||
		!h.PRecovery || h.XRecovery || h.CCRecovery != 1 || !h.MRecovery || h.PTRecovery != 96^97 ||
		h.TSRecovery != 4096^8192 || h.LengthRecovery != 9^2 || h.ProtectionLength != 9 || len(payload) != 9 {
		t.Fatalf("parsed %+v", h)
	}
}

// The L bit and the 48-bit mask, and per-FEC-packet SN bases with
// interleaving, across the sequence number wrap.
func TestMasks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		k, m int
		long []bool
	}{
		{16, 1, []bool{false}},        // span 16: short mask
		{17, 1, []bool{true}},         // span 17: long mask
		{16, 2, []bool{false, false}}, // offsets 0..14 and 1..15: spans 15
		{18, 2, []bool{true, true}},   // 0..16 and 1..17: spans 17
		{33, 2, []bool{true, true}},   // spans 33 and 31
		{48, 3, []bool{true, true, true}},
	} {
		pkts := group(t, r, 65530, c.k, pktOpts{maxPayload: 10, plain: true})
		fecs := encodeGroup(t, pkts, c.m)
		for j, f := range fecs {
			h, _, err := ParseHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			span := 0
			for i := j; i < c.k; i += c.m {
				seq := uint16(65530 + i)
				if !h.Protects(seq) {
					t.Fatalf("k=%d m=%d: FEC %d misses packet %d", c.k, c.m, j, i)
				}
				span = i - j + 1
			}
			if h.Count() != (c.k-j+c.m-1)/c.m || h.SNBase != uint16(65530+j) {
				t.Fatalf("k=%d m=%d FEC %d: %+v", c.k, c.m, j, h)
			}
			if h.Long != (span > 16) || h.Long != c.long[j] {
				t.Fatalf("k=%d m=%d FEC %d: span %d, L=%v", c.k, c.m, j, span, h.Long)
			}
		}
	}
}

func addAll(t *testing.T, e *Encoder, pkts [][]byte) (perPacket []int) {
	t.Helper()
	for _, p := range pkts {
		out, err := e.Add(p)
		if err != nil {
			t.Fatal(err)
		}
		perPacket = append(perPacket, len(out))
	}
	return perPacket
}

func frames(t *testing.T, r *rand.Rand, seq uint16, sizes ...int) [][]byte {
	var pkts [][]byte
	ts := uint32(0)
	for _, n := range sizes {
		ts += 3000
		for i := range n {
			pkts = append(pkts, randPacket(t, r, seq, ts, i == n-1, pktOpts{maxPayload: 50}))
			seq++
		}
	}
	return pkts
}

// When groups close, and with how many FEC packets.
func TestEncoderGrouping(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	eq := func(got []int, want ...int) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %v want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("got %v want %v", got, want)
			}
		}
	}
	newEnc := func(m, k, maxFrames int) *Encoder {
		e, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: m, Group: k}, MaxFrames: maxFrames})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// 1/10 with 2-packet frames: no FEC until 10 packets (5 frames) when
	// frames are unbounded...
	eq(addAll(t, newEnc(1, 10, -1), frames(t, r, 0, 2, 2, 2, 2, 2)), 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
	// ...and at the end of the 3rd frame with the default bound: 1 FEC
	eq(addAll(t, newEnc(1, 10, 0), frames(t, r, 0, 2, 2, 2, 2)), 0, 0, 0, 0, 0, 1, 0, 0)
	// a full group closes mid-frame; the rest of the frame (2 packets at
	// 2/4) has earned 1 FEC packet by the marker
	eq(addAll(t, newEnc(2, 4, -1), frames(t, r, 0, 6)), 0, 0, 0, 2, 0, 1)
	// 3/10: a 4-packet frame has earned 1.2 -> 1 FEC; 5 packets 1.5 -> 2
	eq(addAll(t, newEnc(3, 10, -1), frames(t, r, 0, 4, 5)), 0, 0, 0, 1, 0, 0, 0, 0, 2)
	// 3/10, 3-packet frame: 0.9 not earned; next frame makes 6 packets -> 2
	eq(addAll(t, newEnc(3, 10, -1), frames(t, r, 0, 3, 3)), 0, 0, 0, 0, 0, 2)

	// Flush closes what is open, rounding up to one FEC packet
	e := newEnc(1, 10, -1)
	eq(addAll(t, e, frames(t, r, 0, 3)), 0, 0, 0)
	if out := e.Flush(); len(out) != 1 {
		t.Fatalf("flush: %d", len(out))
	}
	if out := e.Flush(); len(out) != 0 {
		t.Fatal("second flush produced FEC")
	}

	// out-of-order packets are refused and the group goes on
	e = newEnc(1, 3, -1)
	pkts := frames(t, r, 100, 3)
	if _, err := e.Add(pkts[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Add(pkts[0]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("older packet: %v", err)
	}
	if _, err := e.Add(pkts[1]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("same packet: %v", err)
	}
	if out, _ := e.Add(pkts[2]); len(out) != 0 {
		t.Fatal("closed a group of 2 of 3")
	}

	// a jump beyond the 48-packet mask closes the open group first
	e = newEnc(1, 10, -1)
	a := randPacket(t, r, 10, 0, false, pktOpts{maxPayload: 10})
	b := randPacket(t, r, 10+48, 0, false, pktOpts{maxPayload: 10})
	if out, _ := e.Add(a); len(out) != 0 {
		t.Fatal("early FEC")
	}
	out, err := e.Add(b)
	if err != nil || len(out) != 1 {
		t.Fatalf("gap: %d FEC, %v", len(out), err)
	}
	if h, _, _ := ParseHeader(out[0]); h.SNBase != 10 || h.Count() != 1 {
		t.Fatalf("gap FEC %+v", h)
	}

	// protection off: nothing stored, nothing produced
	e = newEnc(1, 2, -1)
	if err := e.SetProtection(0, 0); err != nil {
		t.Fatal(err)
	}
	eq(addAll(t, e, frames(t, r, 500, 4)), 0, 0, 0, 0)
	if e.Stats().MediaPackets != 0 {
		t.Fatal("packets protected while off")
	}
	for _, p := range []Protection{{1, 0}, {2, 1}, {1, 49}, {-1, 4}} {
		if err := e.SetProtection(p.FEC, p.Group); !errors.Is(err, ErrProtection) {
			t.Fatalf("%+v accepted", p)
		}
	}
	if _, err := e.Add([]byte{0x40, 0, 0}); !errors.Is(err, ErrBadRTP) {
		t.Fatalf("bad RTP: %v", err)
	}
}

// AddHeader (pion header + payload) produces the same FEC as Add with the
// marshaled packet.
func TestAddHeaderMatchesAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	pkts := group(t, r, 40, 12, pktOpts{maxPayload: 300})
	want := encodeGroup(t, pkts, 3)
	e, _ := NewEncoder(EncoderConfig{Protection: Protection{FEC: 3, Group: 12}})
	var got [][]byte
	for _, b := range pkts {
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		out, err := e.AddHeader(&p.Header, p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range out {
			got = append(got, bytes.Clone(f))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d FEC, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("FEC %d differs", i)
		}
	}
}

// Mutable extensions: the sender's FEC covers them zeroed, the wire carries
// other values (written after FEC, like transport-wide-cc by a pacer or
// interceptor), and a receiver zeroing them recovers the packet with them
// zeroed. Without zeroing on both ends recovery yields a wrong packet: this
// is why the Encoder must know the IDs libwebrtc zeroes.
func TestMutableExtensions(t *testing.T) {
	const twccID, midID = 3, 1
	r := rand.New(rand.NewPCG(4, 4))
	mut := LibwebrtcMutable(map[string]int{URITransportCC: twccID, "urn:ietf:params:rtp-hdrext:sdes:mid": midID})
	if len(mut) != 1 || mut[0] != (MutableExtension{ID: twccID}) {
		t.Fatalf("LibwebrtcMutable: %+v", mut)
	}
	mk := func(seq uint16, twcc uint16) []byte {
		h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 90, SSRC: 7}
		_ = h.SetExtension(midID, []byte("v"))
		_ = h.SetExtension(twccID, []byte{byte(twcc >> 8), byte(twcc)})
		payload := make([]byte, 100+r.IntN(100))
		fillRand(r, payload)
		b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const k = 6
	var sent, wire [][]byte
	for i := range k {
		p := mk(uint16(200+i), 0xABCD) // a stale value when FEC is computed
		sent = append(sent, p)
		w := bytes.Clone(p)
		// the interceptor writes the transport sequence number later
		idx := bytes.Index(w, []byte{twccID<<4 | 1, 0xAB, 0xCD})
		binary.BigEndian.PutUint16(w[idx+1:], uint16(5000+i))
		wire = append(wire, w)
	}
	run := func(encMut, decMut []MutableExtension) []byte {
		e, _ := NewEncoder(EncoderConfig{Protection: Protection{FEC: 1, Group: k}, Mutable: encMut})
		var fec []byte
		for _, p := range sent {
			// the sender protects what it has; if it had the final
			// values it would be the wire packet
			src := p
			if encMut == nil {
				src = wire[binary.BigEndian.Uint16(p[2:])-200]
			}
			out, err := e.Add(src)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) == 1 {
				fec = bytes.Clone(out[0])
			}
		}
		d := NewDecoder(DecoderConfig{Mutable: decMut})
		for _, w := range wire[1:] {
			_, _ = d.AddMedia(w)
		}
		rec, _ := d.AddFEC(300, 7, fec)
		if len(rec) != 1 {
			return nil
		}
		return rec[0]
	}
	want := bytes.Clone(wire[0])
	zeroMutable(want, mut)
	if got := run(mut, mut); !bytes.Equal(got, want) {
		t.Fatalf("with zeroing: got %s\nwant %s", describe(got), describe(want))
	}
	// FEC over the wire values, receiver zeroing (libwebrtc): wrong packet
	if got := run(nil, mut); bytes.Equal(got, want) || bytes.Equal(got, wire[0]) {
		t.Fatal("recovery without sender zeroing unexpectedly right")
	}
	// two-byte form and a partial element (video-timing from byte 7)
	h := rtp.Header{Version: 2, Extension: true, ExtensionProfile: 0x1000}
	if h.SetExtension(9, bytes.Repeat([]byte{0xEE}, 13)) != nil || h.SetExtension(2, []byte{1, 2}) != nil {
		t.Fatal("SetExtension")
	}
	b, _ := (&rtp.Packet{Header: h}).Marshal()
	zeroMutable(b, LibwebrtcMutable(map[string]int{URIVideoTiming: 9}))
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if vt := p.GetExtension(9); !bytes.Equal(vt, append(bytes.Repeat([]byte{0xEE}, 7), 0, 0, 0, 0, 0, 0)) {
		t.Fatalf("video-timing % x", vt)
	}
	if !bytes.Equal(p.GetExtension(2), []byte{1, 2}) {
		t.Fatal("other element touched")
	}
}
