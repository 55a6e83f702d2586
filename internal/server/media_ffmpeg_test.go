package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/chorus-sfu/chorus/internal/server"
)

// Real media (VP8 from libvpx, Opus from libopus) published over WHIP and
// played over WHEP arrives intact: every received frame is byte-identical to
// a sent one with consistent RTP timestamps, ffmpeg decodes the recordings
// without a single error, and at least 99% of the frames sent after the
// viewer's first keyframe (video) or first packet (audio) are in them.
func TestWHIPToWHEPDecodesWithFFmpeg(t *testing.T) {
	requireFFmpeg(t)
	began := time.Now()
	ctx := deadline(t, 45*time.Second)
	dir := t.TempDir()

	// 1. Test media, encoded now.
	clipPath, oggPath := filepath.Join(dir, "clip.ivf"), filepath.Join(dir, "audio.ogg")
	runFFmpegs(t, ctx,
		[]string{"-f", "lavfi", "-i", "testsrc=size=640x480:rate=30", "-c:v", "libvpx", "-deadline", "realtime",
			"-b:v", "800k", "-g", "30", "-t", "6", clipPath},
		[]string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "libopus", "-b:a", "48k",
			"-frame_duration", "20", "-page_duration", "20000", "-t", "6", oggPath},
	)
	video := readIVFClip(t, clipPath)
	audio := readOggClip(t, oggPath)
	t.Logf("media: %d VP8 frames (%dx%d, %d keyframes), %d Opus packets, %d channel(s); encoded in %v",
		len(video.frames), video.width, video.height, video.keyframes(), len(audio.frames), audio.channels,
		time.Since(began).Round(time.Millisecond))

	s := startServer(t)

	// 2. The WHIP publisher.
	var drainers sync.WaitGroup
	t.Cleanup(drainers.Wait) // registered before newPC: runs after the PC is closed
	pub := newPC(t)
	vTrack, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "clip")
	if err != nil {
		t.Fatal(err)
	}
	aTrack, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "clip")
	if err != nil {
		t.Fatal(err)
	}
	var plis atomic.Int64
	for _, tr := range []webrtc.TrackLocal{vTrack, aTrack} {
		tc, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		drainers.Add(1)
		go func(sender *webrtc.RTPSender) {
			defer drainers.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						plis.Add(1) // nothing to do: the clip has a keyframe every 30 frames
					}
				}
			}
		}(tc.Sender())
	}
	pubStates := make(chan webrtc.PeerConnectionState, 16)
	pub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		select {
		case pubStates <- st:
		default:
		}
	})
	postSDP(t, ctx, pub, s.URL()+"whip/ffmpeg?name=x")
	waitConnected(t, ctx, "WHIP publisher", pubStates)
	connectedAt := time.Now()

	// 3. The WHEP viewer's recorders (they only collect samples; files are
	// written once reading has ended).
	var change broadcast
	recs := map[webrtc.RTPCodecType]*recorder{
		webrtc.RTPCodecTypeVideo: newRecorder(&codecs.VP8Packet{}, 90000, 512, &change),
		webrtc.RTPCodecTypeAudio: newRecorder(&codecs.OpusPacket{}, 48000, 64, &change),
	}
	view := newPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := view.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	view.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if r, ok := recs[tr.Kind()]; ok {
			r.run(tr)
		}
	})

	// 4. Send in real time. The WHEP POST below has to happen while media
	// flows: the server answers it once the publisher's tracks have arrived.
	sendCtx, stopSending := context.WithCancel(ctx)
	var senders sync.WaitGroup
	t.Cleanup(func() { stopSending(); senders.Wait() })
	vSent, aSent := make(chan sendResult, 1), make(chan sendResult, 1)
	senders.Add(2)
	go func() { defer senders.Done(); vSent <- sendFrames(sendCtx, vTrack, video) }()
	go func() { defer senders.Done(); aSent <- sendFrames(sendCtx, aTrack, audio) }()

	postSDP(t, ctx, view, s.URL()+"whep/ffmpeg/x")
	t.Logf("WHEP answered %v after the publisher connected", time.Since(connectedAt).Round(time.Millisecond))

	var vRes, aRes sendResult
	for _, r := range []struct {
		ch   chan sendResult
		to   *sendResult
		what string
	}{{vSent, &vRes, "video"}, {aSent, &aRes, "audio"}} {
		select {
		case *r.to = <-r.ch:
		case <-ctx.Done():
			t.Fatalf("%s sender did not finish", r.what)
		}
		if r.to.err != nil {
			t.Fatalf("%s sender: %v", r.what, r.to.err)
		}
	}
	sendingEnded := time.Now()
	t.Logf("sent %d video frames and %d audio packets in %v; publisher got %d PLI/FIR",
		vRes.sent, aRes.sent, sendingEnded.Sub(vRes.start).Round(time.Millisecond), plis.Load())

	// 5. Wait until the last frames have arrived, or media has stopped.
	const idleLimit = time.Second
	idle := time.NewTimer(idleLimit)
	defer idle.Stop()
