package sfu

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// fecPublisher wraps a packetizer's VP8 frames the way a browser that
// negotiated RED and ULPFEC sends them: every media packet in RED, and
// after each frame the ULPFEC packets of the groups that closed, numbered
// in the media's sequence space.
type fecPublisher struct {
	t   testing.TB
	enc *fec.Encoder
	seq uint16
}

func (p *fecPublisher) frame(media [][]byte) [][]byte {
	var out [][]byte
	var ts uint32
	for _, m := range media {
		pkt := slices.Clone(m)
		binary.BigEndian.PutUint16(pkt[2:], p.seq)
		p.seq++
		ts = binary.BigEndian.Uint32(pkt[4:])
		fecs, err := p.enc.Add(pkt)
		if err != nil {
			p.t.Fatal(err)
		}
		red := append(slices.Clone(pkt[:12]), fec.WrapRED(nil, pkt[1]&0x7F, pkt[12:])...)
		red[1] = red[1]&0x80 | 116
		out = append(out, red)
		for _, f := range fecs {
			h := make([]byte, 12)
			h[0], h[1] = 0x80, 116
			binary.BigEndian.PutUint16(h[2:], p.seq)
			p.seq++
			binary.BigEndian.PutUint32(h[4:], ts)
			binary.BigEndian.PutUint32(h[8:], 1234)
			out = append(out, append(h, fec.WrapRED(nil, 117, f)...))
		}
	}
	return out
}

func TestUpTrackRebuildsFromPublisherFEC(t *testing.T) {
	up := NewUpTrack(UpTrackOptions{
		Info:  TrackInfo{ID: "TR1", ParticipantID: "PA1", Kind: webrtc.RTPCodecTypeVideo, MimeType: MimeVP8},
		Codec: vp8Codec, REDPayloadType: 116, FECPayloadType: 117,
	})
	up.ssrc.Store(1234)
	w := &fakeWriter{}
	d := bindDown(t, up, w, 256)
	defer d.Close()
	enc, err := fec.NewEncoder(fec.EncoderConfig{Protection: fec.Protection{FEC: 1, Group: 2}})
	if err != nil {
		t.Fatal(err)
	}
	pub := &fecPublisher{t: t, enc: enc, seq: 1000}
	src := &packetizer{perFrame: 2}
	media, lost := 0, 0
	for f := range 20 {
		pkts := pub.frame(src.frameAt(f == 0))
		media += 2
		for i, p := range pkts {
			if f%3 == 1 && i == 0 { // the first packet of every third frame is lost
				lost++
				continue
			}
			up.handlePacket(p)
		}
	}
	waitCount(t, w, int64(media))
	hs := w.written()
	seqs := make([]uint16, 0, len(hs))
	for _, h := range hs {
		seqs = append(seqs, h.SequenceNumber-hs[0].SequenceNumber)
		if h.PayloadType != 100 {
			t.Fatalf("forwarded payload type %d, want the subscriber's VP8 (100)", h.PayloadType)
		}
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if int(s) != i {
			t.Fatalf("outgoing sequence numbers %v: not %d contiguous numbers (FEC numbers must be taken out, lost packets rebuilt)", seqs, media)
		}
	}
	st := up.Stats()
	if st.FECRecovered != uint64(lost) || st.FECPackets != 20 {
		t.Errorf("FEC packets %d, rebuilt %d; want 20 and %d", st.FECPackets, st.FECRecovered, lost)
	}
}

// FuzzUpTrackPublisherInput feeds arbitrary packets to an up track that
// accepts RED and ULPFEC, as media and as RTX: nothing may panic, and a
// down track keeps getting whatever is forwarded.
func FuzzUpTrackPublisherInput(f *testing.F) {
	enc, err := fec.NewEncoder(fec.EncoderConfig{Protection: fec.Protection{FEC: 1, Group: 2}})
	if err != nil {
		f.Fatal(err)
	}
	pub := &fecPublisher{t: f, enc: enc, seq: 1}
	src := &packetizer{perFrame: 2}
	for _, p := range pub.frame(src.frameAt(true)) {
		f.Add(p, false)
		f.Add(p, true)
	}
	f.Add([]byte{0x80, 116, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xd2, 0xf5}, false) // RED, multi-block header cut short
	f.Add([]byte{0xb0, 116, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xd2, 0xbe, 0xde, 0, 9, 0xff}, true)
	f.Fuzz(func(t *testing.T, b []byte, asRTX bool) {
		up := NewUpTrack(UpTrackOptions{
			Info:  TrackInfo{ID: "TR1", ParticipantID: "PA1", Kind: webrtc.RTPCodecTypeVideo, MimeType: MimeVP8},
			Codec: vp8Codec, REDPayloadType: 116, FECPayloadType: 117,
		})
		up.ssrc.Store(1234)
		for _, p := range pub.frame(src.frameAt(false)) {
			up.handlePacket(p)
		}
		in := append([]byte(nil), b...)
		if asRTX {
			up.handleRTX(in)
		} else {
			up.handlePacket(in)
		}
		// and the stream goes on
		for _, p := range pub.frame(src.frameAt(false)) {
			up.handlePacket(p)
		}
	})
}
