package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// needFFmpeg skips the test when ffmpeg/ffprobe are missing, unless
// CHORUS_E2E is set, in which case their absence is a failure.
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CHORUS_E2E") != "" {
				t.Fatalf("%s is required when CHORUS_E2E is set: %v", tool, err)
			}
			t.Skipf("%s not installed (set CHORUS_E2E to make this a failure)", tool)
		}
	}
}

// clipSeconds is the length of the generated test media.
const clipSeconds = 4

// mediaFrame is one encoded frame; ts is its capture time in RTP units
// from the start of the clip.
type mediaFrame struct {
	data []byte
	ts   uint32
}

func ffmpeg(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// encodeVideo makes a clip of testsrc video in codec ("vp8", "vp9",
// "h264") and returns its frames at 30 fps, keyframe every second.
func encodeVideo(t testing.TB, dir, codec string) []mediaFrame {
	t.Helper()
	src := []string{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", strconv.Itoa(clipSeconds)}
	switch codec {
	case "vp8", "vp9":
		lib := map[string]string{"vp8": "libvpx", "vp9": "libvpx-vp9"}[codec]
		path := filepath.Join(dir, codec+".ivf")
		ffmpeg(t, append(src, "-c:v", lib, "-deadline", "realtime", "-g", "30", "-b:v", "600k", "-f", "ivf", path)...)
		return readIVF(t, path)
	case "h264":
		path := filepath.Join(dir, "h264.h264")
		// baseline (no B-frames, as in WebRTC), two slices per picture
		ffmpeg(t, append(src, "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast",
			"-x264-params", "slices=2", "-g", "30", "-bsf:v", "h264_mp4toannexb", "-f", "h264", path)...)
		return readH264(t, path)
	}
	t.Fatalf("unknown codec %s", codec)
	return nil
}

func readIVF(t testing.TB, path string) []mediaFrame {
	t.Helper()
	frames, err := readIVFFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

func readIVFFile(path string) ([]mediaFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, h, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	var out []mediaFrame
	for {
		data, fh, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		// pion reports pts*den/num: the time in seconds is that times
		// (num/den)^2
		num, den := uint64(h.TimebaseNumerator), uint64(h.TimebaseDenominator)
		ts := fh.Timestamp * 90000 * num * num / (den * den)
		out = append(out, mediaFrame{data: data, ts: uint32(ts)})
	}
}

// readH264 groups the NAL units of an Annex B stream into access units.
func readH264(t testing.TB, path string) []mediaFrame {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []mediaFrame
	var au []byte
	vcl := false
	flush := func() {
		if vcl {
			out = append(out, mediaFrame{data: au, ts: uint32(len(out) * 3000)})
		}
		au, vcl = nil, false
	}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			flush()
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		typ := nal.Data[0] & 0x1F
		isVCL := typ == 1 || typ == 5
		// a new picture: a parameter set/SEI after a slice, or a slice
		// whose first_mb_in_slice is 0 (its first bit set)
		if vcl && (!isVCL || len(nal.Data) > 1 && nal.Data[1]&0x80 != 0) {
			flush()
		}
		au = append(append(au, 0, 0, 0, 1), nal.Data...)
		vcl = vcl || isVCL
	}
}

// encodeOpus makes a clip of a 440 Hz tone and returns its 20 ms packets.
func encodeOpus(t testing.TB, dir string) []mediaFrame {
	t.Helper()
	path := filepath.Join(dir, "a.ogg")
	ffmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(clipSeconds),
		"-c:a", "libopus", "-b:a", "48k", "-page_duration", "20000", "-f", "ogg", path)
	frames, err := readOggFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// readOggFile reads Opus packets, one per page (-page_duration 20000).
func readOggFile(path string) ([]mediaFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	var out []mediaFrame
	var granule uint64
	for {
		data, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(data, []byte("OpusTags")) || bytes.HasPrefix(data, []byte("OpusHead")) {
			continue
		}
		out = append(out, mediaFrame{data: data, ts: uint32(granule)})
		granule = h.GranulePosition
	}
}

// stream is one track's media as the publisher sent it.
type stream struct {
	mime   string
	rate   uint32
	frames []mediaFrame
	delay  time.Duration // network delay to the SFU
	loss   float64       // fraction of packets lost
	swap   float64       // fraction of packets swapped with the next one
	dup    float64       // fraction of packets sent twice
	noSR   bool
	tsBase uint32 // first RTP timestamp
	seq    uint16 // first sequence number
}

// event is a packet or a sender report reaching the recorder.
type event struct {
	at    time.Duration // since the capture epoch
	track int
	pkt   *rtp.Packet
	sr    bool
	ntp   time.Time
	srTS  uint32
}

// publisherEpoch is the publisher's NTP clock at the clip's start: far
// from the local clock on purpose.
var publisherEpoch = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// localEpoch is the local (fake) clock at the clip's start.
var localEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func payloader(mime string) rtp.Payloader {
	switch mime {
	case webrtc.MimeTypeVP8:
		return &codecs.VP8Payloader{EnablePictureID: true}
	case webrtc.MimeTypeVP9:
		return &codecs.VP9Payloader{}
	case webrtc.MimeTypeH264:
		return &codecs.H264Payloader{}
	}
	return &codecs.OpusPayloader{}
}

// packetize turns a stream into events: packets stamped with their capture
// time plus delay, with loss, reordering and duplicates applied with rng,
// and a sender report every second.
func (s stream) events(track int, rng *rand.Rand, loop int) []event {
	pz := rtp.NewPacketizer(1200, 96, uint32(0x1000+track), payloader(s.mime), rtp.NewFixedSequencer(s.seq), s.rate)
	var evs []event
	clip := uint32(clipSeconds) * s.rate
	for l := range loop {
		for _, f := range s.frames {
			ts := f.ts + uint32(l)*clip
			capture := time.Duration(int64(ts) * int64(time.Second) / int64(s.rate))
			var pkts []*rtp.Packet
			for _, p := range pz.Packetize(f.data, 0) {
				p.Timestamp = s.tsBase + ts
				if rng.Float64() < s.loss {
					continue
				}
				pkts = append(pkts, p)
				if rng.Float64() < s.dup {
					pkts = append(pkts, p)
				}
			}
			for _, p := range pkts {
				evs = append(evs, event{at: capture + s.delay, track: track, pkt: p})
			}
			if !s.noSR && ts%s.rate < s.rate/30 { // about once a second
				evs = append(evs, event{at: capture + s.delay, track: track, sr: true,
					ntp: publisherEpoch.Add(capture), srTS: s.tsBase + ts})
			}
		}
	}
	// reorder: swap packets with the next packet of the stream, keeping
	// the arrival times (so across frames too)
	for i := 0; i+1 < len(evs); i++ {
		if !evs[i].sr && !evs[i+1].sr && rng.Float64() < s.swap {
			evs[i].pkt, evs[i+1].pkt = evs[i+1].pkt, evs[i].pkt
		}
	}
	return evs
}

// fakeClock is the recorder's clock in tests; the feeder moves it.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.set(localEpoch)
	return c
}

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) advance(t time.Time) {
	if t.UnixNano() > c.ns.Load() {
		c.set(t)
	}
}

