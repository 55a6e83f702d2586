package sfu

import (
	"bytes"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// fecCtx is a subscriber that negotiated VP8 (100), with ulp video RED
// (116) and ULPFEC (117), with flex FlexFEC-03 (119), which pion gives a
// FEC stream (5555).
type fecCtx struct {
	fakeCtx
	ulp, flex bool
	noFECSSRC bool // pion gave no FEC stream
}

func (c fecCtx) CodecParameters() []webrtc.RTPCodecParameters {
	v := vp8Codec
	v.PayloadType = 100
	cs := []webrtc.RTPCodecParameters{v}
	if c.ulp {
		cs = append(cs,
			webrtc.RTPCodecParameters{PayloadType: 116, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeVideoRED, ClockRate: 90000}},
			webrtc.RTPCodecParameters{PayloadType: 117, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeULPFEC, ClockRate: 90000}})
	}
	if c.flex {
		cs = append(cs, webrtc.RTPCodecParameters{PayloadType: 119,
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: MimeFlexFEC03, ClockRate: 90000}})
	}
	return cs
}

func (c fecCtx) SSRCForwardErrorCorrection() webrtc.SSRC {
	if c.flex && !c.noFECSSRC {
		return 5555
	}
	return 0
}

// wireWriter keeps every packet written, marshaled as it goes on the wire.
type wireWriter struct {
	mu   sync.Mutex
	pkts []rtp.Packet
	raw  [][]byte
}

func (w *wireWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
	p.Header.Extensions = append([]rtp.Extension(nil), h.Extensions...)
	b, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.pkts, w.raw = append(w.pkts, p), append(w.raw, b)
	w.mu.Unlock()
	return len(payload), nil
}

func (w *wireWriter) Write(b []byte) (int, error) { return len(b), nil }

// waitMedia waits for n packets on the media SSRC and returns everything
// written by then.
func (w *wireWriter) waitMedia(t *testing.T, ssrc uint32, n int) ([]rtp.Packet, [][]byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got := 0
		for _, p := range w.pkts {
			if p.SSRC == ssrc {
				got++
			}
		}
		pkts, raw := append([]rtp.Packet(nil), w.pkts...), append([][]byte(nil), w.raw...)
		w.mu.Unlock()
		if got >= n {
			return pkts, raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d media packets written, want %d", got, n)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// A subscriber protected with FlexFEC-03 gets, at 20 % loss and a 50 ms
// round trip, its media plain (no RED) and numbered without gaps, and FEC
// packets on the FEC stream, numbered on their own, that rebuild each
// packet they protect from the others exactly as it was sent. FlexFEC is
// used when it is the only FEC negotiated, or when preferred; else ULPFEC
// in RED.
func TestDownTrackFlexFEC(t *testing.T) {
	for _, c := range []struct {
		ulp, flex, noFECSSRC, prefer bool
		wantFlex, wantNone           bool
	}{
		{ulp: false, flex: true, wantFlex: true},
		{ulp: true, flex: true, prefer: true, wantFlex: true},
		{ulp: true, flex: true, wantFlex: false},
		{ulp: true, flex: false, prefer: true, wantFlex: false},
		{ulp: true, flex: true, noFECSSRC: true, prefer: true, wantFlex: false},
		{ulp: false, flex: true, noFECSSRC: true, wantNone: true},
	} {
		flex := c.wantFlex
		up := newVideoUp(nil)
		up.ssrc.Store(1234)
		pt := published(up)
		d := NewDownTrack(pt, DownTrackOptions{PreferFlexFEC: c.prefer})
		w := &wireWriter{}
		if _, err := d.Bind(fecCtx{fakeCtx: fakeCtx{w: w, ssrc: 4242}, ulp: c.ulp, flex: c.flex, noFECSSRC: c.noFECSSRC}); err != nil {
			t.Fatal(err)
		}
		pt.attach(d)
		d.loss.Store(math.Float64bits(0.2))
		d.rtt.Store(int64(50 * time.Millisecond))
		pz := &packetizer{seq: 65500, perFrame: 4}
		const frames = 30
		for f := range frames {
			for _, b := range pz.frameAt(f == 0) {
				up.handlePacket(b)
			}
		}
		pkts, raw := w.waitMedia(t, 4242, frames*4)
		d.Close()
		media := map[uint16][]byte{}
		var fecs [][]byte
		var lastMedia, lastFEC *rtp.Packet
		for i := range pkts {
			p := &pkts[i]
			switch {
			case p.SSRC == 4242 && c.wantNone:
				if p.PayloadType != 100 {
					t.Fatalf("no FEC: media packet with payload type %d, want VP8 (100)", p.PayloadType)
				}
			case p.SSRC == 4242 && !flex:
				if p.PayloadType != 116 {
					t.Fatalf("ULPFEC: media packet with payload type %d, want RED (116)", p.PayloadType)
				}
			case p.SSRC == 4242:
				if p.PayloadType != 100 {
					t.Fatalf("FlexFEC: media packet with payload type %d, want VP8 (100)", p.PayloadType)
				}
				if lastMedia != nil && p.SequenceNumber != lastMedia.SequenceNumber+1 {
					t.Fatalf("media sequence %d after %d", p.SequenceNumber, lastMedia.SequenceNumber)
				}
				lastMedia = p
				media[p.SequenceNumber] = raw[i]
			case p.SSRC == 5555 && flex:
				if p.PayloadType != 119 {
					t.Fatalf("FEC packet with payload type %d, want flexfec-03 (119)", p.PayloadType)
				}
				if lastFEC != nil && p.SequenceNumber != lastFEC.SequenceNumber+1 {
					t.Fatalf("FEC sequence %d after %d", p.SequenceNumber, lastFEC.SequenceNumber)
				}
				lastFEC = p
				fecs = append(fecs, p.Payload)
			default:
				t.Fatalf("%+v: packet on SSRC %d, payload type %d", c, p.SSRC, p.PayloadType)
			}
		}
		if c.wantNone {
			if d.Stats().FECPackets != 0 {
				t.Fatalf("%+v: %d FEC packets sent", c, d.Stats().FECPackets)
			}
			continue
		}
		if !flex {
			if d.Stats().FECPackets == 0 {
				t.Fatalf("%+v: no ULPFEC sent", c)
			}
			continue
		}
		if len(fecs) == 0 || d.Stats().FECPackets != uint64(len(fecs)) {
			t.Fatalf("%d FEC packets on the FEC stream, %d counted", len(fecs), d.Stats().FECPackets)
		}
		rebuilt := 0
		for _, b := range fecs {
			h, err := fec.ParseFlexFEC03(b)
			if err != nil || h.SSRC != 4242 {
				t.Fatalf("FEC packet: %v, protects SSRC %d", err, h.SSRC)
			}
			for _, lost := range h.Seqs {
				want, ok := media[lost]
				if !ok {
					t.Fatalf("FEC protects %d, never sent", lost)
				}
				got, err := fec.RecoverFlexFEC03(h, func(s uint16) []byte {
					if s == lost {
						return nil
					}
					return media[s]
				})
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("packet %d rebuilt as %x (%v), sent as %x", lost, got, err, want)
				}
				rebuilt++
			}
		}
		t.Logf("FlexFEC: %d media packets, %d FEC packets, each of the %d protected packets rebuilt", len(media),
			len(fecs), rebuilt)
	}
}
