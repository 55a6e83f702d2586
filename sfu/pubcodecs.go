package sfu

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// publisherCodecs sets the codecs of a publisher's answer, once its offer
// is applied: what it offered and the SFU supports, under the publisher's
// own payload types, in the SFU's order of preference (browsers send the
// first), with audio RED first (a publisher that offers it protects its
// uplink with it) and video RED and ULPFEC kept only with PublisherFEC (the
// SFU decodes the FEC, upfec.go); never FlexFEC, which the SFU only sends.
//
// The payload types must be the offer's: pion answers with those of the
// preference list, and the SFU's own numbering differs from browsers' (in
// Chrome's offers 116 and 117 are not RED and ULPFEC, and its H264 profiles
// are numbered differently), which would make the publisher send media the
// SFU then reads as another codec.
func (s *SFU) publisherCodecs(pc *webrtc.PeerConnection) {
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == nil {
			continue
		}
		offered := tr.Receiver().GetParameters().Codecs
		if len(offered) == 0 {
			continue
		}
		prefs := s.rankCodecs(offered, tr.Kind() == webrtc.RTPCodecTypeVideo && !s.cfg.PublisherFEC)
		_ = tr.SetCodecPreferences(prefs) // best effort: on failure the publisher's choice stands
	}
}

// rankCodecs orders negotiated codecs (remote payload types) by the SFU's
// preference: audio RED first, then the order of s.codecs by MIME type and
// format parameters; each RTX codec right after the codec it repairs.
// Codecs the SFU does not know are dropped, and video RED and ULPFEC (with
// their RTX) too when noFEC.
func (s *SFU) rankCodecs(offered []webrtc.RTPCodecParameters, noFEC bool) []webrtc.RTPCodecParameters {
	byPT := map[webrtc.PayloadType]webrtc.RTPCodecParameters{}
	for _, c := range offered {
		byPT[c.PayloadType] = c
	}
	rank := func(c webrtc.RTPCodecParameters) int {
		if strings.EqualFold(c.MimeType, MimeRED) {
			return -1
		}
		best := -1
		for i, sc := range s.codecs {
			if !strings.EqualFold(sc.MimeType, c.MimeType) {
				continue
			}
			if sc.SDPFmtpLine == c.SDPFmtpLine {
				return i
			}
			if best < 0 {
				best = i
			}
		}
		return best
	}
	fecCodec := func(c webrtc.RTPCodecParameters) bool {
		return strings.EqualFold(c.MimeType, MimeVideoRED) || strings.EqualFold(c.MimeType, MimeULPFEC)
	}
	type ranked struct {
		c    webrtc.RTPCodecParameters
		rank int
		sub  int // 0: the codec, 1: its RTX
	}
	var out []ranked
	for _, c := range offered {
		base, sub := c, 0
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			apt, ok := rtxApt(c.SDPFmtpLine)
			if base, ok = byPT[apt]; !ok {
				continue
			}
			sub = 1
		}
		r := rank(base)
		if r == -1 && !strings.EqualFold(base.MimeType, MimeRED) || noFEC && fecCodec(base) ||
			strings.EqualFold(base.MimeType, MimeFlexFEC03) { // sent, never received (videofec.go)
			continue
		}
		out = append(out, ranked{c, r, sub})
	}
	slices.SortStableFunc(out, func(a, b ranked) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return a.sub - b.sub
	})
	prefs := make([]webrtc.RTPCodecParameters, len(out))
	for i, r := range out {
		prefs[i] = r.c
	}
	return prefs
}

// rtxApt reads the payload type an RTX codec repairs from its format
// parameters ("apt=96").
func rtxApt(fmtp string) (webrtc.PayloadType, bool) {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == "apt" {
			n, err := strconv.Atoi(v)
			return webrtc.PayloadType(n), err == nil && n >= 0 && n < 128
		}
	}
	return 0, false
}
