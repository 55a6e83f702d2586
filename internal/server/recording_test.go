package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// recClip is test media made by ffmpeg: VP8 640x480 at 30 fps with a
// keyframe every second, and 20 ms Opus frames.
type recClip struct {
	video, audio *clip
	seconds      float64
}

func makeRecClip(t *testing.T, ctx context.Context, seconds int) recClip {
	t.Helper()
	dir := t.TempDir()
	ivf, ogg := filepath.Join(dir, "clip.ivf"), filepath.Join(dir, "audio.ogg")
	d := strconv.Itoa(seconds)
	runFFmpegs(t, ctx,
		[]string{"-f", "lavfi", "-i", "testsrc=size=640x480:rate=30", "-c:v", "libvpx", "-deadline", "realtime",
			"-b:v", "800k", "-g", "30", "-t", d, ivf},
		[]string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "libopus", "-b:a", "48k",
			"-frame_duration", "20", "-page_duration", "20000", "-t", d, ogg},
	)
	return recClip{video: readIVFClip(t, ivf), audio: readOggClip(t, ogg), seconds: float64(seconds)}
}

// whipPublish publishes c over WHIP to url in real time (extra
// interceptors first, e.g. a lossy uplink) and returns once every frame was
// sent; the returned function ends the WHIP session (DELETE).
func whipPublishClip(t *testing.T, ctx context.Context, s *server.Server, url string, c recClip, first ...interceptor.Factory) func() {
	t.Helper()
	api, err := client.NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, _ *webrtc.SettingEngine) error {
		if err := me.RegisterDefaultCodecs(); err != nil {
			return err
		}
		for _, f := range first {
			ir.Add(f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	var drainers sync.WaitGroup
	t.Cleanup(func() { _ = pub.Close(); drainers.Wait() })
	vTrack, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "clip")
	aTrack, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "clip")
	for _, tr := range []webrtc.TrackLocal{vTrack, aTrack} {
		tc, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		drainers.Add(1)
		go func(sender *webrtc.RTPSender) { // RTCP: pion's interceptors answer NACKs
			defer drainers.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}(tc.Sender())
	}
	states := make(chan webrtc.PeerConnectionState, 16)
	pub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		select {
		case states <- st:
		default:
		}
	})
	loc := postSDP(t, ctx, pub, url)
	waitConnected(t, ctx, "WHIP publisher", states)
	var senders sync.WaitGroup
	vSent, aSent := make(chan sendResult, 1), make(chan sendResult, 1)
	senders.Add(2)
	go func() { defer senders.Done(); vSent <- sendFrames(ctx, vTrack, c.video) }()
	go func() { defer senders.Done(); aSent <- sendFrames(ctx, aTrack, c.audio) }()
	senders.Wait()
	for _, r := range []sendResult{<-vSent, <-aSent} {
		if r.err != nil {
			t.Fatalf("sending: %v", r.err)
		}
	}
	return func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(s.URL(), "/")+loc, nil)
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Errorf("DELETE %s: %v", loc, err)
		} else {
			resp.Body.Close()
		}
	}
}

// apiRecording is one entry of GET /api/recordings.
type apiRecording struct {
	ID          string  `json:"id"`
	Room        string  `json:"room"`
	Participant string  `json:"participant"`
	State       string  `json:"state"`
	Duration    float64 `json:"duration"`
	Size        int64   `json:"size"`
	Tracks      []struct {
		Kind, Codec string
	} `json:"tracks"`
}

func listRecordings(t *testing.T, ctx context.Context, s *server.Server) []apiRecording {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"api/recordings", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Recordings []apiRecording `json:"recordings"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /api/recordings: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Recordings
}

// waitRecordings polls the recordings API until cond holds.
func waitRecordings(t *testing.T, ctx context.Context, s *server.Server, what string, cond func([]apiRecording) bool) []apiRecording {
	t.Helper()
	for {
		rs := listRecordings(t, ctx, s)
		if cond(rs) {
			return rs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: recordings %+v", what, rs)
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
}

// download fetches a recording through the API into dir.
func download(t *testing.T, ctx context.Context, s *server.Server, id, dir string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"api/recordings/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %s", id, resp.Status)
	}
	path := filepath.Join(dir, id+".webm")
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// a range request gets exactly that range
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"api/recordings/"+id, nil)
	req.Header.Set("Range", "bytes=100-199")
	rresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rresp.Body.Close()
	part, _ := io.ReadAll(rresp.Body)
	if rresp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, b[100:200]) {
		t.Errorf("range request: %s, %d bytes, equal %v", rresp.Status, len(part), bytes.Equal(part, b[100:200]))
	}
	return path
}

// probeStream is what ffprobe says of one stream of a file.
type probeStream struct {
	frames    int
	start     float64
	duration  float64
	codecName string
}

func probe(t *testing.T, ctx context.Context, path, stream string) probeStream {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_packets", "-select_streams", stream,
		"-show_entries", "stream=codec_name,nb_read_packets,start_time:format=duration", "-of", "json", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	var out struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Packets   string `json:"nb_read_packets"`
			Start     string `json:"start_time"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Streams) != 1 {
		t.Fatalf("ffprobe %s %s: %q: %v", path, stream, stdout.String(), err)
	}
	var p probeStream
	p.codecName = out.Streams[0].CodecName
	p.frames, _ = strconv.Atoi(out.Streams[0].Packets)
	p.start, _ = strconv.ParseFloat(out.Streams[0].Start, 64)
	p.duration, _ = strconv.ParseFloat(out.Format.Duration, 64)
	return p
}

