package mediatest

import (
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// NewReceiverSink is NewSink for a track whose receiver negotiated video
// RED and ULPFEC: the sink then unwraps RED and recovers lost packets from
// the FEC, as a browser does, and counts what it recovered. Other tracks
// get a plain sink.
func NewReceiverSink(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *Sink {
	redPT, fecPT := -1, -1
	exts := map[string]int{}
	if recv != nil {
		params := recv.GetParameters()
		for _, c := range params.Codecs {
			switch {
			case strings.EqualFold(c.MimeType, "video/red"):
				redPT = int(c.PayloadType)
			case strings.EqualFold(c.MimeType, "video/ulpfec"):
				fecPT = int(c.PayloadType)
			}
		}
		for _, h := range params.HeaderExtensions {
			exts[h.URI] = h.ID
		}
	}
	if t.Kind() != webrtc.RTPCodecTypeVideo || redPT < 0 || fecPT < 0 {
		return NewSink(t)
	}
	s := &Sink{Track: t, indices: map[uint32]bool{}, cond: make(chan struct{})}
	dec := fec.NewDecoder(fec.DecoderConfig{Mutable: fec.LibwebrtcMutable(exts)})
	go s.readFEC(uint8(redPT), uint8(fecPT), dec)
	return s
}

func (s *Sink) readFEC(redPT, fecPT uint8, dec *fec.Decoder) {
	buf := make([]byte, 1500)
	var media []byte
	var p rtp.Packet
	for {
		n, _, err := s.Track.Read(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		if p.Unmarshal(pkt) != nil {
			continue
		}
		if p.PayloadType != redPT {
			s.recordPacket(&p)
			continue
		}
		s.mu.Lock()
		s.redPackets++
		s.mu.Unlock()
		out, isFEC, err := fec.UnwrapREDPacket(media[:0], pkt, fecPT)
		if err != nil {
			continue
		}
		var rec [][]byte
		if isFEC {
			s.mu.Lock()
			s.fecPackets++
			s.mu.Unlock()
			rec, _ = dec.AddFEC(p.SequenceNumber, p.SSRC, out)
		} else {
			media = out
			var mp rtp.Packet
			if mp.Unmarshal(media) == nil {
				s.recordPacket(&mp)
			}
			rec, _ = dec.AddMedia(media)
		}
		for _, r := range rec {
			var rp rtp.Packet
			if rp.Unmarshal(r) != nil {
				continue
			}
			s.mu.Lock()
			s.recovered++
			s.mu.Unlock()
			s.recordPacket(&rp)
		}
	}
}

func (s *Sink) recordPacket(p *rtp.Packet) {
	s.record(p.SequenceNumber, p.Timestamp, p.Payload, VP8IndexOffset(p.Payload), p.Padding)
}

// FECStats are what a FEC-decoding sink saw: RED packets, FEC packets
// among them, and media packets rebuilt from the FEC.
func (s *Sink) FECStats() (red, fecs, recovered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redPackets, s.fecPackets, s.recovered
}
