package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
)

const (
	redPT    = 116
	ulpfecPT = 117
)

func TestWrapUnwrapRED(t *testing.T) {
	payload := []byte{1, 2, 3, 4}
	red := WrapRED(nil, 96, payload)
	if !bytes.Equal(red, []byte{96, 1, 2, 3, 4}) {
		t.Fatalf("% x", red)
	}
	pt, data, err := UnwrapRED(red)
	if err != nil || pt != 96 || !bytes.Equal(data, payload) {
		t.Fatalf("%d % x %v", pt, data, err)
	}
	// reuse of dst, empty payload
	red = WrapRED(red[:0], ulpfecPT|0x80, nil) // the F bit cannot be set by a PT
	if !bytes.Equal(red, []byte{ulpfecPT}) {
		t.Fatalf("% x", red)
	}
	if pt, data, err := UnwrapRED(red); err != nil || pt != ulpfecPT || len(data) != 0 {
		t.Fatalf("%d % x %v", pt, data, err)
	}

	// RFC 2198 section 3 layout: a redundant block (F=1, PT 0, offset 160,
	// length 3) then the primary (F=0, PT 96)
	multi := []byte{0x80 | 0, 0x02, 0x80 | 0x00, 0x03, 96, 0xA, 0xB, 0xC, 1, 2}
	binary.BigEndian.PutUint32(multi, 1<<31|0<<24|160<<10|3)
	blocks, err := ParseRED(multi, nil)
	if err != nil || len(blocks) != 2 {
		t.Fatalf("%v %v", blocks, err)
	}
	if b := blocks[0]; b.PT != 0 || b.TSOffset != 160 || b.Primary || !bytes.Equal(b.Data, []byte{0xA, 0xB, 0xC}) {
		t.Fatalf("redundant block %+v", b)
	}
	if b := blocks[1]; b.PT != 96 || !b.Primary || !bytes.Equal(b.Data, []byte{1, 2}) {
		t.Fatalf("primary block %+v", b)
	}
	if pt, data, err := UnwrapRED(multi); err != nil || pt != 96 || !bytes.Equal(data, []byte{1, 2}) {
		t.Fatalf("primary: %d % x %v", pt, data, err)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x80, 0, 0, 0}, multi[:6]} {
		if _, _, err := UnwrapRED(bad); !errors.Is(err, ErrShortRED) {
			t.Fatalf("UnwrapRED(% x): %v", bad, err)
		}
		if _, err := ParseRED(bad, nil); !errors.Is(err, ErrShortRED) {
			t.Fatalf("ParseRED(% x): %v", bad, err)
		}
	}
}

// RED packets as a libwebrtc receiver takes them apart: the media packet
// comes back byte for byte (header extension, padding), FEC comes out as the
// ULPFEC payload, and multi-block RED is refused.
func TestUnwrapREDPacket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 9))
	for range 200 {
		orig := randPacket(t, r, uint16(r.Uint32()), r.Uint32(), r.IntN(2) == 0, pktOpts{maxPayload: 100})
		var p rtp.Packet
		if err := p.Unmarshal(orig); err != nil {
			t.Fatal(err)
		}
		media := p.PayloadType
		p.PayloadType = redPT
		p.Payload = WrapRED(nil, media, p.Payload)
		wire, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, isFEC, err := UnwrapREDPacket(nil, wire, ulpfecPT)
		if err != nil || isFEC || !bytes.Equal(got, orig) {
			t.Fatalf("media: %v %v\n got % x\nwant % x", isFEC, err, got, orig)
		}
	}
	h := rtp.Header{Version: 2, PayloadType: redPT, SequenceNumber: 9, SSRC: 1}
	wire, _ := (&rtp.Packet{Header: h, Payload: WrapRED(nil, ulpfecPT, []byte{7, 8, 9})}).Marshal()
	if got, isFEC, err := UnwrapREDPacket(nil, wire, ulpfecPT); err != nil || !isFEC || !bytes.Equal(got, []byte{7, 8, 9}) {
		t.Fatalf("fec: % x %v %v", got, isFEC, err)
	}
	wire, _ = (&rtp.Packet{Header: h, Payload: []byte{0x80 | 96, 0, 0, 1, 0xAA, 97, 1}}).Marshal()
	if _, _, err := UnwrapREDPacket(nil, wire, ulpfecPT); !errors.Is(err, ErrREDMultiBlock) {
		t.Fatalf("multi-block: %v", err)
	}
	wire, _ = (&rtp.Packet{Header: h}).Marshal()
	if _, _, err := UnwrapREDPacket(nil, wire, ulpfecPT); !errors.Is(err, ErrShortRED) {
		t.Fatalf("empty: %v", err)
	}
	if _, _, err := UnwrapREDPacket(nil, []byte{0x80, 1}, ulpfecPT); !errors.Is(err, ErrBadRTP) {
		t.Fatalf("short: %v", err)
	}
}