wait:
	for {
		ch := change.wait()
		if recs[webrtc.RTPCodecTypeVideo].complete(video) && recs[webrtc.RTPCodecTypeAudio].complete(audio) {
			break
		}
		select {
		case <-ch:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(idleLimit)
		case <-idle.C:
			t.Logf("no media for %v: stop waiting for the last frames", idleLimit)
			break wait
		case <-ctx.Done():
			t.Fatal("timed out waiting for the viewer to receive the last frames")
		}
	}
	t.Logf("viewer done %v after sending ended", time.Since(sendingEnded).Round(time.Millisecond))
	logServerStats(t, s, "ffmpeg", "x")
	if err := view.Close(); err != nil {
		t.Fatal(err)
	}
	for kind, r := range recs {
		if err := r.stopped(ctx); err != nil {
			t.Fatalf("%s recorder: %v", kind, err)
		}
	}

	// 6. Match, record and decode.
	vRecv := recs[webrtc.RTPCodecTypeVideo].result()
	aRecv := recs[webrtc.RTPCodecTypeAudio].result()
	if len(vRecv) == 0 || len(aRecv) == 0 {
		t.Fatalf("viewer received %d video frames and %d audio packets", len(vRecv), len(aRecv))
	}
	vIdx, _ := matchReceived(t, "video", video, vRecv)
	aIdx, audioIdx := matchReceived(t, "audio", audio, aRecv)

	firstKey := -1
	for k, smp := range vRecv {
		if vIdx[k] >= 0 && isVP8KeyframeData(smp.data) {
			firstKey = k
			break
		}
	}
	if firstKey < 0 {
		t.Fatal("the viewer received no VP8 keyframe")
	}
	if firstKey != 0 {
		t.Errorf("the viewer's first %d video frame(s) came before its first keyframe (first frame is clip frame %d, first keyframe clip frame %d): the server should start a subscriber on a keyframe",
			firstKey, vIdx[0], vIdx[firstKey])
	}
	keyIdx := vIdx[firstKey]

	outIVF, outOgg := filepath.Join(dir, "out.ivf"), filepath.Join(dir, "out.ogg")
	writeIVF(t, outIVF, video, vRecv[firstKey:])
	writeOgg(t, outOgg, audio, aRecv)
	decodeClean(t, ctx, outIVF)
	decodeClean(t, ctx, outOgg)

	vSentFrom := len(video.frames) - keyIdx
	aSentFrom := len(audio.frames) - audioIdx
	vDecoded := ffprobeCount(t, ctx, outIVF, "v:0", "-count_frames", "nb_read_frames")
	aDecoded := ffprobeCount(t, ctx, outOgg, "a:0", "-count_packets", "nb_read_packets")
	t.Logf("video: viewer's first keyframe is clip frame %d; %d frames sent from there, %d received (%d matched), ffprobe reads %d (%.2f%%)",
		keyIdx, vSentFrom, len(vRecv)-firstKey, distinctFrom(vIdx[firstKey:]), vDecoded, 100*float64(vDecoded)/float64(vSentFrom))
	t.Logf("audio: viewer's first packet is clip packet %d; %d packets sent from there, %d received (%d matched), ffprobe reads %d (%.2f%%)",
		audioIdx, aSentFrom, len(aRecv), distinctFrom(aIdx), aDecoded, 100*float64(aDecoded)/float64(aSentFrom))
	if 100*vDecoded < 99*vSentFrom {
		t.Errorf("video: %d of %d frames sent after the first keyframe decoded (< 99%%)", vDecoded, vSentFrom)
	}
	if 100*aDecoded < 99*aSentFrom {
		t.Errorf("audio: %d of %d packets sent after the first one received decoded (< 99%%)", aDecoded, aSentFrom)
	}
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

