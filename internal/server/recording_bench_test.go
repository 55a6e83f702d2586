package server_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// BenchmarkRecordingCost measures what server-side recording costs, with
// real media: N WHIP publishers (one room each) send a looped ffmpeg clip
// (VP8 640x480 30 fps at about 800 kbit/s and 64 kbit/s Opus) in real
// time, and one WHEP viewer per room plays it. With the same server,
// publishers and viewers, measurement windows switch between recording off
// and recording on (every room recorded through the recordings API) in the
// order off, on, on, off, off, on, on, off, so that both sides see the
// same load and connections and a linear drift cancels out. After each
// start or stop, a settling time is not measured. Per window:
//
//   - CPU: process CPU time (getrusage user+sys), in % of one core. The
//     in-process pion publishers and viewers are included (equally on and
//     off), so only the difference is the recording's.
//   - heap: HeapInuse after a GC at the end of the window.
//   - latency: one-way latency of the viewers' video packets, publisher
//     (just before SRTP) -> SFU -> viewer (after SRTP), matched by payload.
//   - written: growth of the recordings folder.
//
// Reported: the mean CPU of the off and of the on windows (cpu-off-%,
// cpu-on-%) and per recorded participant their difference divided by N
// (rec-cpu-%/part) with its standard error (rec-cpu-se-%/part, from the
// spread of the windows); heap in use above the heap before the server
// started, in the first window (heap-off-MB) and the second, the first
// recorded one (heap-on-MB), and their difference per participant
// (rec-heap-MB/part): only the first start is used, as memory a recording
// allocates is not all given back after it stops (heap-stopped-MB, in the
// last window, shows what stayed); the write rate per participant
// (written-kB/s/part); latency percentiles over all packets of the off and
// of the on windows. So that the benchmark cannot silently measure
// nothing, the recordings API must then list every recording finished and
// non-empty, and per room and start one recording of both tracks at least
// as long as its windows; more recordings than that (a recording split in
// parts) are logged and counted in extra-parts.
//
//	go test ./internal/server -run '^$' -bench RecordingCost -benchtime 1x -v
func BenchmarkRecordingCost(b *testing.B) {
	ctx := deadline(b, 10*time.Minute)
	c := rcMakeClip(b, ctx, rcClipSeconds)
	b.Logf("clip: %d s, video %d frames %.0f kbit/s, audio %d packets %.0f kbit/s",
		rcClipSeconds, len(c.video.frames), c.video.kbps(rcClipSeconds), len(c.audio.frames), c.audio.kbps(rcClipSeconds))
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) {
			rcRun(b, c, n)
		})
	}
}

const (
	rcClipSeconds = 10
	rcWarmup      = 3 * time.Second
	rcSettle      = time.Second // after starting or stopping recordings
	rcWindow      = 4 * time.Second
)

// rcPattern is the recording state of the measurement windows.
var rcPattern = []bool{false, true, true, false, false, true, true, false}

// rcWindowResult is what one measurement window saw.
type rcWindowResult struct {
	rec     bool
	wall    time.Duration
	cpu     time.Duration
	heap    uint64 // HeapInuse after a GC at the end
	live    uint64 // HeapAlloc then
	written int64
	lat     []time.Duration
}