// A WHIP publisher's clip recorded from the start of its room (automatic
// recording): the file, fetched through the recordings API, decodes with
// ffmpeg -xerror, holds at least 98 % of the frames sent, lasts as long as
// the clip (within 0.5 s), and its audio and video start within 100 ms of
// each other.
func TestRecordingWHIPClip(t *testing.T) {
	requireFFmpeg(t)
	ctx := deadline(t, 60*time.Second)
	c := makeRecClip(t, ctx, 6)
	s := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir(), AutoRecord: []string{"rec"}}})
	end := whipPublishClip(t, ctx, s, s.URL()+"whip/rec?name=clip", c)
	end()
	rs := waitRecordings(t, ctx, s, "a finished recording", func(rs []apiRecording) bool {
		return len(rs) == 1 && rs[0].State == "finished"
	})
	r := rs[0]
	t.Logf("recording %+v", r)
	if r.Room != "rec" || len(r.Tracks) != 2 || r.Size == 0 {
		t.Errorf("listing: %+v", r)
	}
	checkRecording(t, ctx, s, r.ID, c, 0.98)
}

// checkRecording downloads a recording and holds it to the clip.
func checkRecording(t *testing.T, ctx context.Context, s *server.Server, id string, c recClip, minShare float64) {
	t.Helper()
	path := download(t, ctx, s, id, t.TempDir())
	decodeClean(t, ctx, path)
	v, a := probe(t, ctx, path, "v:0"), probe(t, ctx, path, "a:0")
	t.Logf("file: video %s %d frames (sent %d) from %.3f s; audio %s %d frames (sent %d) from %.3f s; duration %.3f s (clip %.1f s)",
		v.codecName, v.frames, len(c.video.frames), v.start, a.codecName, a.frames, len(c.audio.frames), a.start, v.duration, c.seconds)
	if float64(v.frames) < minShare*float64(len(c.video.frames)) {
		t.Errorf("video: %d of %d frames recorded (< %.0f%%)", v.frames, len(c.video.frames), 100*minShare)
	}
	if float64(a.frames) < minShare*float64(len(c.audio.frames)) {
		t.Errorf("audio: %d of %d frames recorded (< %.0f%%)", a.frames, len(c.audio.frames), 100*minShare)
	}
	if d := v.duration - c.seconds; d < -0.5 || d > 0.5 {
		t.Errorf("duration %.3f s, clip %.1f s", v.duration, c.seconds)
	}
	if d := v.start - a.start; d < -0.1 || d > 0.1 {
		t.Errorf("audio starts at %.3f s, video at %.3f s: more than 100 ms apart", a.start, v.start)
	}
}

// With 10 % of the publisher's packets lost on its uplink, the recording
// (started through the API once the publisher is in) still decodes cleanly:
// NACKs repair most, and the recorder waits for a keyframe after what they
// cannot.
func TestRecordingLossyUplink(t *testing.T) {
	requireFFmpeg(t)
	ctx := deadline(t, 60*time.Second)
	c := makeRecClip(t, ctx, 6)
	s := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir(), AutoRecord: []string{"*"}}})
	end := whipPublishClip(t, ctx, s, s.URL()+"whip/lossy?name=clip", c,
		newLossy("video/", false, 0.10, 11), newLossy("audio/", false, 0.10, 12))
	end()
	rs := waitRecordings(t, ctx, s, "a finished recording", func(rs []apiRecording) bool {
		return len(rs) == 1 && rs[0].State == "finished"
	})
	path := download(t, ctx, s, rs[0].ID, t.TempDir())
	decodeClean(t, ctx, path)
	v, a := probe(t, ctx, path, "v:0"), probe(t, ctx, path, "a:0")
	t.Logf("10%% uplink loss: video %d of %d frames, audio %d of %d", v.frames, len(c.video.frames), a.frames, len(c.audio.frames))
	if v.frames < len(c.video.frames)/2 || a.frames < len(c.audio.frames)/2 {
		t.Errorf("too little recorded: video %d of %d, audio %d of %d", v.frames, len(c.video.frames), a.frames, len(c.audio.frames))
	}
}

