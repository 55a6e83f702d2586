package recorder

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/recorder/store"
)

// Synthetic media, for tests that do not decode the result.

func synthOpus(n int) []mediaFrame {
	out := make([]mediaFrame, n)
	for i := range out {
		out[i] = mediaFrame{data: []byte{0xF8, 0xFF, 0xFE, byte(i)}, ts: uint32(i * 960)}
	}
	return out
}

// synthVP8 makes n frames at 30 fps with a keyframe every gop frames; a
// keyframe takes two packets.
func synthVP8(n, gop int) []mediaFrame {
	out := make([]mediaFrame, n)
	for i := range out {
		var d []byte
		if i%gop == 0 {
			d = append([]byte{0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00}, bytes.Repeat([]byte{byte(i)}, 1500)...)
		} else {
			d = append([]byte{0x01}, bytes.Repeat([]byte{byte(i)}, 300)...)
		}
		out[i] = mediaFrame{data: d, ts: uint32(i * 3000)}
	}
	return out
}

func between(evs []event, from, to time.Duration) []event {
	var out []event
	for _, e := range evs {
		if e.at >= from && e.at < to {
			out = append(out, e)
		}
	}
	return out
}

func waitFor[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A track whose media starts after the file header was written ends that
// file; the next part holds all tracks, and no audio is lost in between.
func TestTrackAddedLaterStartsNewPart(t *testing.T) {
	needFFmpeg(t)
	opened := make(chan string, 4)
	s := newSession(t, func(o *Options) { o.onPart = func(id string) { opened <- id } })
	a, v := audio(t, s.dir), video(t, s.dir, "vp8")
	rng := rand.New(rand.NewPCG(6, 6))
	ae, ve := a.events(0, rng, 1), v.events(1, rng, 1)
	s.add(a)
	feed(t, s.clk, s.tracks, between(ae, 0, 2*time.Second))
	waitFor(t, opened, "the audio-only file")
	s.add(v)
	// the video is published from its keyframe at 2 s
	feed(t, s.clk, s.tracks, merge(between(ae, 2*time.Second, time.Hour), between(ve, 2*time.Second+v.delay, time.Hour)))
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	first, m1 := s.finished(0, ".webm")
	second, m2 := s.finished(1, ".webm")
	if len(m1.Tracks) != 1 || len(m2.Tracks) != 2 || len(s.p.Recordings()) != 2 {
		t.Fatalf("parts %+v\n%+v", m1, m2)
	}
	decodeClean(t, first)
	decodeClean(t, second)
	p1, p2 := probe(t, first), probe(t, second)
	audioFrames := p1.stream("audio").frameCount + p2.stream("audio").frameCount
	t.Logf("part 1: %.2f s, part 2: %.2f s; audio frames %d + %d; video frames %d",
		p1.duration, p2.duration, p1.stream("audio").frameCount, p2.stream("audio").frameCount, p2.stream("video").frameCount)
	if audioFrames != len(a.frames) || p2.stream("video").frameCount != len(v.frames)/2 {
		t.Fatalf("audio frames %d of %d, video %d of %d", audioFrames, len(a.frames), p2.stream("video").frameCount, len(v.frames)/2)
	}
	if d := m2.Start.Sub(m1.End); d < -time.Second || d > time.Second {
		t.Fatalf("part 2 starts at %v, part 1 ran %v-%v", m2.Start, m1.Start, m1.End)
	}
}

// A video track replaced by another of the same codec (camera turned off
// and on: new SSRC, new numbering) continues in the same file.
func TestTrackReplacedContinuesFile(t *testing.T) {
	opened := make(chan string, 4)
	s := newSession(t, func(o *Options) { o.onPart = func(id string) { opened <- id } })
	v := stream{mime: webrtc.MimeTypeVP8, rate: 90000, frames: synthVP8(120, 30), delay: 50 * time.Millisecond, seq: 10}
	a := stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: synthOpus(200), delay: 20 * time.Millisecond, seq: 500}
	v2 := v
	v2.seq, v2.tsBase = 40000, 987654
	rng := rand.New(rand.NewPCG(7, 7))
	ve, ae, ve2 := v.events(0, rng, 1), a.events(1, rng, 1), v2.events(2, rng, 1)
	s.add(v)
	s.add(a)
	cut := 2*time.Second + v.delay
	feed(t, s.clk, s.tracks, merge(between(ve, 0, cut), between(ae, 0, cut)))
	waitFor(t, opened, "the file")
	s.p.RemoveTrack(s.tracks[0])
	if _, err := s.tracks[0].WriteRTP(&rtp.Header{}, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write to a removed track: %v", err)
	}
	s.add(v2)
	feed(t, s.clk, s.tracks, merge(between(ae, cut, time.Hour), between(ve2, cut, time.Hour)))
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	_, m := s.finished(0, ".webm")
	if ids := s.p.Recordings(); len(ids) != 1 || len(m.Tracks) != 2 {
		t.Fatalf("recordings %v, tracks %+v", ids, m.Tracks)
	}
	st0, st2 := s.tracks[0].Stats(), s.tracks[2].Stats()
	if st0.Frames != 60 || st2.Frames != 60 || st2.FramesDropped != 0 {
		t.Fatalf("first camera %+v, second %+v", st0, st2)
	}
}