// logServerStats logs the counters of the publisher's up tracks and of its
// WHEP viewer's down tracks.
func logServerStats(t *testing.T, s *server.Server, roomName, name string) {
	t.Helper()
	room, ok := s.SFU().Rooms().Get(roomName)
	if !ok {
		t.Logf("room %s is gone", roomName)
		return
	}
	if p, ok := room.FindParticipant(name); ok {
		for _, pt := range p.Published() {
			for _, up := range pt.Layers() {
				t.Logf("server up track %s layer %d: %+v", up.Info().Kind, up.Layer(), up.Stats())
			}
		}
	}
	if p, ok := room.FindParticipant("whep:" + name); ok {
		for _, d := range p.Subscriptions() {
			t.Logf("server down track %s: %+v", d.Kind(), d.Stats())
		}
	}
}

// requireFFmpeg skips the test without ffmpeg and ffprobe, unless CHORUS_E2E
// is set, which makes their absence a failure.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CHORUS_E2E") != "" {
				t.Fatalf("CHORUS_E2E is set but %s is not on PATH: %v", bin, err)
			}
			t.Skipf("%s is not on PATH: skipping the ffmpeg end-to-end test (set CHORUS_E2E=1 to make this a failure)", bin)
		}
	}
}

// runFFmpegs runs several ffmpeg commands concurrently.
func runFFmpegs(t *testing.T, ctx context.Context, argss ...[]string) {
	t.Helper()
	type run struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
	}
	runs := make([]*run, len(argss))
	for i, args := range argss {
		r := &run{cmd: exec.CommandContext(ctx, "ffmpeg", append([]string{"-nostdin", "-y", "-v", "error"}, args...)...)}
		r.cmd.Stderr = &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		runs[i] = r
	}
	var errs []error
	for _, r := range runs {
		if err := r.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %s", strings.Join(r.cmd.Args, " "), err, r.stderr.String()))
		}
	}
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

type clipFrame struct {
	data []byte
	hash [32]byte
}

// clip is an encoded media file held in memory: its frames (VP8) or packets
// (Opus), all of the same duration.
type clip struct {
	frames        []clipFrame
	byHash        map[[32]byte][]int
	frameDur      time.Duration
	ticks         float64 // RTP ticks per frame
	width, height uint16  // video
	channels      uint8   // audio
}

func (c *clip) add(data []byte) {
	f := clipFrame{data: data, hash: sha256.Sum256(data)}
	if c.byHash == nil {
		c.byHash = map[[32]byte][]int{}
	}
	c.byHash[f.hash] = append(c.byHash[f.hash], len(c.frames))
	c.frames = append(c.frames, f)
}

func (c *clip) keyframes() int {
	n := 0
	for _, f := range c.frames {
		if isVP8KeyframeData(f.data) {
			n++
		}
	}
	return n
}

