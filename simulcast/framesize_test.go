package simulcast

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bitWriter builds big-endian bit fields for hand-made headers.
type bitWriter struct {
	b []byte
	n int // bits written
}

func (w *bitWriter) u(n int, v uint64) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.b[len(w.b)-1] |= 0x80 >> uint(w.n%8)
		}
		w.n++
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.u(1, 1)
	} else {
		w.u(1, 0)
	}
}

func (w *bitWriter) ue(v uint32) {
	x := uint64(v) + 1
	n := 0
	for x>>uint(n+1) != 0 {
		n++
	}
	w.u(n, 0)
	w.u(n+1, x)
}

func (w *bitWriter) se(v int32) {
	if v > 0 {
		w.ue(uint32(2*v - 1))
	} else {
		w.ue(uint32(-2 * v))
	}
}

// rbsp ends the bit string with rbsp_trailing_bits.
func (w *bitWriter) rbsp() []byte {
	w.u(1, 1)
	for w.n%8 != 0 {
		w.u(1, 0)
	}
	return w.b
}

// escapeRBSP inserts emulation prevention bytes (H.264 7.4.1).
func escapeRBSP(b []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// sps describes a hand-built H.264 sequence parameter set.
type sps struct {
	profile      uint64
	chroma       uint32 // chroma_format_idc, for the profiles that carry it
	separate     bool   // separate_colour_plane_flag
	scaling      bool   // write every scaling list
	pocType      uint32
	widthMbs     uint32 // pic_width_in_mbs_minus1 + 1
	heightUnits  uint32 // pic_height_in_map_units_minus1 + 1
	fields       bool   // frame_mbs_only_flag = 0
	crop         [4]uint32
	bigPOCOffset bool // offsets whose codes contain runs of zero bytes
	vui          bool
}

func (s sps) nal() []byte {
	var w bitWriter
	w.u(8, s.profile)
	w.u(8, 0x00) // constraint flags
	w.u(8, 31)   // level_idc
	w.ue(0)      // seq_parameter_set_id
	switch s.profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		w.ue(s.chroma)
		if s.chroma == 3 {
			w.flag(s.separate)
		}
		w.ue(0) // bit_depth_luma_minus8
		w.ue(2) // bit_depth_chroma_minus8
		w.u(1, 0)
		w.flag(s.scaling)
		if s.scaling {
			lists := 8
			if s.chroma == 3 {
				lists = 12
			}
			for i := range lists {
				w.u(1, 1)
				size := 16
				if i >= 6 {
					size = 64
				}
				if i%2 == 0 { // delta 0 from 8 for every entry
					for range size {
						w.se(0)
					}
				} else { // a few deltas, then 0 (repeat the last to the end)
					w.se(5)
					w.se(-3)
					w.se(-10) // next = 0: stop reading deltas
				}
			}
		}
	}
	w.ue(0) // log2_max_frame_num_minus4
	w.ue(s.pocType)
	switch s.pocType {
	case 0:
		w.ue(2)
	case 1:
		w.u(1, 0)
		w.se(-1)
		w.se(1)
		w.ue(3)
		for i := range 3 {
			if s.bigPOCOffset {
				w.se(-(1 << 22) + int32(i))
			} else {
				w.se(int32(i))
			}
		}
	}
	w.ue(4) // max_num_ref_frames
	w.u(1, 0)
	w.ue(s.widthMbs - 1)
	w.ue(s.heightUnits - 1)
	w.flag(!s.fields)
	if s.fields {
		w.u(1, 1) // mb_adaptive_frame_field_flag
	}
	w.u(1, 1) // direct_8x8_inference_flag
	cropped := s.crop != [4]uint32{}
	w.flag(cropped)
	if cropped {
		for _, c := range s.crop {
			w.ue(c)
		}
	}
	w.flag(s.vui)
	if s.vui {
		w.u(1, 0) // aspect_ratio_info_present_flag etc., enough for this test
	}
	return append([]byte{0x67}, escapeRBSP(w.rbsp())...)
}