// blockingFile is a disk that hangs on its first write until released.
type blockingFile struct {
	*os.File
	entered, release chan struct{}
	once             sync.Once
}

func (b *blockingFile) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.File.Write(p)
}

// countHandler counts log records whose message contains a substring.
type countHandler struct {
	sub string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// While the disk hangs, WriteRTP keeps returning at once: packets beyond
// the queue are dropped, counted and logged once.
func TestQueueOverflowNeverBlocks(t *testing.T) {
	bf := &blockingFile{entered: make(chan struct{}), release: make(chan struct{})}
	logged := &atomic.Int64{}
	const queue = 64
	s := newSession(t, func(o *Options) {
		o.QueueSize = queue
		o.Logger = slog.New(countHandler{sub: "queue full", n: logged})
		o.createFile = func(path string) (mediaFile, error) {
			f, err := os.Create(path)
			bf.File = f
			return bf, err
		}
	})
	a := stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: synthOpus(1100), delay: 20 * time.Millisecond}
	tr := s.add(a)
	evs := a.events(0, rand.New(rand.NewPCG(8, 8)), 1)
	feed(t, s.clk, s.tracks, evs[:2]) // a packet and a sender report: the header is due
	waitFor(t, bf.entered, "the file write")
	// the recorder's goroutine is stuck in the file write now
	var pkts []*rtp.Packet
	for _, e := range evs[2:] {
		if !e.sr {
			pkts = append(pkts, e.pkt)
		}
	}
	last := pkts[len(pkts)-1]
	pkts = pkts[:len(pkts)-1]
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for _, p := range pkts {
			start := time.Now()
			tr.WriteRTP(&p.Header, p.Payload)
			worst = max(worst, time.Since(start))
		}
		done <- worst
	}()
	worst := waitFor(t, done, "WriteRTP calls while the disk hangs")
	st := tr.Stats()
	t.Logf("slowest WriteRTP %v; %+v", worst, st)
	sent := uint64(len(pkts)) + 1 // and the first packet
	if st.Packets+st.PacketsDropped != sent || st.PacketsDropped < sent-queue-1 {
		t.Fatalf("sent %d: %+v", sent, st)
	}
	if worst > 100*time.Millisecond {
		t.Fatalf("WriteRTP took %v", worst)
	}
	if logged.Load() != 1 {
		t.Fatalf("%d log lines about the full queue", logged.Load())
	}
	// the disk recovers; once the queue has room again a packet is taken
	close(bf.release)
	deadline := time.Now().Add(10 * time.Second)
	for accepted := st.Packets; tr.Stats().Packets == accepted; {
		if time.Now().After(deadline) {
			t.Fatal("the queue never drained")
		}
		tr.WriteRTP(&last.Header, last.Payload)
		runtime.Gosched()
	}
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Frames != st.Packets || st.Gaps != 1 {
		t.Fatalf("after the disk recovered: %+v", st)
	}
}

