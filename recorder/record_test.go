package recorder

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/chorus-sfu/chorus/recorder/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild() // never returns: killed by the parent test
	}
	goleak.VerifyTestMain(m)
}

// session is a recorder under test with its clock and tracks.
type session struct {
	t       *testing.T
	dir     string
	clk     *fakeClock
	p       *ParticipantRecorder
	tracks  []*TrackRecorder
	keyReqs []*atomic.Int64
}

func newSession(t *testing.T, mod func(*Options)) *session {
	s := &session{t: t, dir: t.TempDir(), clk: newFakeClock()}
	o := Options{Dir: s.dir, Room: "room/../1", Participant: "p1", ParticipantName: "Ann <x>",
		Logger: testLogger(t), Now: s.clk.Now, QueueSize: 1 << 14}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.p = p
	t.Cleanup(func() { p.Close() })
	return s
}

func (s *session) add(st stream) *TrackRecorder {
	n := &atomic.Int64{}
	tr, err := s.p.AddTrack(TrackOptions{ID: fmt.Sprintf("track%d", len(s.tracks)),
		Codec:           webrtc.RTPCodecCapability{MimeType: st.mime, ClockRate: st.rate},
		RequestKeyframe: func() { n.Add(1) }})
	if err != nil {
		s.t.Fatal(err)
	}
	s.tracks = append(s.tracks, tr)
	s.keyReqs = append(s.keyReqs, n)
	return tr
}

// run adds the streams as tracks, feeds them and closes the recorder.
func (s *session) run(seed uint64, streams ...stream) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var evs [][]event
	for _, st := range streams {
		evs = append(evs, st.events(len(s.tracks), rng, 1))
		s.add(st)
	}
	feed(s.t, s.clk, s.tracks, merge(evs...))
	if err := s.p.Close(); err != nil {
		s.t.Fatalf("Close: %v", err)
	}
}

var idPattern = regexp.MustCompile(`^rec_[a-z2-7]{16}$`)

// finished checks the metadata of recording i and returns the media path.
func (s *session) finished(i int, ext string) (string, store.Meta) {
	s.t.Helper()
	ids := s.p.Recordings()
	if len(ids) <= i {
		s.t.Fatalf("recordings %v, want at least %d", ids, i+1)
	}
	m, err := store.ReadMeta(s.dir, ids[i])
	if err != nil {
		s.t.Fatal(err)
	}
	if !idPattern.MatchString(m.ID) || m.File != m.ID+ext || m.State != store.StateFinished || m.Error != "" {
		s.t.Fatalf("metadata %+v", m)
	}
	if m.Room != "room/../1" || m.Participant != "p1" || m.ParticipantName != "Ann <x>" || !m.End.After(m.Start) {
		s.t.Fatalf("metadata %+v", m)
	}
	return filepath.Join(s.dir, m.File), m
}

func video(t *testing.T, dir, codec string) stream {
	mime := map[string]string{"vp8": webrtc.MimeTypeVP8, "vp9": webrtc.MimeTypeVP9, "h264": webrtc.MimeTypeH264}[codec]
	// timestamps and sequence numbers wrap early in the clip
	return stream{mime: mime, rate: 90000, frames: encodeVideo(t, dir, codec), delay: 150 * time.Millisecond,
		tsBase: math.MaxUint32 - 100_000, seq: 65_400}
}

func audio(t *testing.T, dir string) stream {
	return stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: encodeOpus(t, dir), delay: 20 * time.Millisecond,
		tsBase: 1234, seq: 100}
}

// checkFile decodes the file with -xerror and checks frame counts,
// duration, sizes and audio/video alignment.
func checkFile(t *testing.T, path string, v, a stream, vStats, aStats TrackStats, vCodec string) probed {
	t.Helper()
	decodeClean(t, path)
	pr := probe(t, path)
	vs, as := pr.stream("video"), pr.stream("audio")
	t.Logf("%s: %s duration %.3f; video %s %d frames (%d sent) start %.3f; audio %s %d frames (%d sent) start %.3f",
		filepath.Base(path), pr.Format.FormatName, pr.duration, vs.CodecName, vs.frameCount, len(v.frames), vs.start,
		as.CodecName, as.frameCount, len(a.frames), as.start)
	if vs.CodecName != vCodec || as.CodecName != "opus" || vs.Width != 320 || vs.Height != 240 {
		t.Fatalf("streams %+v", pr.Streams)
	}
	if uint64(vs.frameCount) != vStats.Frames || uint64(as.frameCount) != aStats.Frames {
		t.Fatalf("frames in the file (video %d, audio %d) differ from frames written (%d, %d)",
			vs.frameCount, as.frameCount, vStats.Frames, aStats.Frames)
	}
	if vs.frameCount < len(v.frames)*98/100 || as.frameCount < len(a.frames)*98/100 {
		t.Fatalf("too few frames: video %d/%d, audio %d/%d", vs.frameCount, len(v.frames), as.frameCount, len(a.frames))
	}
	if math.Abs(pr.duration-clipSeconds) > 0.5 {
		t.Fatalf("duration %.3f s, want %d s", pr.duration, clipSeconds)
	}
	if math.Abs(vs.start-as.start) > 0.1 {
		t.Fatalf("video starts at %.3f s, audio at %.3f s", vs.start, as.start)
	}
	return pr
}