// stapA packs NAL units into a STAP-A payload (RFC 6184 5.7.1).
func stapA(nals ...[]byte) []byte {
	p := []byte{0x78}
	for _, n := range nals {
		p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
		p = append(p, n...)
	}
	return p
}

func checkSize(t *testing.T, name, mime string, p []byte, w, h int) {
	t.Helper()
	gw, gh, ok := FrameSize(mime, p)
	if !ok || gw != w || gh != h {
		t.Errorf("%s: FrameSize = %dx%d, %v; want %dx%d", name, gw, gh, ok, w, h)
	}
}

func checkNoSize(t *testing.T, name, mime string, p []byte) {
	t.Helper()
	if w, h, ok := FrameSize(mime, p); ok {
		t.Errorf("%s: FrameSize = %dx%d, want none", name, w, h)
	}
}

func TestFrameSizeH264Handmade(t *testing.T) {
	pps := []byte{0x68, 0xCE, 0x3C, 0x80}
	cases := []struct {
		name string
		s    sps
		w, h int
	}{
		{"baseline", sps{profile: 66, widthMbs: 20, heightUnits: 12}, 320, 192},
		{"main 1080p cropped", sps{profile: 77, widthMbs: 120, heightUnits: 68, crop: [4]uint32{0, 0, 0, 4}}, 1920, 1080},
		{"high 4:2:0 crop", sps{profile: 100, chroma: 1, widthMbs: 21, heightUnits: 12, crop: [4]uint32{0, 7, 0, 5}}, 322, 182},
		{"high scaling lists", sps{profile: 100, chroma: 1, scaling: true, widthMbs: 80, heightUnits: 45}, 1280, 720},
		{"high 4:2:2 crop", sps{profile: 122, chroma: 2, widthMbs: 21, heightUnits: 12, crop: [4]uint32{1, 6, 3, 8}}, 322, 181},
		{"high 4:4:4 crop", sps{profile: 244, chroma: 3, scaling: true, widthMbs: 21, heightUnits: 12, crop: [4]uint32{0, 15, 0, 11}}, 321, 181},
		{"4:4:4 separate planes", sps{profile: 244, chroma: 3, separate: true, widthMbs: 21, heightUnits: 12, crop: [4]uint32{0, 15, 0, 11}}, 321, 181},
		{"monochrome", sps{profile: 100, chroma: 0, widthMbs: 21, heightUnits: 12, crop: [4]uint32{0, 15, 0, 11}}, 321, 181},
		{"fields", sps{profile: 77, pocType: 1, fields: true, widthMbs: 20, heightUnits: 6, crop: [4]uint32{0, 0, 0, 3}}, 320, 180},
		{"high fields 4:2:2", sps{profile: 122, chroma: 2, fields: true, widthMbs: 20, heightUnits: 6, crop: [4]uint32{0, 0, 1, 5}}, 320, 180},
		{"poc type 2, vui", sps{profile: 66, pocType: 2, widthMbs: 40, heightUnits: 23, crop: [4]uint32{0, 0, 0, 4}, vui: true}, 640, 360},
		{"emulation prevention", sps{profile: 66, pocType: 1, bigPOCOffset: true, widthMbs: 40, heightUnits: 23, crop: [4]uint32{0, 0, 0, 4}}, 640, 360},
	}
	for _, c := range cases {
		nal := c.s.nal()
		if c.s.bigPOCOffset && !bytes.Contains(nal, []byte{0, 0, 3}) {
			t.Fatalf("%s: vector has no emulation prevention byte: % x", c.name, nal)
		}
		checkSize(t, c.name, "video/H264", nal, c.w, c.h)
		checkSize(t, c.name+" in STAP-A", "video/h264", stapA(nal, pps), c.w, c.h)
		checkSize(t, c.name+" second in STAP-A", "VIDEO/H264", stapA([]byte{0x06, 0x05, 0x01, 0x00}, nal, pps), c.w, c.h)
		for n := range len(nal) - 1 {
			if w, h, ok := FrameSize("video/H264", nal[:n]); ok && (w != c.w || h != c.h) {
				t.Errorf("%s truncated to %d: %dx%d", c.name, n, w, h)
			}
		}
	}
	good := sps{profile: 66, widthMbs: 20, heightUnits: 12}.nal()
	checkNoSize(t, "PPS", "video/H264", pps)
	checkNoSize(t, "IDR slice", "video/H264", []byte{0x65, 0x88, 0x84, 0x00, 0x33})
	checkNoSize(t, "STAP-A without SPS", "video/H264", stapA(pps, []byte{0x65, 0x88}))
	checkNoSize(t, "STAP-A with a bad size", "video/H264", append([]byte{0x78, 0x00, 0xFF}, good...))
	checkNoSize(t, "STAP-A with a zero size", "video/H264", append([]byte{0x78, 0x00, 0x00}, good...))
	checkNoSize(t, "FU-A", "video/H264", append([]byte{0x7C, 0x87}, good[1:]...))
	checkNoSize(t, "crop beyond the picture", "video/H264", sps{profile: 66, widthMbs: 1, heightUnits: 1, crop: [4]uint32{4, 4, 0, 0}}.nal())
	checkNoSize(t, "chroma_format_idc out of range", "video/H264", sps{profile: 100, chroma: 4, widthMbs: 1, heightUnits: 1}.nal())
	checkNoSize(t, "SPS for another codec", "video/VP8", good)
	checkNoSize(t, "empty", "video/H264", nil)
	// a run of zero bits longer than any valid Exp-Golomb code
	checkNoSize(t, "overlong Exp-Golomb code", "video/H264", []byte{0x67, 0x42, 0x00, 0x1F, 0, 0, 0, 0, 0, 0x80})
}