var errDiskFull = errors.New("disk full")

// failingFile accepts n writes, then fails.
type failingFile struct {
	*os.File
	n int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errDiskFull
	}
	f.n--
	return f.File.Write(p)
}

func TestWriteErrorFailsRecording(t *testing.T) {
	s := newSession(t, func(o *Options) {
		o.createFile = func(path string) (mediaFile, error) {
			f, err := os.Create(path)
			return &failingFile{File: f, n: 2}, err // header and one cluster
		}
	})
	a := stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: synthOpus(300), delay: 20 * time.Millisecond}
	s.add(a)
	feed(t, s.clk, s.tracks, a.events(0, rand.New(rand.NewPCG(9, 9)), 1))
	err := s.p.Close()
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Close: %v", err)
	}
	m, rerr := store.ReadMeta(s.dir, s.p.Recordings()[0])
	if rerr != nil || m.State != store.StateFailed || !strings.Contains(m.Error, "disk full") || m.End.IsZero() {
		t.Fatalf("metadata %+v %v", m, rerr)
	}
}

// Marshalled packets through Write, padding-only packets between frames
// (bandwidth probes), one of them lost: no frame is lost, and no keyframe
// is needed since the picture IDs show no frame is missing.
func TestWriteMarshalledWithPadding(t *testing.T) {
	s := newSession(t, nil)
	v := stream{mime: webrtc.MimeTypeVP8, rate: 90000, frames: synthVP8(90, 30), delay: 10 * time.Millisecond, seq: 65500}
	tr := s.add(v)
	var seq uint16 = 65500
	buf := make([]byte, 1500)
	for i, ev := range v.events(0, rand.New(rand.NewPCG(1, 1)), 1) {
		s.clk.advance(localEpoch.Add(ev.at))
		if ev.sr {
			continue
		}
		h := ev.pkt.Header
		h.SequenceNumber = seq
		seq++
		n, err := rtp.MarshalPacketTo(buf, &h, ev.pkt.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if !h.Marker || i%7 != 0 {
			continue
		}
		for k := range 3 { // three padding packets after the frame
			pad := rtp.Header{Version: 2, Padding: true, PaddingSize: 200, SequenceNumber: seq, Timestamp: h.Timestamp,
				SSRC: h.SSRC, PayloadType: h.PayloadType}
			seq++
			if k == 1 && i > 50 {
				continue // lost
			}
			n, err := rtp.MarshalPacketTo(buf, &pad, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if st.Frames != 90 || st.FramesDropped != 0 || st.Gaps == 0 || st.KeyframeRequests != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestAPIErrors(t *testing.T) {
	if _, err := New(Options{Dir: "/nonexistent/dir"}); err == nil {
		t.Fatal("New accepted a missing directory")
	}
	s := newSession(t, nil)
	if _, err := s.p.AddTrack(TrackOptions{Codec: webrtc.RTPCodecCapability{MimeType: "video/AV1"}}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("AV1: %v", err)
	}
	tr := s.add(stream{mime: webrtc.MimeTypeOpus, rate: 48000})
	ctx := tr.BindContext()
	if c := ctx.CodecParameters(); len(c) != 1 || c[0].MimeType != webrtc.MimeTypeOpus || c[0].Channels != 2 ||
		c[0].PayloadType != 111 || ctx.WriteStream() != tr || ctx.SSRCRetransmission() != 0 {
		t.Fatalf("bind context %+v", c)
	}
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	if len(s.p.Recordings()) != 0 {
		t.Fatal("a recording without media")
	}
	if _, err := tr.WriteRTP(&rtp.Header{}, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteRTP after Close: %v", err)
	}
	if _, err := s.p.AddTrack(TrackOptions{Codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddTrack after Close: %v", err)
	}
	if err := s.p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