// merge orders the events of several streams by arrival.
func merge(evs ...[]event) []event {
	all := slices.Concat(evs...)
	slices.SortStableFunc(all, func(a, b event) int { return int(a.at - b.at) })
	return all
}

// feed delivers events to the tracks, moving the clock along.
func feed(t testing.TB, clk *fakeClock, tracks []*TrackRecorder, evs []event) {
	t.Helper()
	for _, e := range evs {
		clk.advance(localEpoch.Add(e.at))
		tr := tracks[e.track]
		if e.sr {
			tr.SenderReport(e.ntp, e.srTS)
			continue
		}
		if _, err := tr.WriteRTP(&e.pkt.Header, e.pkt.Payload); err != nil {
			t.Fatalf("WriteRTP: %v", err)
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// decodeClean runs ffmpeg with -xerror over the whole file: any decoding
// or demuxing error fails.
func decodeClean(t testing.TB, path string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg -xerror %s: %v\n%s", filepath.Base(path), err, stderr.String())
	}
}

type probedStream struct {
	CodecName  string `json:"codec_name"`
	CodecType  string `json:"codec_type"`
	StartTime  string `json:"start_time"`
	Frames     string `json:"nb_read_frames"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	start      float64
	frameCount int
}

type probed struct {
	Streams []probedStream `json:"streams"`
	Format  struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
	duration float64
}

func probe(t testing.TB, path string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,codec_type,start_time,nb_read_frames,width,height:format=duration,format_name",
		"-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	p.duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	for i := range p.Streams {
		s := &p.Streams[i]
		s.start, _ = strconv.ParseFloat(s.StartTime, 64)
		s.frameCount, _ = strconv.Atoi(s.Frames)
	}
	return p
}

func (p probed) stream(kind string) probedStream {
	for _, s := range p.Streams {
		if s.CodecType == kind {
			return s
		}
	}
	return probedStream{}
}