// vp8KeyHeader returns a VP8 key frame's first 10 bytes (RFC 6386 9.1).
func vp8KeyHeader(w, h int, hscale, vscale byte) []byte {
	size := 1234 // first partition size, 19 bits
	tag := uint32(0) | 0<<1 | 1<<4 | uint32(size)<<5
	return []byte{byte(tag), byte(tag >> 8), byte(tag >> 16), 0x9d, 0x01, 0x2a,
		byte(w), byte(w>>8) | hscale<<6, byte(h), byte(h>>8) | vscale<<6}
}

func TestFrameSizeVP8Handmade(t *testing.T) {
	key := vp8KeyHeader(1280, 720, 0, 0)
	descs := map[string][]byte{
		"minimal":            {0x10},
		"X only":             {0x90, 0x00},
		"7-bit picture ID":   {0x90, 0x80, 0x05},
		"15-bit, L, T and K": {0x90, 0xF0, 0x81, 0x23, 0x07, 0x40},
		"L only":             {0x90, 0x40, 0x07},
		"K only":             {0x90, 0x10, 0x1F},
	}
	for name, d := range descs {
		p := append(append(append([]byte(nil), d...), key...), 0x11, 0x22)
		checkSize(t, name, "video/VP8", p, 1280, 720)
		for n := range len(d) + len(key) {
			checkNoSize(t, fmt.Sprintf("%s truncated to %d", name, n), "video/VP8", p[:n])
		}
	}
	checkSize(t, "scale bits dropped", "video/vp8", append([]byte{0x10}, vp8KeyHeader(322, 182, 3, 1)...), 322, 182)
	checkSize(t, "largest", "video/VP8", append([]byte{0x10}, vp8KeyHeader(16383, 16383, 2, 2)...), 16383, 16383)

	inter := append([]byte{0x10}, vp8KeyHeader(320, 180, 0, 0)...)
	inter[1] |= 0x01
	checkNoSize(t, "inter frame", "video/VP8", inter)
	notStart := append([]byte{0x00}, key...)
	checkNoSize(t, "not the start of a partition", "video/VP8", notStart)
	otherPartition := append([]byte{0x11}, key...)
	checkNoSize(t, "start of partition 1", "video/VP8", otherPartition)
	badCode := append([]byte{0x10}, key...)
	badCode[5] = 0x02
	checkNoSize(t, "bad start code", "video/VP8", badCode)
	checkNoSize(t, "zero width", "video/VP8", append([]byte{0x10}, vp8KeyHeader(0, 180, 1, 0)...))
	checkNoSize(t, "VP8 frame as VP9", "video/VP9", append([]byte{0x10}, key...))
	checkNoSize(t, "unknown codec", "video/AV1", append([]byte{0x10}, key...))
}