func testCodec(t *testing.T, codec, ext, probeName string) {
	needFFmpeg(t)
	s := newSession(t, nil)
	v, a := video(t, s.dir, codec), audio(t, s.dir)
	s.run(1, v, a)
	path, m := s.finished(0, ext)
	if len(m.Tracks) != 2 || m.Tracks[0].Kind != "video" || m.Tracks[1].Codec != webrtc.MimeTypeOpus {
		t.Fatalf("tracks %+v", m.Tracks)
	}
	vst, ast := s.tracks[0].Stats(), s.tracks[1].Stats()
	t.Logf("video %+v\naudio %+v", vst, ast)
	if vst.Frames != uint64(len(v.frames)) || ast.Frames != uint64(len(a.frames)) || vst.FramesDropped+ast.FramesDropped != 0 ||
		vst.PacketsDropped+ast.PacketsDropped != 0 || vst.Gaps+ast.Gaps != 0 {
		t.Fatalf("lossless input, yet video %+v audio %+v", vst, ast)
	}
	checkFile(t, path, v, a, vst, ast, probeName)
}

func TestRecordVP8Opus(t *testing.T)  { testCodec(t, "vp8", ".webm", "vp8") }
func TestRecordVP9Opus(t *testing.T)  { testCodec(t, "vp9", ".webm", "vp9") }
func TestRecordH264Opus(t *testing.T) { testCodec(t, "h264", ".mkv", "h264") }

// Video reaches the SFU 130 ms after the audio captured with it: with
// sender reports the file lines them up again; without, arrival decides.
func TestLipSync(t *testing.T) {
	needFFmpeg(t)
	media := t.TempDir()
	v, a := video(t, media, "vp8"), audio(t, media)
	for _, sr := range []bool{true, false} {
		t.Run(fmt.Sprintf("sender-reports=%v", sr), func(t *testing.T) {
			s := newSession(t, nil)
			v.noSR, a.noSR = !sr, !sr
			s.run(2, v, a)
			path, _ := s.finished(0, ".webm")
			decodeClean(t, path)
			pr := probe(t, path)
			skew := pr.stream("video").start - pr.stream("audio").start
			t.Logf("video start - audio start = %.3f s", skew)
			want := 0.0
			if !sr {
				want = (v.delay - a.delay).Seconds()
			}
			if math.Abs(skew-want) > 0.015 {
				t.Fatalf("skew %.3f s, want %.3f s", skew, want)
			}
		})
	}
}

// 10% of the video packets are lost (no retransmission): frames that
// cannot be decoded are left out, keyframes are requested, and the file
// decodes without a single error.
func TestRecordLoss(t *testing.T) {
	needFFmpeg(t)
	for _, c := range []struct{ codec, ext string }{{"vp8", ".webm"}, {"vp9", ".webm"}, {"h264", ".mkv"}} {
		t.Run(c.codec, func(t *testing.T) {
			s := newSession(t, nil)
			v, a := video(t, s.dir, c.codec), audio(t, s.dir)
			v.loss = 0.10
			s.run(3, v, a)
			path, _ := s.finished(0, c.ext)
			vst := s.tracks[0].Stats()
			t.Logf("video %+v, keyframe requests seen %d", vst, s.keyReqs[0].Load())
			if vst.Gaps == 0 || vst.FramesDropped == 0 || vst.KeyframeRequests == 0 || s.keyReqs[0].Load() != int64(vst.KeyframeRequests) {
				t.Fatalf("loss not handled: %+v", vst)
			}
			if vst.Frames == 0 || vst.Frames >= uint64(len(v.frames)) {
				t.Fatalf("%d video frames written of %d", vst.Frames, len(v.frames))
			}
			// at most one request per 500 ms (4 s of media)
			if vst.KeyframeRequests > 2*clipSeconds+1 {
				t.Fatalf("%d keyframe requests in %d s", vst.KeyframeRequests, clipSeconds)
			}
			decodeClean(t, path)
			pr := probe(t, path)
			if got := pr.stream("video").frameCount; uint64(got) != vst.Frames {
				t.Fatalf("%d video frames in the file, %d written", got, vst.Frames)
			}
			if got := pr.stream("audio").frameCount; got != len(a.frames) {
				t.Fatalf("%d audio frames in the file, %d sent", got, len(a.frames))
			}
		})
	}
}

func TestRecordReorderDuplicates(t *testing.T) {
	needFFmpeg(t)
	s := newSession(t, nil)
	v, a := video(t, s.dir, "vp8"), audio(t, s.dir)
	v.swap, v.dup, a.swap, a.dup = 0.2, 0.05, 0.2, 0.05
	s.run(4, v, a)
	path, _ := s.finished(0, ".webm")
	vst, ast := s.tracks[0].Stats(), s.tracks[1].Stats()
	t.Logf("video %+v\naudio %+v", vst, ast)
	if vst.PacketsLate == 0 || ast.PacketsLate == 0 {
		t.Fatal("no duplicates were sent")
	}
	if vst.Gaps+ast.Gaps+vst.FramesDropped+ast.FramesDropped != 0 || vst.Frames != uint64(len(v.frames)) ||
		ast.Frames != uint64(len(a.frames)) {
		t.Fatalf("frames lost to reordering: video %+v audio %+v", vst, ast)
	}
	checkFile(t, path, v, a, vst, ast, "vp8")
}
