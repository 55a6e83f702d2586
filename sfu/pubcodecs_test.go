package sfu

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// A publisher's answer keeps the payload types of its offer (here
// Chrome's numbering, where 116 is RED, 117 its RTX and 118 ULPFEC, unlike
// the SFU's own), in the SFU's order of preference, each RTX after its
// codec, RED and ULPFEC only with PublisherFEC, audio RED first.
func TestPublisherCodecsKeepTheOffersNumbers(t *testing.T) {
	c := func(pt webrtc.PayloadType, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, SDPFmtpLine: fmtp}}
	}
	video := []webrtc.RTPCodecParameters{
		c(116, MimeVideoRED, ""), c(117, webrtc.MimeTypeRTX, "apt=116"), c(118, MimeULPFEC, ""),
		c(98, MimeVP9, "profile-id=0"), c(99, webrtc.MimeTypeRTX, "apt=98"),
		c(96, MimeVP8, ""), c(97, webrtc.MimeTypeRTX, "apt=96"),
		c(35, "video/AV1", ""), c(36, webrtc.MimeTypeRTX, "apt=35"),
	}
	audio := []webrtc.RTPCodecParameters{c(111, MimeOpus, "minptime=10;useinbandfec=1"), c(63, MimeRED, "111/111")}
	list := func(cs []webrtc.RTPCodecParameters) string {
		var out []string
		for _, x := range cs {
			out = append(out, fmt.Sprintf("%d %s %s", x.PayloadType, strings.TrimPrefix(strings.ToLower(x.MimeType), "video/"), x.SDPFmtpLine))
		}
		return strings.Join(out, ", ")
	}
	s := &SFU{codecs: supportedCodecs()}
	if got, want := list(s.rankCodecs(video, true)), "96 vp8 , 97 rtx apt=96, 98 vp9 profile-id=0, 99 rtx apt=98"; got != want {
		t.Errorf("video without publisher FEC:\n got %s\nwant %s", got, want)
	}
	if got, want := list(s.rankCodecs(video, false)),
		"96 vp8 , 97 rtx apt=96, 98 vp9 profile-id=0, 99 rtx apt=98, 116 red , 117 rtx apt=116, 118 ulpfec "; got != want {
		t.Errorf("video with publisher FEC:\n got %s\nwant %s", got, want)
	}
	if got := s.rankCodecs(audio, true); len(got) != 2 || got[0].PayloadType != 63 || got[1].PayloadType != 111 {
		t.Errorf("audio: %s, want RED (63) first, then Opus (111)", list(got))
	}
}
