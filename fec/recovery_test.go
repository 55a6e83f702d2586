package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Every group size 1..48, every FEC count 1..k/2 (1 for k = 1): each single
// loss is recovered exactly, and so is every burst of 2..m consecutive losses
// (the interleaved masks put them in different FEC packets).
func TestRecoverSingleLossesAndBursts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := NewDecoder(DecoderConfig{})
	maxPayload := 300
	if testing.Short() {
		maxPayload = 40
	}
	for k := 1; k <= MaxGroupSize; k++ {
		for m := 1; m <= max(1, k/2); m++ {
			base := uint16(r.Uint32())
			if k%3 == 0 {
				base = 65535 - uint16(r.IntN(k)) // groups across the wrap
			}
			pkts := group(t, r, base, k, pktOpts{maxPayload: maxPayload})
			fecs := encodeGroup(t, pkts, m)
			for i := range k {
				decodeWithout(t, d, pkts, fecs, map[int]bool{i: true}, fmt.Sprintf("k=%d m=%d lost %d", k, m, i))
			}
			for b := 2; b <= m; b++ {
				for s := 0; s+b <= k; s++ {
					lost := map[int]bool{}
					for i := s; i < s+b; i++ {
						lost[i] = true
					}
					decodeWithout(t, d, pkts, fecs, lost, fmt.Sprintf("k=%d m=%d burst %d at %d", k, m, b, s))
				}
			}
		}
	}
}

// Full-size packets (the common case for video), fewer combinations.
func TestRecoverLargePackets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := NewDecoder(DecoderConfig{})
	for _, c := range []struct{ k, m int }{{10, 1}, {10, 3}, {24, 12}, {48, 6}, {17, 2}} {
		pkts := group(t, r, uint16(r.Uint32()), c.k, pktOpts{maxPayload: 1400})
		fecs := encodeGroup(t, pkts, c.m)
		for i := range c.k {
			decodeWithout(t, d, pkts, fecs, map[int]bool{i: true}, fmt.Sprintf("k=%d m=%d lost %d", c.k, c.m, i))
		}
	}
}

// No FEC, or FEC lost: nothing is recovered.
func TestMissingFEC(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pkts := group(t, r, 100, 10, pktOpts{maxPayload: 200})
	fecs := encodeGroup(t, pkts, 2)
	d := NewDecoder(DecoderConfig{})
	for i, p := range pkts {
		if i == 3 {
			continue
		}
		if rec, _ := d.AddMedia(p); len(rec) != 0 {
			t.Fatal("recovered without FEC")
		}
	}
	// FEC 0 protects packets 0,2,4,...: it cannot give back packet 3
	if rec, err := d.AddFEC(110, 1, fecs[0]); err != nil || len(rec) != 0 {
		t.Fatalf("recovered %d with the wrong FEC packet (%v)", len(rec), err)
	}
	// the right one does
	if rec, err := d.AddFEC(111, 0x11223344, fecs[1]); err != nil || len(rec) != 1 || !bytes.Equal(rec[0], pkts[3]) {
		t.Fatalf("recovered %d (%v)", len(rec), err)
	}
}