// rcRun measures n publishers and viewers over windows with recording off
// and on, and reports the figures.
func rcRun(b *testing.B, c rcClip, n int) {
	ctx := deadline(b, 3*time.Minute)
	runtime.GC()
	heap0 := rcHeapInuse()
	dir := filepath.Join(b.TempDir(), "recordings")
	s := startServerWith(b, server.Config{Recording: server.RecordingConfig{Dir: dir}})
	pubs := make([]*rcPublisher, n)
	views := make([]*rcViewer, n)
	rooms := make([]string, n)
	for i := range n {
		rooms[i] = fmt.Sprintf("room%d", i)
		st := &rcStamps{sent: map[uint64]time.Time{}}
		pubs[i] = rcPublish(b, ctx, s, rooms[i], c, st)
		views[i] = rcView(b, ctx, s, rooms[i], "pub", st)
	}
	time.Sleep(rcWarmup)

	var wins []rcWindowResult
	recording, finished := false, 0 // finished: recordings expected (one per room and start)
	for w, rec := range rcPattern {
		switch {
		case rec && !recording:
			for _, room := range rooms {
				rcPost(b, ctx, s, "api/recordings", room, http.StatusCreated)
			}
			rcWaitRecordings(b, ctx, s, fmt.Sprintf("%d recordings in progress", n), func(rs []rcRecording) bool {
				return rcCount(rs, "recording") == n
			})
			time.Sleep(rcSettle)
		case !rec && recording:
			finished += n
			rcStopAll(b, ctx, s, rooms)
			time.Sleep(rcSettle)
		}
		recording = rec
		cpu0, size0, t0 := rcCPUTime(), rcDirSize(dir), time.Now()
		time.Sleep(rcWindow)
		cpu1, size1, t1 := rcCPUTime(), rcDirSize(dir), time.Now()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r := rcWindowResult{rec: rec, wall: t1.Sub(t0), cpu: cpu1 - cpu0, heap: ms.HeapInuse, live: ms.HeapAlloc, written: size1 - size0}
		unmatched := 0
		for _, v := range views {
			l, u := v.latencies(t0, t1)
			r.lat = append(r.lat, l...)
			unmatched += u
		}
		b.Logf("N=%d window %d recording=%v: CPU %.2f %% of a core, heap in use %.1f MB (live %.1f MB), written %.1f kB/s, %d latency samples (%d unmatched): p50 %.3f ms, p99 %.3f ms, max %.3f ms",
			n, w, rec, rcPct(r.cpu, r.wall), float64(r.heap)/1e6, float64(r.live)/1e6, float64(r.written)/1000/r.wall.Seconds(), len(r.lat), unmatched,
			rcMs(r.lat, 50), rcMs(r.lat, 99), rcMs(r.lat, 100))
		if len(r.lat) < n*int(rcWindow/time.Second)*40 { // far fewer than the ~100 video packets/s sent
			b.Fatalf("only %d latency samples (%d unmatched) from %d viewers over %v", len(r.lat), unmatched, n, r.wall)
		}
		if rec && r.written <= 0 {
			b.Fatalf("recording, but the recordings folder did not grow over the window (%d bytes)", r.written)
		}
		wins = append(wins, r)
	}
	if recording {
		finished += n
		rcStopAll(b, ctx, s, rooms)
	}
	rs := rcWaitRecordings(b, ctx, s, "the recordings", func([]rcRecording) bool { return true })
	// per room, one recording of both tracks at least as long as its
	// windows for each time it was recorded; a recording split in parts
	// (the recorder starts a new file when a track joins after the file
	// was opened) is noted, not counted
	full := map[string]int{}
	var extra []rcRecording
	for _, r := range rs {
		if r.State != "finished" || r.Size == 0 {
			b.Fatalf("recording %+v: not finished, or empty", r)
		}
		if len(r.Tracks) == 2 && r.Duration >= (2*rcWindow).Seconds() {
			full[r.Room]++
		} else {
			extra = append(extra, r)
		}
	}
	for _, room := range rooms {
		if full[room] != finished/n {
			b.Fatalf("room %s: %d complete recordings, want %d: %+v", room, full[room], finished/n, rs)
		}
	}
	if len(extra) > 0 {
		b.Logf("N=%d: NOTE: %d recordings beyond the expected %d (recordings split in parts): %+v", n, len(extra), finished, extra)
	}
	b.ReportMetric(float64(len(extra)), "extra-parts")
	b.Logf("N=%d: %d recordings finished, %d to %d bytes, %.1f to %.1f s each", n, len(rs),
		slices.MinFunc(rs, rcBySize).Size, slices.MaxFunc(rs, rcBySize).Size,
		slices.MinFunc(rs, rcByDuration).Duration, slices.MaxFunc(rs, rcByDuration).Duration)
	for _, p := range pubs {
		p.stop(b, ctx, s)
	}
	for _, v := range views {
		v.close()
	}

	var cpu [2][]float64
	var lat [2][]time.Duration
	var written float64
	for _, r := range wins {
		k := 0
		if r.rec {
			k = 1
			written += float64(r.written) / r.wall.Seconds()
		}
		cpu[k] = append(cpu[k], rcPct(r.cpu, r.wall))
		lat[k] = append(lat[k], r.lat...)
	}
	written /= float64(len(cpu[1]))
	mOff, vOff := rcMeanVar(cpu[0])
	mOn, vOn := rcMeanVar(cpu[1])
	se := math.Sqrt(vOff/float64(len(cpu[0])) + vOn/float64(len(cpu[1])))
	heapMB := func(w int) float64 { return float64(int64(wins[w].heap)-int64(heap0)) / 1e6 }
	b.Logf("N=%d: CPU off %.2f %% (sd %.2f), on %.2f %% (sd %.2f) of a core: recording %.3f +- %.3f %% per participant",
		n, mOff, math.Sqrt(vOff), mOn, math.Sqrt(vOn), (mOn-mOff)/float64(n), se/float64(n))
	b.ReportMetric(mOff, "cpu-off-%")
	b.ReportMetric(mOn, "cpu-on-%")
	b.ReportMetric((mOn-mOff)/float64(n), "rec-cpu-%/part")
	b.ReportMetric(se/float64(n), "rec-cpu-se-%/part")
	b.ReportMetric(heapMB(0), "heap-off-MB")
	b.ReportMetric(heapMB(1), "heap-on-MB")
	b.ReportMetric((heapMB(1)-heapMB(0))/float64(n), "rec-heap-MB/part")
	b.ReportMetric(heapMB(len(wins)-1), "heap-stopped-MB")
	b.ReportMetric(written/1000/float64(n), "written-kB/s/part")
	b.ReportMetric(rcMs(lat[0], 50), "p50-off-ms")
	b.ReportMetric(rcMs(lat[1], 50), "p50-on-ms")
	b.ReportMetric(rcMs(lat[0], 99), "p99-off-ms")
	b.ReportMetric(rcMs(lat[1], 99), "p99-on-ms")
	b.ReportMetric(rcMs(lat[0], 100), "max-off-ms")
	b.ReportMetric(rcMs(lat[1], 100), "max-on-ms")
}

