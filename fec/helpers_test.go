package fec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
)

// pktOpts shapes the random packets of a test.
type pktOpts struct {
	maxPayload int  // payload size is 0..maxPayload
	plain      bool // no CSRC, extension or padding
}

// randPacket returns a marshaled RTP packet with random header fields (PT,
// marker, CSRCs, one-byte or two-byte header extensions, padding) and
// payload, so that recovery has every header field to get right.
func randPacket(t testing.TB, r *rand.Rand, seq uint16, ts uint32, marker bool, o pktOpts) []byte {
	t.Helper()
	h := rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    uint8(96 + r.IntN(20)), // below the RED/ULPFEC types of the tests
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           0x11223344,
	}
	if !o.plain {
		for range r.IntN(3) {
			h.CSRC = append(h.CSRC, r.Uint32())
		}
		switch r.IntN(3) {
		case 1:
			v := make([]byte, 1+r.IntN(4))
			fillRand(r, v)
			if err := h.SetExtension(1, v); err != nil {
				t.Fatal(err)
			}
			h.ExtensionProfile = 0xBEDE
		case 2:
			h.Extension = true
			h.ExtensionProfile = 0x1000
			v := make([]byte, r.IntN(30))
			fillRand(r, v)
			if err := h.SetExtension(20, v); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(4) == 0 {
			h.Padding = true
			h.PaddingSize = byte(1 + r.IntN(20))
		}
	}
	payload := make([]byte, r.IntN(o.maxPayload+1))
	fillRand(r, payload)
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fillRand(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// group makes k consecutive packets from seq base; the last has the marker.
func group(t testing.TB, r *rand.Rand, base uint16, k int, o pktOpts) [][]byte {
	pkts := make([][]byte, k)
	ts := r.Uint32()
	for i := range k {
		if r.IntN(3) == 0 {
			ts += 3000
		}
		pkts[i] = randPacket(t, r, base+uint16(i), ts, i == k-1, o)
	}
	return pkts
}

// encodeGroup feeds pkts to a fresh Encoder protecting m per len(pkts) and
// returns copies of the FEC payloads, checking they come with the last packet.
func encodeGroup(t testing.TB, pkts [][]byte, m int) [][]byte {
	t.Helper()
	e, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: m, Group: len(pkts)}, MaxFrames: -1})
	if err != nil {
		t.Fatal(err)
	}
	var fecs [][]byte
	for i, p := range pkts {
		out, err := e.Add(p)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(pkts)-1 && len(out) > 0 {
			t.Fatalf("FEC after packet %d of %d", i, len(pkts))
		}
		for _, f := range out {
			fecs = append(fecs, bytes.Clone(f))
		}
	}
	if len(fecs) != m {
		t.Fatalf("k=%d m=%d: got %d FEC packets", len(pkts), m, len(fecs))
	}
	return fecs
}

// decodeWithout feeds every packet but those in lost, then the FEC packets
// (numbered after the group), and checks that exactly the lost packets come
// back byte for byte.
func decodeWithout(t testing.TB, d *Decoder, pkts, fecs [][]byte, lost map[int]bool, label string) {
	t.Helper()
	d.Reset()
	var got [][]byte
	for i, p := range pkts {
		if lost[i] {
			continue
		}
		rec, err := d.AddMedia(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec...)
	}
	last := binary.BigEndian.Uint16(pkts[len(pkts)-1][2:])
	for j, f := range fecs {
		rec, err := d.AddFEC(last+1+uint16(j), binary.BigEndian.Uint32(pkts[0][8:]), f)
		if err != nil {
			t.Fatalf("%s: AddFEC: %v", label, err)
		}
		got = append(got, rec...)
	}
	if len(got) != len(lost) {
		t.Fatalf("%s: recovered %d packets, lost %d", label, len(got), len(lost))
	}
	for _, g := range got {
		seq := binary.BigEndian.Uint16(g[2:])
		i := int(uint16(seq - binary.BigEndian.Uint16(pkts[0][2:])))
		if i >= len(pkts) || !lost[i] {
			t.Fatalf("%s: recovered seq %d which was not lost", label, seq)
		}
		if !bytes.Equal(g, pkts[i]) {
			t.Fatalf("%s: packet %d differs\n got %s\nwant %s", label, i, describe(g), describe(pkts[i]))
		}
	}
}

func describe(b []byte) string {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return fmt.Sprintf("unparsable (%v) % x", err, b)
	}
	return fmt.Sprintf("%v len=%d payload=% x", p.Header, len(b), p.Payload)
}