// Starting and stopping through the API: unknown rooms, double starts and
// stops without a recording are refused with the right status.
func TestRecordingAPIControl(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	s := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir()}})
	post := func(path, body string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("api/recordings", `{"room":"nope"}`); code != http.StatusNotFound {
		t.Errorf("start in an unknown room: %d", code)
	}
	p := newPeer(t, s, "ctl", "ann", nil)
	_ = p
	for i, c := range []struct {
		path, body string
		want       int
	}{
		{"api/recordings", `{"room":"ctl"}`, http.StatusCreated},
		{"api/recordings", `{"room":"ctl"}`, http.StatusConflict},
		{"api/recordings", `{"room":"ctl","participant":"nobody"}`, http.StatusNotFound},
		{"api/recordings/stop", `{"room":"ctl"}`, http.StatusNoContent},
		{"api/recordings/stop", `{"room":"ctl"}`, http.StatusConflict},
		{"api/recordings", `{"room":"ctl","participant":"ann"}`, http.StatusCreated},
		{"api/recordings/stop", `{"room":"ctl","participant":"ann"}`, http.StatusNoContent},
	} {
		if code := post(c.path, c.body); code != c.want {
			t.Errorf("step %d: POST %s %s: %d, want %d", i, c.path, c.body, code, c.want)
		}
	}
}

var _ = fmt.Sprint

// Shutting the server down while a participant is being recorded (what
// SIGTERM does in cmd/chorus) finishes the file first: its metadata says
// finished and it decodes cleanly.
func TestRecordingClosedOnShutdown(t *testing.T) {
	requireFFmpeg(t)
	ctx := deadline(t, 60*time.Second)
	c := makeRecClip(t, ctx, 3)
	dir := t.TempDir()
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: "127.0.0.1", Logger: testLogger(),
		Recording: server.RecordingConfig{Dir: dir, AutoRecord: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	whipPublishClip(t, ctx, s, s.URL()+"whip/down?name=clip", c) // still connected
	rs := listRecordings(t, ctx, s)
	if len(rs) != 1 || rs[0].State != "recording" {
		t.Fatalf("before shutdown: %+v", rs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, rs[0].ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ State, File string }
	if err := json.Unmarshal(b, &meta); err != nil || meta.State != "finished" {
		t.Fatalf("after shutdown: %s (%v)", b, err)
	}
	decodeClean(t, ctx, filepath.Join(dir, meta.File))
	v := probe(t, ctx, filepath.Join(dir, meta.File), "v:0")
	t.Logf("recorded until shutdown: %d of %d video frames, %.3f s", v.frames, len(c.video.frames), v.duration)
	if v.frames < len(c.video.frames)*9/10 {
		t.Errorf("only %d of %d video frames", v.frames, len(c.video.frames))
	}
}

// Without an API key, the recordings API answers only local requests that
// name a loopback host: not a rebound DNS name, not a proxied request. With
// a key, only requests carrying it.
func TestRecordingAPIAccess(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	get := func(s *server.Server, host, key string, hdr ...string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"api/recordings", nil)
		if host != "" {
			req.Host = host
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	open := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir()}})
	for _, c := range []struct {
		host string
		hdr  []string
		want int
	}{
		{"", nil, http.StatusOK},
		{"localhost:7880", nil, http.StatusOK},
		{"evil.example:7880", nil, http.StatusForbidden},
		{"", []string{"X-Forwarded-For", "192.0.2.7"}, http.StatusForbidden},
	} {
		if got := get(open, c.host, "", c.hdr...); got != c.want {
			t.Errorf("no key, Host %q %v: %d, want %d", c.host, c.hdr, got, c.want)
		}
	}
	keyed := startServerWith(t, server.Config{Recording: server.RecordingConfig{Dir: t.TempDir()}, Keys: testKeys})
	if got := get(keyed, "", ""); got != http.StatusUnauthorized {
		t.Errorf("no token: %d", got)
	}
	if got := get(keyed, "", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("garbage token: %d", got)
	}
	// nobody without the admin grant lists or downloads recordings
	if got := get(keyed, "", testToken(t, "room", "u", "join,publish,subscribe,data,record")); got != http.StatusForbidden {
		t.Errorf("token without the admin grant: %d", got)
	}
	if got := get(keyed, "evil.example", testToken(t, "", "ops", "admin")); got != http.StatusOK {
		t.Errorf("admin token: %d", got)
	}
}