// FEC before its media, duplicates, and a cascade: a packet recovered by one
// FEC packet lets another FEC packet recover a second loss.
func TestDecoderOrderAndCascade(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pkts := group(t, r, 65530, 12, pktOpts{maxPayload: 200})
	fecs := encodeGroup(t, pkts, 3) // FEC j: packets j, j+3, j+6, j+9

	d := NewDecoder(DecoderConfig{})
	for j, f := range fecs {
		if rec, err := d.AddFEC(uint16(65530+12+j), 0x11223344, f); err != nil || len(rec) != 0 {
			t.Fatalf("FEC first: %d recovered, %v", len(rec), err)
		}
	}
	if rec, _ := d.AddFEC(6, 0x11223344, fecs[0]); len(rec) != 0 {
		t.Fatal("duplicate FEC recovered something")
	}
	// With the FEC packets already there, a packet that has not arrived yet
	// counts as missing: as soon as a FEC packet lacks a single packet, that
	// packet is rebuilt (exactly; the late original is then a duplicate).
	// Packet 4 is really lost.
	var got [][]byte
	have := map[uint16]bool{}
	for i, p := range pkts {
		if i == 4 {
			continue
		}
		seq := binary.BigEndian.Uint16(p[2:])
		before := d.Stats().Media
		rec, err := d.AddMedia(p)
		if err != nil {
			t.Fatal(err)
		}
		if added := d.Stats().Media - before; have[seq] != (added == 0) {
			t.Fatalf("packet %d: recovered before %v, counted %d", i, have[seq], added)
		}
		for _, q := range rec {
			have[binary.BigEndian.Uint16(q[2:])] = true
		}
		have[seq] = true
		got = append(got, rec...)
	}
	if len(have) != len(pkts) {
		t.Fatalf("%d of %d packets after recovery", len(have), len(pkts))
	}
	for _, g := range got {
		i := int(uint16(binary.BigEndian.Uint16(g[2:]) - 65530))
		if !bytes.Equal(g, pkts[i]) {
			t.Fatalf("packet %d rebuilt wrong", i)
		}
	}
	if s := d.Stats(); s.Recovered != uint64(len(got)) || s.FEC != 3 || int(s.Media)+len(got) != len(pkts) {
		t.Fatalf("stats %+v, %d recovered", s, len(got))
	}

	// cascade: two FEC levels. Group A (8 packets, 1 FEC) loses 2 packets;
	// nothing can be done until one of them is recovered through group B's
	// FEC, which protects a packet set overlapping A's (made by hand).
	a := group(t, r, 1000, 8, pktOpts{maxPayload: 100})
	fa := encodeGroup(t, a, 1)
	fb := encodeGroup(t, a[:4], 1) // covers packets 0..3 only
	d.Reset()
	for i, p := range a {
		if i == 1 || i == 6 {
			continue
		}
		if _, err := d.AddMedia(p); err != nil {
			t.Fatal(err)
		}
	}
	if rec, _ := d.AddFEC(1008, 0x11223344, fa[0]); len(rec) != 0 {
		t.Fatal("two losses recovered by one XOR")
	}
	rec, _ := d.AddFEC(1009, 0x11223344, fb[0])
	if len(rec) != 2 || !bytes.Equal(rec[0], a[1]) || !bytes.Equal(rec[1], a[6]) {
		t.Fatalf("cascade recovered %d packets", len(rec))
	}
}

// Malformed and wrong FEC packets are rejected without panicking, and never
// produce a packet whose length or layout contradicts the FEC header.
func TestWrongFEC(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pkts := group(t, r, 500, 20, pktOpts{maxPayload: 200})
	fecs := encodeGroup(t, pkts, 1) // span 20: long mask
	good := fecs[0]
	d := NewDecoder(DecoderConfig{})

	check := func(name string, fec []byte, wantErr error) {
		t.Helper()
		d.Reset()
		for _, p := range pkts[1:] {
			if _, err := d.AddMedia(p); err != nil {
				t.Fatal(err)
			}
		}
		rec, err := d.AddFEC(600, 0x11223344, fec)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: error %v, want %v", name, err, wantErr)
		}
		if wantErr != nil && len(rec) != 0 {
			t.Fatalf("%s: recovered from a rejected packet", name)
		}
	}
	check("good", good, nil)
	check("truncated", good[:11], ErrShortFEC)
	check("long mask cut", good[:15], ErrShortFEC)
	bad := bytes.Clone(good)
	binary.BigEndian.PutUint16(bad[10:], uint16(len(good))) // protection length beyond the packet
	check("protection length", bad, ErrProtectionLength)
	bad = bytes.Clone(good)
	clear(bad[12:18])
	check("zero mask", bad, ErrEmptyMask)

	// length recovery larger than the protection length: rejected
	bad = bytes.Clone(good)
	binary.BigEndian.PutUint16(bad[8:], 0xFFFF)
	before := d.Stats().Failed
	check("length recovery", bad, nil)
	if d.Stats().Failed != before+1 {
		t.Fatal("inconsistent length not counted as a failure")
	}

	// FEC protecting a packet longer than its protection length (another
	// encoder using partial protection): rejected, not half-recovered
	bad = bytes.Clone(good)
	binary.BigEndian.PutUint16(bad[10:], 4)
	before = d.Stats().Failed
	check("short protection", bad[:18+4], nil)
	if d.Stats().Failed != before+1 {
		t.Fatal("partial protection not rejected")
	}

	// a FEC packet of another group (its mask points at packets never
	// received): two or more missing, nothing recovered
	other := group(t, r, 9000, 4, pktOpts{maxPayload: 50})
	check("other group", encodeGroup(t, other, 1)[0], nil)

	// the E bit is ignored (RFC 5109: SHALL be 0, SHOULD be ignored)
	bad = bytes.Clone(good)
	bad[0] |= 0x80
	d.Reset()
	for _, p := range pkts[1:] {
		_, _ = d.AddMedia(p)
	}
	if rec, err := d.AddFEC(600, 0x11223344, bad); err != nil || len(rec) != 1 || !bytes.Equal(rec[0], pkts[0]) {
		t.Fatalf("E bit: %d recovered, %v", len(rec), err)
	}

	// corrupted payload: undetectable by XOR parity, but the result is still
	// a well-formed packet of the announced length
	bad = bytes.Clone(good)
	bad[len(bad)-1] ^= 0xFF
	d.Reset()
	for _, p := range pkts[1:] {
		_, _ = d.AddMedia(p)
	}
	rec, err := d.AddFEC(600, 0x11223344, bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rec {
		if _, _, err := rtpBounds(p); err != nil {
			t.Fatalf("malformed recovered packet: %v", err)
		}
	}

	if _, err := d.AddMedia([]byte{0x80, 1, 2}); !errors.Is(err, ErrBadRTP) {
		t.Fatalf("short media: %v", err)
	}
}