// rcMeanVar is the mean and the sample variance of xs.
func rcMeanVar(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}

func rcByDuration(a, b rcRecording) int { return cmp.Compare(a.Duration, b.Duration) }

func rcBySize(a, b rcRecording) int { return cmp.Compare(a.Size, b.Size) }

func rcPct(cpu, wall time.Duration) float64 { return 100 * float64(cpu) / float64(wall) }

func rcMs(lat []time.Duration, p float64) float64 {
	return float64(mediatest.Percentile(lat, p).Microseconds()) / 1000
}

// rcPost posts {"room": room} to path and checks the status.
func rcPost(tb testing.TB, ctx context.Context, s *server.Server, path, room string, want int) {
	tb.Helper()
	body, _ := json.Marshal(map[string]string{"room": room})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		tb.Fatalf("POST %s %s: %s: %s", path, body, resp.Status, msg)
	}
}

// rcStopAll stops recording the rooms and waits until no recording is in
// progress; none may have failed.
func rcStopAll(tb testing.TB, ctx context.Context, s *server.Server, rooms []string) {
	tb.Helper()
	for _, room := range rooms {
		rcPost(tb, ctx, s, "api/recordings/stop", room, http.StatusNoContent)
	}
	rs := rcWaitRecordings(tb, ctx, s, "the recordings to finish", func(rs []rcRecording) bool {
		return rcCount(rs, "recording") == 0
	})
	if n := rcCount(rs, "failed"); n > 0 {
		tb.Fatalf("%d recordings failed: %+v", n, rs)
	}
}

func rcCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rcHeapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rcDirSize is the total size of the files under dir (0 if it is missing).
func rcDirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking, or no folder
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// rcMedia is one encoded stream of the clip, frame by frame.
type rcMedia struct {
	frames [][]byte
	dur    time.Duration
}

func (m rcMedia) kbps(seconds int) float64 {
	total := 0
	for _, f := range m.frames {
		total += len(f)
	}
	return float64(total) * 8 / 1000 / float64(seconds)
}

type rcClip struct{ video, audio rcMedia }

