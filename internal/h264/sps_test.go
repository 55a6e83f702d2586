package h264

import "testing"

// x264's SPS for 320x240, constrained baseline, with an emulation
// prevention byte.
var sps320 = []byte{0x67, 0x42, 0xC0, 0x0D, 0xDA, 0x05, 0x07, 0xEC, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
	0x00, 0x00, 0x0F, 0x03, 0xC5, 0x0A, 0xA8}

func TestParseSPS(t *testing.T) {
	s, err := ParseSPS(sps320)
	if err != nil || s.Width != 320 || s.Height != 240 || s.Profile != 66 || s.ChromaFormat != 1 {
		t.Fatalf("got %+v, %v", s, err)
	}
	for i := range 6 { // cut before the picture size
		if _, err := ParseSPS(sps320[:i]); err == nil {
			t.Fatalf("a %d-byte prefix parsed", i)
		}
	}
	pps := []byte{0x68, 0xCE, 0x0F, 0xC8}
	if _, err := ParseSPS(pps); err == nil {
		t.Fatal("a PPS parsed as an SPS")
	}
}