// isVP8KeyframeData reads the frame tag of a VP8 frame (RFC 6386 9.1).
func isVP8KeyframeData(b []byte) bool { return len(b) > 0 && b[0]&0x01 == 0 }

func readIVFClip(t *testing.T, path string) *clip {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.FourCC != "VP80" || hdr.TimebaseDenominator != 30 || hdr.TimebaseNumerator != 1 {
		t.Fatalf("unexpected IVF header %+v", hdr)
	}
	c := &clip{frameDur: time.Second / 30, ticks: 3000, width: hdr.Width, height: hdr.Height}
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.add(frame)
	}
	if len(c.frames) == 0 || !isVP8KeyframeData(c.frames[0].data) {
		t.Fatal("generated IVF clip is empty or does not start with a keyframe")
	}
	return c
}

func readOggClip(t *testing.T, path string) *clip {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, hdr, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	c := &clip{frameDur: 20 * time.Millisecond, ticks: 960, channels: hdr.Channels}
	for {
		page, ph, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if typ, ok := ph.HeaderType(page); ok {
			if typ != oggreader.HeaderOpusTags {
				t.Fatalf("unexpected Ogg header page %v", typ)
			}
			continue
		}
		// -page_duration 20000 makes one 20 ms packet per page; check it.
		var p codecs.OpusPacket
		if _, err := p.Unmarshal(page); err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 || page[0]&0x03 != 0 || opusFrameDur(page[0]) != 20*time.Millisecond {
			t.Fatalf("Ogg page %d is not one 20 ms Opus frame (TOC %#x, %d bytes)", len(c.frames), page[0], len(page))
		}
		c.add(page)
	}
	if len(c.frames) == 0 {
		t.Fatal("generated Ogg clip has no packets")
	}
	return c
}

// opusFrameDur is the duration of one frame given a TOC byte (RFC 6716 3.1).
func opusFrameDur(toc byte) time.Duration {
	cfg := toc >> 3
	switch {
	case cfg < 12: // SILK
		return []time.Duration{10, 20, 40, 60}[cfg%4] * time.Millisecond
	case cfg < 16: // hybrid
		return []time.Duration{10, 20}[cfg%2] * time.Millisecond
	default: // CELT
		return []time.Duration{2500, 5000, 10000, 20000}[cfg%4] * time.Microsecond
	}
}

type sendResult struct {
	sent  int
	start time.Time
	err   error
}

// sendFrames writes c's frames to track in real time: frame i is due at
// i frame durations after the first, so that a late write does not shift
// the rest of the stream.
func sendFrames(ctx context.Context, track *webrtc.TrackLocalStaticSample, c *clip) sendResult {
	res := sendResult{start: time.Now()}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, f := range c.frames {
		timer.Reset(time.Until(res.start.Add(time.Duration(i) * c.frameDur)))
		select {
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		case <-timer.C:
		}
		if err := track.WriteSample(media.Sample{Data: f.data, Duration: c.frameDur}); err != nil {
			res.err = err
			return res
		}
		res.sent++
	}
	return res
}

func waitConnected(t *testing.T, ctx context.Context, what string, states <-chan webrtc.PeerConnectionState) {
	t.Helper()
	for {
		select {
		case st := <-states:
			switch st {
			case webrtc.PeerConnectionStateConnected:
				return
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				t.Fatalf("%s: connection %s", what, st)
			}
		case <-ctx.Done():
			t.Fatalf("%s: not connected in time", what)
		}
	}
}

// broadcast wakes every waiter on each notify.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

type recvSample struct {
	ts   uint32 // RTP timestamp as received
	data []byte // depacketized frame
	hash [32]byte
}

// recorder reassembles one received track into frames with a jitter buffer
// (so that retransmitted packets are put back in order).
type recorder struct {
	dep     rtp.Depacketizer
	clock   uint32
	maxLate uint16
	change  *broadcast

	mu      sync.Mutex
	started bool
	samples []recvSample
	// RTP timestamp of the newest packet that ended a frame
	markerTS   uint32
	haveMarker bool
	done       chan struct{}
}