// rcMakeClip makes the clip with ffmpeg: VP8 640x480 at 30 fps, 800
// kbit/s, a keyframe every second (so that it loops cleanly), and 20 ms
// Opus packets.
func rcMakeClip(b *testing.B, ctx context.Context, seconds int) rcClip {
	b.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CHORUS_E2E") != "" {
			b.Fatalf("CHORUS_E2E is set but ffmpeg is not on PATH: %v", err)
		}
		b.Skipf("ffmpeg is not on PATH: %v", err)
	}
	dir := b.TempDir()
	ivf, ogg := filepath.Join(dir, "clip.ivf"), filepath.Join(dir, "audio.ogg")
	d := strconv.Itoa(seconds)
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30", "-c:v", "libvpx", "-deadline", "realtime",
			"-b:v", "800k", "-g", "30", "-t", d, ivf},
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "libopus", "-b:a", "48k",
			"-frame_duration", "20", "-page_duration", "20000", "-t", d, ogg},
	} {
		out, err := exec.CommandContext(ctx, "ffmpeg", append([]string{"-nostdin", "-y", "-v", "error"}, args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	var c rcClip
	c.video.dur, c.audio.dur = time.Second/30, 20*time.Millisecond
	f, err := os.Open(ivf)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ir, _, err := ivfreader.NewWith(f)
	if err != nil {
		b.Fatal(err)
	}
	for {
		frame, _, err := ir.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		c.video.frames = append(c.video.frames, frame)
	}
	g, err := os.Open(ogg)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	or, _, err := oggreader.NewWith(g)
	if err != nil {
		b.Fatal(err)
	}
	for {
		page, ph, err := or.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := ph.HeaderType(page); ok {
			continue // OpusTags
		}
		c.audio.frames = append(c.audio.frames, page)
	}
	if len(c.video.frames) == 0 || c.video.frames[0][0]&0x01 != 0 || len(c.audio.frames) == 0 {
		b.Fatal("clip: no video starting with a keyframe, or no audio")
	}
	return c
}

// rcStamps matches the video packets a publisher sends with those a
// viewer receives: the SFU rewrites headers but not payloads.
type rcStamps struct {
	mu   sync.Mutex
	sent map[uint64]time.Time // payload hash -> send time
}

var rcSeed = maphash.MakeSeed()

func (s *rcStamps) stamp(payload []byte) {
	if len(payload) == 0 {
		return
	}
	h, now := maphash.Bytes(rcSeed, payload), time.Now()
	s.mu.Lock()
	s.sent[h] = now
	s.mu.Unlock()
}

func (s *rcStamps) take(payload []byte) (time.Time, bool) {
	h := maphash.Bytes(rcSeed, payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.sent[h]
	delete(s.sent, h)
	return at, ok
}

// rcStampInterceptor stamps outgoing VP8 packets; registered first, it is
// the innermost writer, right before SRTP.
type rcStampInterceptor struct {
	interceptor.NoOp
	st *rcStamps
}

type rcStampFactory struct{ st *rcStamps }

func (f rcStampFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rcStampInterceptor{st: f.st}, nil
}

func (i *rcStampInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeVP8) {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		i.st.stamp(payload)
		return w.Write(h, payload, a)
	})
}

// rcPublisher is a WHIP publisher looping the clip in real time.
type rcPublisher struct {
	pc     *webrtc.PeerConnection
	loc    string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

func rcPublish(tb testing.TB, ctx context.Context, s *server.Server, room string, c rcClip, st *rcStamps) *rcPublisher {
	tb.Helper()
	api, err := client.NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, _ *webrtc.SettingEngine) error {
		if err := me.RegisterDefaultCodecs(); err != nil {
			return err
		}
		ir.Add(rcStampFactory{st})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		tb.Fatal(err)
	}
	p := &rcPublisher{pc: pc, errs: make(chan error, 2)}
	tb.Cleanup(func() { p.shutdown() })
	vTrack, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "clip")
	aTrack, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "clip")
	for _, tr := range []webrtc.TrackLocal{vTrack, aTrack} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			tb.Fatal(err)
		}
		p.wg.Add(1)
		go func(sender *webrtc.RTPSender) { // RTCP: pion's interceptors answer NACKs
			defer p.wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}(tc.Sender())
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	p.loc = postSDP(tb, ctx, pc, s.URL()+"whip/"+room+"?name=pub")
	select {
	case <-connected:
	case <-ctx.Done():
		tb.Fatalf("publisher in %s: not connected", room)
	}
	sendCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, x := range []struct {
		track *webrtc.TrackLocalStaticSample
		m     rcMedia
	}{{vTrack, c.video}, {aTrack, c.audio}} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.errs <- rcLoop(sendCtx, x.track, x.m)
		}()
	}
	return p
}