// vp9KeyHeader returns the start of a VP9 key frame's uncompressed header
// (VP9 bitstream specification 6.2) followed by a few more bytes.
func vp9KeyHeader(profile int, rgb bool, w, h int) []byte {
	var b bitWriter
	b.u(2, 2) // frame_marker
	b.u(1, uint64(profile&1))
	b.u(1, uint64(profile>>1))
	if profile == 3 {
		b.u(1, 0)
	}
	b.u(1, 0) // show_existing_frame
	b.u(1, 0) // frame_type: KEY_FRAME
	b.u(1, 1) // show_frame
	b.u(1, 0) // error_resilient_mode
	b.u(24, 0x498342)
	if profile >= 2 {
		b.u(1, 1) // twelve bits
	}
	if rgb {
		b.u(3, 7)
		if profile == 1 || profile == 3 {
			b.u(1, 0)
		}
	} else {
		b.u(3, 2) // BT.709
		b.u(1, 1) // color_range
		if profile == 1 || profile == 3 {
			b.u(3, 0b100) // 4:2:2
		}
	}
	b.u(16, uint64(w-1))
	b.u(16, uint64(h-1))
	b.u(1, 0) // render_and_frame_size_different
	b.u(16, 0xABCD)
	return b.b
}

func TestFrameSizeVP9Handmade(t *testing.T) {
	for profile := range 4 {
		for _, rgb := range []bool{false, true} {
			hdr := vp9KeyHeader(profile, rgb, 322, 182)
			name := fmt.Sprintf("profile %d rgb %v", profile, rgb)
			descs := map[string][]byte{
				"B only":                   {0x08},
				"7-bit picture ID":         {0x88, 0x11},
				"15-bit ID, layer, TL0":    {0xA8, 0x81, 0x02, 0x00, 0x07},
				"flexible with layer":      {0xB8, 0x05, 0x00},
				"SS without resolution":    {0x8A, 0x05, 0x00},
				"SS with picture group":    {0x8A, 0x05, 0x08, 0x02, 0x04, 0x01, 0x28, 0x01, 0x02},
				"SS, 3 layers, no Y, no G": {0xAA, 0x05, 0x00, 0x01, 0x40},
			}
			for dn, d := range descs {
				p := append(append([]byte(nil), d...), hdr...)
				checkSize(t, name+" "+dn, "video/VP9", p, 322, 182)
				for n := range len(d) + 9 { // the frame size needs at least 9 bytes
					checkNoSize(t, fmt.Sprintf("%s %s truncated to %d", name, dn, n), "video/VP9", p[:n])
				}
			}
		}
	}
	hdr := vp9KeyHeader(0, false, 1280, 720)
	checkSize(t, "largest", "video/VP9", append([]byte{0x08}, vp9KeyHeader(0, false, 65536, 65536)...), 65536, 65536)
	// the scalability structure's resolution wins over the header, per layer
	ss := []byte{0x50, 0x00, 0xA0, 0x00, 0x5A, 0x01, 0x40, 0x00, 0xB4, 0x02, 0x80, 0x01, 0x68}
	checkSize(t, "SS layer 0", "video/VP9", append([]byte{0x8A, 0x01}, append(ss, hdr...)...), 160, 90)
	for sid, want := range [][2]int{{160, 90}, {320, 180}, {640, 360}} {
		p := []byte{0xAA, 0x01, byte(sid << 1), 0x09} // layer indices and TL0PICIDX
		p = append(append(p, ss...), hdr...)
		checkSize(t, fmt.Sprintf("SS layer %d", sid), "video/VP9", p, want[0], want[1])
	}
	// SID beyond the described layers: the header is used
	p := append(append([]byte{0xAA, 0x01, 3 << 1, 0x09}, ss...), hdr...)
	checkSize(t, "SID beyond N_S", "video/VP9", p, 1280, 720)
	// an SS with resolution in a packet that does not start the frame, and
	// after the reference indices of an inter frame in flexible mode
	checkSize(t, "SS without B", "video/VP9", []byte{0x02, 0x10, 0x01, 0x40, 0x00, 0xB4}, 320, 180)
	checkSize(t, "SS after P_DIFF", "video/VP9", []byte{0xD2, 0x81, 0x01, 0x03, 0x05, 0x02, 0x10, 0x01, 0x40, 0x00, 0xB4}, 320, 180)
	checkNoSize(t, "four P_DIFF", "video/VP9", []byte{0xD2, 0x81, 0x01, 0x03, 0x05, 0x07, 0x09, 0x10, 0x01, 0x40, 0x00, 0xB4})
	checkNoSize(t, "SS with zero width", "video/VP9", []byte{0x02, 0x10, 0x00, 0x00, 0x00, 0xB4})
	checkNoSize(t, "SS truncated resolution", "video/VP9", []byte{0x0A, 0x30, 0x01, 0x40, 0x00, 0xB4, 0x00, 0x10})

	checkNoSize(t, "not a frame start", "video/VP9", append([]byte{0x80, 0x01}, hdr...))
	inter := append([]byte{0x08}, hdr...)
	inter[1] |= 0x04 // frame_type = NON_KEY_FRAME
	checkNoSize(t, "inter frame", "video/VP9", inter)
	existing := append([]byte{0x08}, hdr...)
	existing[1] |= 0x08 // show_existing_frame
	checkNoSize(t, "show existing frame", "video/VP9", existing)
	marker := append([]byte{0x08}, hdr...)
	marker[1] &^= 0x80
	checkNoSize(t, "bad frame marker", "video/VP9", marker)
	sync := append([]byte{0x08}, hdr...)
	sync[3] ^= 0x01
	checkNoSize(t, "bad sync code", "video/VP9", sync)
	checkNoSize(t, "empty", "video/VP9", nil)
}