func newRecorder(dep rtp.Depacketizer, clock uint32, maxLate uint16, change *broadcast) *recorder {
	return &recorder{dep: dep, clock: clock, maxLate: maxLate, change: change,
		done: make(chan struct{})}
}

// run reads tr until it ends. It is called once, from OnTrack.
func (r *recorder) run(tr *webrtc.TrackRemote) {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return
	}
	r.started = true
	r.mu.Unlock()
	defer close(r.done)
	sb := samplebuilder.New(r.maxLate, r.dep, r.clock)
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			break
		}
		if p.Marker {
			r.mu.Lock()
			if !r.haveMarker || int32(p.Timestamp-r.markerTS) > 0 {
				r.haveMarker, r.markerTS = true, p.Timestamp
			}
			r.mu.Unlock()
		}
		sb.Push(p)
		r.pop(sb)
	}
	sb.Flush()
	r.pop(sb)
}

func (r *recorder) pop(sb *samplebuilder.SampleBuilder) {
	added := false
	for smp := sb.Pop(); smp != nil; smp = sb.Pop() {
		s := recvSample{ts: smp.PacketTimestamp, data: smp.Data, hash: sha256.Sum256(smp.Data)}
		r.mu.Lock()
		r.samples = append(r.samples, s)
		r.mu.Unlock()
		added = true
	}
	if added {
		r.change.notify()
	}
}

// complete reports whether the clip's last frame has arrived: its last
// packet has been received and every earlier frame has left the jitter
// buffer (which keeps the newest frame until a later packet arrives).
func (r *recorder) complete(c *clip) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 || !r.haveMarker {
		return false
	}
	i0, _, tie := anchor(c, r.samples)
	if i0 < 0 || tie {
		return false
	}
	n, _ := framesAfterFirst(c, r.samples, len(r.samples)-1)
	m := int(math.Round(float64(r.markerTS-r.samples[0].ts) / c.ticks))
	return i0+m == len(c.frames)-1 && i0+n >= len(c.frames)-2
}

// stopped waits for the reader to end (the viewer's PC is closed).
func (r *recorder) stopped(ctx context.Context) error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return errors.New("reader did not end")
	}
}

func (r *recorder) result() []recvSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recvSample(nil), r.samples...)
}

// matchReceived maps each received frame to the clip frame it carries (-1 if
// none) and returns the clip index of the first. The anchor is found by content; the other frames' positions follow
// from their RTP timestamps, which the server must carry over with their
// original spacing. Any frame whose content or timestamp disagrees, any
// duplicate and any reordering is an error.
func matchReceived(t *testing.T, what string, c *clip, recv []recvSample) (idx []int, first int) {
	t.Helper()
	best, _, tie := anchor(c, recv)
	if best < 0 {
		t.Fatalf("%s: none of the first received frames matches a sent frame", what)
	}
	if tie {
		t.Fatalf("%s: the received frames match the clip at several offsets", what)
	}
	pos := func(k int) (int, float64) { return framesAfterFirst(c, recv, k) }
	idx = make([]int, len(recv))
	bad := 0
	seen := map[int]bool{}
	for k := range recv {
		n, off := pos(k)
		j := best + n
		idx[k] = -1
		switch {
		case j < 0 || j >= len(c.frames):
			t.Errorf("%s: received frame %d (RTP ts %d) lies outside the clip (position %d)", what, k, recv[k].ts, j)
		case c.frames[j].hash != recv[k].hash:
			other := c.byHash[recv[k].hash]
			t.Errorf("%s: received frame %d (RTP ts %d, %d bytes) should be clip frame %d (%d bytes) by its timestamp, but its content matches clip frames %v",
				what, k, recv[k].ts, len(recv[k].data), j, len(c.frames[j].data), other)
		case off > 2:
			t.Errorf("%s: received frame %d (clip frame %d): RTP timestamp off by %.0f ticks", what, k, j, off)
		case seen[j]:
			t.Errorf("%s: clip frame %d received twice", what, j)
		case k > 0 && idx[k-1] >= 0 && j < idx[k-1]:
			t.Errorf("%s: clip frame %d received after clip frame %d", what, j, idx[k-1])
		default:
			idx[k] = j
			seen[j] = true
			continue
		}
		if bad++; bad >= 10 {
			t.Fatalf("%s: too many bad frames", what)
		}
	}
	return idx, best
}

