package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/interceptor/pkg/flexfec"
	"github.com/pion/rtp"
)

// TestFlexFEC03RecoversEachLoss: FlexFEC-03 over groups of up to 48
// packets (all three mask lengths), 1 to 5 FEC packets per group: every
// single loss in a FEC packet's set is rebuilt exactly.
func TestFlexFEC03RecoversEachLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 27))
	const ssrc = 0x11223344
	for _, n := range []int{1, 2, 14, 15, 16, 30, 45, 46, 47, 48} {
		for _, m := range []int{1, 2, 3, 5} {
			if m > n {
				continue
			}
			enc, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: m, Group: n}, MaxFrames: -1,
				Format: FlexFEC03, SSRC: ssrc})
			if err != nil {
				t.Fatal(err)
			}
			seq := uint16(65530) // across the wrap
			have := map[uint16][]byte{}
			var fecs [][]byte
			for i := range n {
				p := randPacket(t, r, seq, 9000, i == n-1, pktOpts{maxPayload: 300})
				have[seq] = p
				out, err := enc.Add(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range out {
					fecs = append(fecs, append([]byte(nil), f...))
				}
				seq++
			}
			if len(fecs) != m {
				t.Fatalf("n=%d m=%d: %d FEC packets", n, m, len(fecs))
			}
			covered := 0
			for _, raw := range fecs {
				f, err := ParseFlexFEC03(raw)
				if err != nil || f.SSRC != ssrc {
					t.Fatalf("FlexFEC packet %x: %v, protected SSRC %x", raw[:20], err, f.SSRC)
				}
				covered += len(f.Seqs)
				for _, lost := range f.Seqs {
					got, err := RecoverFlexFEC03(f, func(s uint16) []byte {
						if s == lost {
							return nil
						}
						return have[s]
					})
					if err != nil || !bytes.Equal(got, have[lost]) {
						t.Fatalf("n=%d m=%d: packet %d rebuilt as\n%x (%v)\nwant\n%x", n, m, lost, got, err, have[lost])
					}
				}
			}
			if covered != n {
				t.Fatalf("n=%d m=%d: FEC packets cover %d packets", n, m, covered)
			}
		}
	}
}

func TestEncoderRefusesUnknownFormat(t *testing.T) {
	if _, err := NewEncoder(EncoderConfig{Format: Format(7)}); !errors.Is(err, ErrFormat) {
		t.Fatalf("format 7: %v, want ErrFormat", err)
	}
}

// TestFlexFEC03MatchesPion: one FEC packet over a group is byte for byte
// what pion's FlexFEC-03 encoder (an independent implementation) makes.
func TestFlexFEC03MatchesPion(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	const ssrc = 0x11223344
	for _, n := range []int{1, 7, 15, 16, 40, 46, 48} {
		enc, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: 1, Group: n}, MaxFrames: -1,
			Format: FlexFEC03, SSRC: ssrc})
		if err != nil {
			t.Fatal(err)
		}
		var pkts []rtp.Packet
		var ours []byte
		for i := range n {
			raw := randPacket(t, r, uint16(1000+i), 3000, i == n-1, pktOpts{maxPayload: 200, plain: true})
			var p rtp.Packet
			if err := p.Unmarshal(raw); err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, p)
			out, err := enc.Add(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) == 1 {
				ours = append([]byte(nil), out[0]...)
			}
		}
		theirs := flexfec.NewFlexEncoder03(100, 0x55667788).EncodeFec(pkts, 1)
		if len(theirs) != 1 || ours == nil {
			t.Fatalf("n=%d: pion made %d FEC packets, we made %v", n, len(theirs), ours != nil)
		}
		if !bytes.Equal(ours, theirs[0].Payload) {
			t.Fatalf("n=%d: ours\n%x\npion's\n%x", n, ours, theirs[0].Payload)
		}
	}
}

// FuzzParseFlexFEC03: any input parses or is refused without panicking; a
// parsed header's set is within the mask's reach, and recovery from any
// packets of the right sizes either fails cleanly or yields a packet of the
// protected SSRC.
func FuzzParseFlexFEC03(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{3, 20, 48} {
		enc, err := NewEncoder(EncoderConfig{Protection: Protection{FEC: 1, Group: n}, MaxFrames: -1,
			Format: FlexFEC03, SSRC: 7})
		if err != nil {
			f.Fatal(err)
		}
		for i := range n {
			out, err := enc.Add(randPacket(f, r, uint16(i), 0, i == n-1, pktOpts{maxPayload: 40}))
			if err != nil {
				f.Fatal(err)
			}
			for _, p := range out {
				f.Add(append([]byte(nil), p...))
			}
		}
	}
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseFlexFEC03(b)
		if err != nil {
			return
		}
		if len(h.Seqs) == 0 || len(h.Seqs) > 109 {
			t.Fatalf("%d protected packets", len(h.Seqs))
		}
		pkt := make([]byte, rtpHeaderLen+len(h.Payload)/2)
		pkt[0] = 0x80
		got, err := RecoverFlexFEC03(h, func(s uint16) []byte {
			if s == h.Seqs[0] {
				return nil
			}
			return pkt
		})
		if err == nil && (len(got) < rtpHeaderLen || binary.BigEndian.Uint32(got[8:]) != h.SSRC) {
			t.Fatalf("recovered %x", got)
		}
	})
}