// ffmpegFrame encodes one frame of the test source with ffmpeg and returns
// its bitstream. Without ffmpeg (or the encoder) it skips the test, unless
// CHORUS_E2E=1 says the tools must be there. An optional encoding (a pixel
// format that depends on how the encoder was built) is skipped when it
// fails even then.
func ffmpegFrame(t *testing.T, optional bool, format string, args ...string) []byte {
	t.Helper()
	missing := t.Skipf
	if os.Getenv("CHORUS_E2E") == "1" {
		missing = t.Fatalf
	}
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		missing("ffmpeg not found: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...),
		"-frames:v", "1", "-f", format, out)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		if optional {
			missing = t.Skipf
		}
		missing("ffmpeg %v: %v\n%s", args, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ivfFirstFrame returns the first frame of an IVF file.
func ivfFirstFrame(t *testing.T, f []byte) []byte {
	t.Helper()
	if len(f) < 32 || string(f[:4]) != "DKIF" {
		t.Fatalf("not an IVF file: % x", f[:min(len(f), 32)])
	}
	hl := int(binary.LittleEndian.Uint16(f[6:8]))
	if len(f) < hl+12 {
		t.Fatal("IVF file without a frame")
	}
	n := int(binary.LittleEndian.Uint32(f[hl : hl+4]))
	if len(f) < hl+12+n {
		t.Fatal("IVF frame truncated")
	}
	return f[hl+12 : hl+12+n]
}

// annexBNALs splits an H.264 Annex B byte stream into NAL units.
func annexBNALs(b []byte) [][]byte {
	var nals [][]byte
	for _, part := range bytes.Split(b, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00") // a 4-byte start code's zero, trailing_zero_8bits
		if len(part) > 0 {
			nals = append(nals, part)
		}
	}
	return nals
}

// firstPacket returns what a packetizer would put in the first RTP packet
// of a frame: the descriptor and at most 1100 bytes of the frame.
func firstPacket(desc, frame []byte) []byte {
	return append(append([]byte(nil), desc...), frame[:min(len(frame), 1100)]...)
}

var encodeSizes = [][2]int{{320, 180}, {640, 360}, {1280, 720}, {322, 182}}

func lavfi(w, h int) []string {
	return []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=30", w, h)}
}

func TestFrameSizeVP8Encoded(t *testing.T) {
	for _, s := range encodeSizes {
		f := ivfFirstFrame(t, ffmpegFrame(t, false, "ivf", append(lavfi(s[0], s[1]), "-c:v", "libvpx", "-pix_fmt", "yuv420p")...))
		name := fmt.Sprintf("VP8 %dx%d", s[0], s[1])
		checkSize(t, name, "video/VP8", firstPacket([]byte{0x10}, f), s[0], s[1])
		checkSize(t, name+" full descriptor", "video/VP8", firstPacket([]byte{0x90, 0xF0, 0xAB, 0xCD, 0x12, 0x20}, f), s[0], s[1])
		// the second packet of the frame does not start partition 0
		checkNoSize(t, name+" later packet", "video/VP8", firstPacket([]byte{0x00}, f))
	}
}

func TestFrameSizeVP9Encoded(t *testing.T) {
	type enc struct {
		w, h   int
		pixFmt string
	}
	var encs []enc
	for _, s := range encodeSizes {
		encs = append(encs, enc{s[0], s[1], "yuv420p"})
	}
	encs = append(encs,
		enc{321, 181, "yuv444p"},     // profile 1
		enc{321, 181, "gbrp"},        // profile 1, RGB color space
		enc{322, 182, "yuv420p10le"}, // profile 2
		enc{321, 181, "yuv444p12le"}, // profile 3
	)
	for _, e := range encs {
		t.Run(fmt.Sprintf("%dx%d %s", e.w, e.h, e.pixFmt), func(t *testing.T) {
			f := ivfFirstFrame(t, ffmpegFrame(t, e.pixFmt != "yuv420p", "ivf", append(lavfi(e.w, e.h), "-c:v", "libvpx-vp9", "-pix_fmt", e.pixFmt)...))
			checkSize(t, "B only", "video/VP9", firstPacket([]byte{0x08}, f), e.w, e.h)
			checkSize(t, "picture ID, layer, TL0PICIDX", "video/VP9", firstPacket([]byte{0xA8, 0x80, 0x01, 0x00, 0x05}, f), e.w, e.h)
			checkSize(t, "SS without resolution", "video/VP9", firstPacket([]byte{0x8A, 0x01, 0x08, 0x01, 0x04, 0x01}, f), e.w, e.h)
			checkNoSize(t, "not a frame start", "video/VP9", firstPacket([]byte{0x00}, f))
		})
	}
}

func TestFrameSizeH264Encoded(t *testing.T) {
	type enc struct {
		w, h     int
		args     []string
		optional bool
	}
	var encs []enc
	for _, s := range encodeSizes {
		encs = append(encs,
			enc{s[0], s[1], []string{"-pix_fmt", "yuv420p", "-profile:v", "baseline"}, false},
			enc{s[0], s[1], []string{"-pix_fmt", "yuv420p"}, false}) // High
	}
	encs = append(encs,
		enc{322, 181, []string{"-pix_fmt", "yuv422p"}, true},                      // High 4:2:2
		enc{321, 181, []string{"-pix_fmt", "yuv444p"}, true},                      // High 4:4:4: crop unit 1
		enc{320, 180, []string{"-pix_fmt", "yuv420p", "-flags", "+ildct"}, false}, // interlaced: map units are field pairs
		enc{320, 180, []string{"-pix_fmt", "gray"}, true},                         // monochrome
	)
	for _, e := range encs {
		t.Run(fmt.Sprintf("%dx%d %v", e.w, e.h, e.args), func(t *testing.T) {
			args := append(lavfi(e.w, e.h), append([]string{"-c:v", "libx264"}, e.args...)...)
			var sps, pps []byte
			for _, n := range annexBNALs(ffmpegFrame(t, e.optional, "h264", args...)) {
				switch n[0] & 0x1F {
				case 7:
					sps = n
				case 8:
					pps = n
				}
			}
			if sps == nil || pps == nil {
				t.Fatal("no SPS or PPS in the stream")
			}
			checkSize(t, "SPS", "video/H264", sps, e.w, e.h)
			checkSize(t, "STAP-A", "video/H264", stapA(sps, pps), e.w, e.h)
			checkNoSize(t, "PPS", "video/H264", pps)
		})
	}
}

func FuzzFrameSize(f *testing.F) {
	mimes := []string{"video/VP8", "video/VP9", "video/H264", "audio/opus"}
	f.Add(uint8(0), append([]byte{0x90, 0xF0, 0x81, 0x23, 0x07, 0x40}, vp8KeyHeader(640, 360, 1, 1)...))
	for profile := range 4 {
		f.Add(uint8(1), append([]byte{0xA8, 0x81, 0x02, 0x00, 0x07}, vp9KeyHeader(profile, profile == 3, 321, 181)...))
	}
	f.Add(uint8(1), []byte{0xAA, 0x01, 0x02, 0x09, 0x50, 0x00, 0xA0, 0x00, 0x5A, 0x01, 0x40, 0x00, 0xB4, 0x02, 0x80, 0x01, 0x68})
	f.Add(uint8(1), []byte{0xD2, 0x81, 0x01, 0x03, 0x05, 0x02, 0x18, 0x01, 0x40, 0x00, 0xB4, 0x02, 0x04, 0x01, 0x00})
	f.Add(uint8(2), sps{profile: 244, chroma: 3, scaling: true, widthMbs: 21, heightUnits: 12, crop: [4]uint32{0, 15, 0, 11}}.nal())
	f.Add(uint8(2), stapA(sps{profile: 77, pocType: 1, fields: true, widthMbs: 20, heightUnits: 6, crop: [4]uint32{0, 0, 0, 3}}.nal(), []byte{0x68, 0xCE}))
	f.Add(uint8(2), sps{profile: 66, pocType: 1, bigPOCOffset: true, widthMbs: 40, heightUnits: 23}.nal())
	f.Fuzz(func(t *testing.T, m uint8, p []byte) {
		mime := mimes[int(m)%len(mimes)]
		orig := append([]byte(nil), p...)
		w, h, ok := FrameSize(mime, p)
		if !bytes.Equal(p, orig) {
			t.Fatal("FrameSize modified its input")
		}
		if !ok {
			if w != 0 || h != 0 {
				t.Fatalf("%s: no size but %dx%d", mime, w, h)
			}
			return
		}
		if w <= 0 || h <= 0 || w > 1<<21 || h > 1<<21 {
			t.Fatalf("%s: implausible size %dx%d", mime, w, h)
		}
	})
}