// rcLoop writes m's frames in a loop, in real time, until ctx ends.
func rcLoop(ctx context.Context, track *webrtc.TrackLocalStaticSample, m rcMedia) error {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		timer.Reset(time.Until(start.Add(time.Duration(i) * m.dur)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := track.WriteSample(media.Sample{Data: m.frames[i%len(m.frames)], Duration: m.dur}); err != nil {
			return err
		}
	}
}

// stop stops sending, checks the senders, ends the WHIP session and closes
// the connection.
func (p *rcPublisher) stop(tb testing.TB, ctx context.Context, s *server.Server) {
	tb.Helper()
	p.cancel()
	for range 2 {
		if err := <-p.errs; err != nil {
			tb.Errorf("publisher: sending: %v", err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(s.URL(), "/")+p.loc, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		tb.Errorf("DELETE %s: %v", p.loc, err)
	} else {
		resp.Body.Close()
	}
	p.shutdown()
}

func (p *rcPublisher) shutdown() {
	if p.cancel != nil {
		p.cancel()
	}
	_ = p.pc.Close()
	p.wg.Wait()
}

// rcViewer is a WHEP viewer of one publisher that measures the latency of
// its video packets.
type rcViewer struct {
	pc     *webrtc.PeerConnection
	st     *rcStamps
	wg     sync.WaitGroup
	mu     sync.Mutex
	tracks int
	got    chan struct{} // closed when both tracks arrived
	lat    []rcSample
	miss   []time.Time // arrivals without a matching send
}

type rcSample struct {
	at time.Time
	d  time.Duration
}

func rcView(tb testing.TB, ctx context.Context, s *server.Server, room, name string, st *rcStamps) *rcViewer {
	tb.Helper()
	api, err := client.NewAPI(nil)
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		tb.Fatal(err)
	}
	v := &rcViewer{pc: pc, st: st, got: make(chan struct{})}
	tb.Cleanup(v.close)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			tb.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.tracks++
		if v.tracks == 2 {
			close(v.got)
		}
		v.wg.Add(1)
		v.mu.Unlock()
		go func() {
			defer v.wg.Done()
			v.read(tr)
		}()
	})
	postSDP(tb, ctx, pc, s.URL()+"whep/"+room+"/"+name)
	select {
	case <-v.got:
	case <-ctx.Done():
		tb.Fatalf("viewer in %s: no audio and video", room)
	}
	return v
}

func (v *rcViewer) read(tr *webrtc.TrackRemote) {
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if !video || len(p.Payload) == 0 {
			continue
		}
		now := time.Now()
		at, ok := v.st.take(p.Payload)
		v.mu.Lock()
		if ok {
			v.lat = append(v.lat, rcSample{now, now.Sub(at)})
		} else {
			v.miss = append(v.miss, now)
		}
		v.mu.Unlock()
	}
}

// latencies returns the latencies of the packets that arrived in [from,
// to), and how many arrived then without a matching send.
func (v *rcViewer) latencies(from, to time.Time) ([]time.Duration, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []time.Duration
	for _, s := range v.lat {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s.d)
		}
	}
	miss := 0
	for _, at := range v.miss {
		if !at.Before(from) && at.Before(to) {
			miss++
		}
	}
	return out, miss
}

func (v *rcViewer) close() {
	_ = v.pc.Close()
	v.wg.Wait()
}

// rcRecording is one entry of GET /api/recordings.
type rcRecording struct {
	ID       string  `json:"id"`
	Room     string  `json:"room"`
	State    string  `json:"state"`
	Duration float64 `json:"duration"`
	Size     int64   `json:"size"`
	Tracks   []struct {
		Kind, Codec string
	} `json:"tracks"`
}

func rcCount(rs []rcRecording, state string) int {
	n := 0
	for _, r := range rs {
		if r.State == state {
			n++
		}
	}
	return n
}

func rcWaitRecordings(tb testing.TB, ctx context.Context, s *server.Server, what string, cond func([]rcRecording) bool) []rcRecording {
	tb.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"api/recordings", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatalf("waiting for %s: %v", what, err)
		}
		var out struct {
			Recordings []rcRecording `json:"recordings"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			tb.Fatalf("GET /api/recordings: %s: %v", resp.Status, err)
		}
		if cond(out.Recordings) {
			return out.Recordings
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: recordings %+v", what, out.Recordings)
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}
