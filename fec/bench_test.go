package fec

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

// benchPackets are full-size video packets (1200 bytes, one-byte extension
// block with transport-cc, like the packets Chorus sends), 8 per frame.
func benchPackets(b *testing.B) [][]byte {
	pkts := make([][]byte, 64)
	for i := range pkts {
		h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 5, Marker: i%8 == 7}
		_ = h.SetExtension(3, []byte{0, 0})
		payload := make([]byte, 1200-h.MarshalSize())
		for j := range payload {
			payload[j] = byte(i + j)
		}
		p, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		pkts[i] = p
	}
	return pkts
}

// Cost of protecting one media packet: copy, and its share of the XOR work
// and of the FEC headers when its group closes. 0 allocations in steady
// state.
func BenchmarkEncoder(b *testing.B) {
	for _, p := range []Protection{{1, 10}, {3, 10}, {12, 24}} {
		b.Run(fmt.Sprintf("Add/%d-of-%d", p.FEC, p.Group), func(b *testing.B) {
			pkts := benchPackets(b)
			e, _ := NewEncoder(EncoderConfig{Protection: p, Mutable: []MutableExtension{{ID: 3}}})
			b.SetBytes(1200)
			b.ReportAllocs()
			seq := uint16(0)
			for b.Loop() {
				pkt := pkts[seq&63]
				binary.BigEndian.PutUint16(pkt[2:], seq)
				seq++
				if _, err := e.Add(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("AddHeader/3-of-10", func(b *testing.B) {
		pkts := benchPackets(b)
		hs := make([]rtp.Packet, len(pkts))
		for i := range pkts {
			_ = hs[i].Unmarshal(pkts[i])
		}
		e, _ := NewEncoder(EncoderConfig{Protection: Protection{3, 10}, Mutable: []MutableExtension{{ID: 3}}})
		b.SetBytes(1200)
		b.ReportAllocs()
		seq := uint16(0)
		for b.Loop() {
			p := &hs[seq&63]
			p.SequenceNumber = seq
			seq++
			if _, err := e.AddHeader(&p.Header, p.Payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Receiving side without loss: store each media packet and check the FEC
// packets (nothing to recover). Per media packet.
func BenchmarkDecoderNoLoss(b *testing.B) {
	pkts := benchPackets(b)
	e, _ := NewEncoder(EncoderConfig{Protection: Protection{3, 10}})
	d := NewDecoder(DecoderConfig{})
	b.SetBytes(1200)
	b.ReportAllocs()
	seq := uint16(0)
	for b.Loop() {
		pkt := pkts[seq&63]
		binary.BigEndian.PutUint16(pkt[2:], seq)
		seq++
		fecs, _ := e.Add(pkt)
		if _, err := d.AddMedia(pkt); err != nil {
			b.Fatal(err)
		}
		for _, f := range fecs {
			if _, err := d.AddFEC(seq, 5, f); err != nil {
				b.Fatal(err)
			}
			seq++
		}
	}
}