// A FEC packet whose group has left the window is dropped, not used with
// packets that may have been overwritten.
func TestDecoderWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	pkts := group(t, r, 0, 10, pktOpts{maxPayload: 20, plain: true})
	fecs := encodeGroup(t, pkts, 1)
	d := NewDecoder(DecoderConfig{Window: 64})
	for _, p := range pkts[1:] {
		_, _ = d.AddMedia(p)
	}
	for i := range 100 { // newer traffic pushes the group out
		p := randPacket(t, r, uint16(10+i), 0, false, pktOpts{maxPayload: 10, plain: true})
		_, _ = d.AddMedia(p)
	}
	if rec, err := d.AddFEC(200, 1, fecs[0]); err != nil || len(rec) != 0 {
		t.Fatalf("recovered %d from a stale group (%v)", len(rec), err)
	}
	if d.Stats().Expired != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
	// a late packet from before the window is ignored
	if rec, err := d.AddMedia(pkts[0]); err != nil || rec != nil || d.Stats().Media != 109 {
		t.Fatalf("late packet: %v %v %+v", rec, err, d.Stats())
	}
	// a restarted stream (far back) is accepted
	p := randPacket(t, r, 40000, 0, false, pktOpts{maxPayload: 10, plain: true})
	if _, err := d.AddMedia(p); err != nil || d.Stats().Media != 110 {
		t.Fatalf("restart: %v %+v", err, d.Stats())
	}
}

// The oldest FEC packet is evicted when MaxFEC are waiting.
func TestDecoderMaxFEC(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	d := NewDecoder(DecoderConfig{MaxFEC: 2})
	var groups [][][]byte
	var fecs [][]byte
	for g := range 3 {
		pkts := group(t, r, uint16(100*g), 4, pktOpts{maxPayload: 20})
		groups = append(groups, pkts)
		fecs = append(fecs, encodeGroup(t, pkts, 1)[0])
	}
	for g, f := range fecs {
		if _, err := d.AddFEC(uint16(1000+g), 0x11223344, f); err != nil {
			t.Fatal(err)
		}
	}
	var got int
	for _, pkts := range groups {
		for _, p := range pkts[1:] {
			rec, _ := d.AddMedia(p)
			got += len(rec)
		}
	}
	if got != 2 || d.Stats().Expired != 1 {
		t.Fatalf("recovered %d, stats %+v", got, d.Stats())
	}
}
