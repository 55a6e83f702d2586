package fec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// seedGroup returns a few media packets and their FEC, for seed corpora.
func seedGroup() (media, fecs [][]byte) {
	for i := range 5 {
		p := make([]byte, 12+10*i)
		p[0], p[1] = 0x80, 96
		binary.BigEndian.PutUint16(p[2:], uint16(65533+i))
		for j := 12; j < len(p); j++ {
			p[j] = byte(i * j)
		}
		media = append(media, p)
	}
	e, _ := NewEncoder(EncoderConfig{Protection: Protection{FEC: 2, Group: 5}})
	for _, p := range media {
		out, _ := e.Add(p)
		for _, f := range out {
			fecs = append(fecs, bytes.Clone(f))
		}
	}
	return media, fecs
}

func FuzzParseHeader(f *testing.F) {
	_, fecs := seedGroup()
	for _, fp := range fecs {
		f.Add(fp)
	}
	f.Add(make([]byte, 18))
	f.Add([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseHeader(b)
		if err != nil {
			return
		}
		if len(payload) != int(h.ProtectionLength) || h.Len()+len(payload) > len(b) {
			t.Fatalf("payload %d, header %+v, input %d", len(payload), h, len(b))
		}
		if h.Count() > MaxGroupSize || (!h.Long && h.Mask>>16 != 0) {
			t.Fatalf("mask %x", h.Mask)
		}
		for i := range MaxGroupSize {
			if h.Protects(h.SNBase+uint16(i)) != (h.Mask&(1<<i) != 0) {
				t.Fatalf("Protects(%d)", i)
			}
		}
	})
}

func FuzzUnwrapRED(f *testing.F) {
	f.Add([]byte{96, 1, 2, 3})
	f.Add([]byte{0x80, 0x02, 0x80, 0x03, 96, 0xA, 0xB, 0xC, 1, 2})
	f.Add([]byte{0x80, 116, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 117, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, data, err := UnwrapRED(b)
		blocks, perr := ParseRED(b, nil)
		if (err == nil) != (perr == nil) {
			t.Fatalf("UnwrapRED %v, ParseRED %v", err, perr)
		}
		if err == nil {
			last := blocks[len(blocks)-1]
			if !last.Primary || last.PT != pt || !bytes.Equal(last.Data, data) {
				t.Fatalf("primary %+v vs %d % x", last, pt, data)
			}
		}
		out, isFEC, err := UnwrapREDPacket(nil, b, 117)
		if err == nil && !isFEC {
			if len(out) != len(b)-1 {
				t.Fatalf("media packet %d bytes from %d", len(out), len(b))
			}
			if _, _, err := rtpBounds(out); err != nil {
				t.Fatalf("rebuilt packet does not parse: %v", err)
			}
		}
	})
}

// Arbitrary sequences of media and FEC packets: never a panic, and every
// recovered packet is well-formed RTP.
func FuzzDecoder(f *testing.F) {
	media, fecs := seedGroup()
	var ops []byte
	for i, p := range media {
		if i == 2 {
			continue
		}
		ops = append(ops, 0, byte(len(p)))
		ops = append(ops, p...)
	}
	for _, fp := range fecs {
		ops = append(ops, 1, byte(len(fp)))
		ops = append(ops, fp...)
	}
	f.Add(ops)
	f.Add([]byte{1, 14, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(DecoderConfig{Window: 64, MaxFEC: 4, Mutable: []MutableExtension{{ID: 1}, {ID: 2, From: 1}}})
		for i := 0; i+2 <= len(b); {
			op, n := b[i], int(b[i+1])
			i += 2
			n = min(n, len(b)-i)
			chunk := b[i : i+n]
			i += n
			var rec [][]byte
			if op&1 == 0 {
				rec, _ = d.AddMedia(chunk)
			} else {
				rec, _ = d.AddFEC(uint16(i)^uint16(op)<<8, 7, chunk)
			}
			for _, p := range rec {
				if _, _, err := rtpBounds(p); err != nil {
					t.Fatalf("recovered malformed packet % x: %v", p, err)
				}
			}
		}
	})
}

// Encoder then Decoder on packets shaped by the input: whatever the sizes,
// header bits, group and FEC counts, a single lost packet comes back exactly.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(10), uint8(3), uint8(4), uint16(65530), []byte("some payload bytes to cut into packets"))
	f.Add(uint8(48), uint8(1), uint8(47), uint16(0), make([]byte, 300))
	f.Fuzz(func(t *testing.T, k, m, lost uint8, base uint16, data []byte) {
		kk := 1 + int(k)%MaxGroupSize
		mm := 1 + int(m)%kk
		pkts := make([][]byte, kk)
		for i := range kk {
			// header bits and sizes from the data, wrapping around it
			var b0, b1 byte
			size := 0
			if len(data) > 0 {
				b0 = data[i%len(data)]
				b1 = data[(i+1)%len(data)]
				size = int(data[(i+2)%len(data)]) % (len(data) + 1)
			}
			cc := int(b0 & 0x03)
			p := make([]byte, 12+4*cc+size)
			p[0] = 0x80 | byte(cc)
			p[1] = b1 & 0x7F // a marker would close the group early
			if i == kk-1 {
				p[1] |= b0 & 0x80
			}
			binary.BigEndian.PutUint16(p[2:], base+uint16(i))
			binary.BigEndian.PutUint32(p[4:], uint32(b0)<<24|uint32(i))
			binary.BigEndian.PutUint32(p[8:], 7)
			for j := 12; j < len(p); j++ {
				p[j] = data[(i+j)%len(data)]
			}
			if b0&0x80 != 0 && len(p) > 12+4*cc { // padding: last byte counts it
				pad := 1 + int(b0&0x07)%(len(p)-12-4*cc)
				p[0] |= 0x20
				p[len(p)-1] = byte(pad)
			}
			pkts[i] = p
		}
		e, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: mm, Group: kk}, MaxFrames: -1})
		if err != nil {
			t.Fatal(err)
		}
		var fecs [][]byte
		for _, p := range pkts {
			out, err := e.Add(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, fp := range out {
				fecs = append(fecs, bytes.Clone(fp))
			}
		}
		fecs = append(fecs, e.Flush()...)
		if len(fecs) != mm {
			t.Fatalf("%d FEC packets, want %d", len(fecs), mm)
		}
		decodeWithout(t, NewDecoder(DecoderConfig{}), pkts, fecs, map[int]bool{int(lost) % kk: true}, "fuzz")
	})
}