// framesAfterFirst is the number of frame durations between recv[0] and
// recv[k] by their RTP timestamps, and the distance in ticks of recv[k]'s
// timestamp from that whole number of frames.
func framesAfterFirst(c *clip, recv []recvSample, k int) (int, float64) {
	d := float64(recv[k].ts - recv[0].ts)
	n := math.Round(d / c.ticks)
	return int(n), math.Abs(d - n*c.ticks)
}

// anchor finds the clip index of recv[0]: of the offsets at which one of the
// first received frames matches the clip by content, the one at which most
// received frames match both by content and by timestamp. tie reports that
// several offsets match equally well.
func anchor(c *clip, recv []recvSample) (best, score int, tie bool) {
	cands := map[int]bool{}
	for k := 0; k < len(recv) && k < 10; k++ {
		n, _ := framesAfterFirst(c, recv, k)
		for _, j := range c.byHash[recv[k].hash] {
			cands[j-n] = true
		}
	}
	best, score = -1, -1
	for i0 := range cands {
		sc := 0
		for k := range recv {
			n, off := framesAfterFirst(c, recv, k)
			if j := i0 + n; j >= 0 && j < len(c.frames) && off <= 2 && c.frames[j].hash == recv[k].hash {
				sc++
			}
		}
		switch {
		case sc > score:
			best, score, tie = i0, sc, false
		case sc == score:
			tie = true
		}
	}
	return best, score, tie
}

func distinctFrom(idx []int) int {
	n := 0
	for _, j := range idx {
		if j >= 0 {
			n++
		}
	}
	return n
}

// writeIVF records received VP8 frames with ivfwriter, each as one RTP
// packet with a minimal payload descriptor, keeping the received timestamps.
func writeIVF(t *testing.T, path string, c *clip, recv []recvSample) {
	t.Helper()
	w, err := ivfwriter.New(path, ivfwriter.WithCodec(webrtc.MimeTypeVP8), ivfwriter.WithWidthAndHeight(c.width, c.height),
		ivfwriter.WithFrameRate(1, 90000), ivfwriter.WithDirectPTS())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range recv {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, Timestamp: s.ts},
			Payload: append([]byte{0x10}, s.data...)} // S=1, PID=0
		if err := w.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeOgg(t *testing.T, path string, c *clip, recv []recvSample) {
	t.Helper()
	w, err := oggwriter.New(path, 48000, uint16(c.channels))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range recv {
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Timestamp: s.ts}, Payload: s.data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// decodeClean decodes path with ffmpeg, which must succeed without a message.
func decodeClean(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("ffmpeg cannot decode %s cleanly: %v\n%s", filepath.Base(path), err, stderr.String())
	}
}

func ffprobeCount(t *testing.T, ctx context.Context, path, stream, countFlag, entry string) int {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", countFlag, "-select_streams", stream,
		"-show_entries", "stream="+entry, "-of", "csv=p=0", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v: %s", filepath.Base(path), err, stderr.String())
	}
	n, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("ffprobe %s: output %q: %v", filepath.Base(path), stdout.String(), err)
	}
	if stderr.Len() > 0 {
		t.Errorf("ffprobe %s: %s", filepath.Base(path), stderr.String())
	}
	return n
}