// The whole path a subscriber sees: media wrapped in RED, FEC wrapped in RED
// with sequence numbers taken from the media's space between groups, losses,
// then unwrapping and recovery on the receiving side.
func TestREDPipeline(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	enc, _ := NewEncoder(EncoderConfig{Protection: Protection{FEC: 2, Group: 8}})
	dec := NewDecoder(DecoderConfig{})
	const ssrc = 0x11223344 // the media SSRC (randPacket's)
	seq := uint16(65500)    // across the wrap
	ts := uint32(0)
	var sentMedia = map[uint16][]byte{}
	var wire [][]byte
	send := func(h rtp.Header, payload []byte) {
		b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, b)
	}
	for range 30 {
		ts += 3000
		n := 1 + r.IntN(6)
		for i := range n {
			media := randPacket(t, r, seq, ts, i == n-1, pktOpts{maxPayload: 200})
			seq++
			sentMedia[binary.BigEndian.Uint16(media[2:])] = media
			var p rtp.Packet
			if err := p.Unmarshal(media); err != nil {
				t.Fatal(err)
			}
			fecs, err := enc.Add(media)
			if err != nil {
				t.Fatal(err)
			}
			pt := p.PayloadType
			p.PayloadType = redPT
			send(p.Header, WrapRED(nil, pt, p.Payload))
			for _, fp := range fecs {
				h := rtp.Header{Version: 2, PayloadType: redPT, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}
				seq++
				send(h, WrapRED(nil, ulpfecPT, fp))
			}
		}
	}
	// drop every 7th packet on the wire (media or FEC)
	lost := map[uint16]bool{}
	var buf []byte
	var recovered int
	for i, w := range wire {
		s := binary.BigEndian.Uint16(w[2:])
		if i%7 == 3 {
			lost[s] = true
			continue
		}
		out, isFEC, err := UnwrapREDPacket(buf, w, ulpfecPT)
		if err != nil {
			t.Fatal(err)
		}
		var rec [][]byte
		if isFEC {
			rec, err = dec.AddFEC(s, binary.BigEndian.Uint32(w[8:]), out)
		} else {
			buf = out
			if !bytes.Equal(out, sentMedia[s]) {
				t.Fatalf("unwrapped media %d differs", s)
			}
			rec, err = dec.AddMedia(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rec {
			rs := binary.BigEndian.Uint16(p[2:])
			if !lost[rs] || !bytes.Equal(p, sentMedia[rs]) {
				t.Fatalf("recovered %d wrong", rs)
			}
			recovered++
		}
	}
	lostMedia := 0
	for s := range lost {
		if sentMedia[s] != nil {
			lostMedia++
		}
	}
	t.Logf("%d packets on the wire, %d lost (%d media), %d recovered", len(wire), len(lost), lostMedia, recovered)
	if recovered == 0 || recovered > lostMedia {
		t.Fatalf("recovered %d of %d", recovered, lostMedia)
	}
}
