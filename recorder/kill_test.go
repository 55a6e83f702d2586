package recorder

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/recorder/store"
)

// childEnv makes the test binary run runChild instead of the tests; its
// value is the directory with the media to record.
const childEnv = "CHORUS_RECORDER_CHILD"

// childSeconds of media are recorded by the child before it reports "fed".
const childSeconds = 20

// runChild records childSeconds of VP8 and Opus into <dir>/out and then
// waits, without ever closing the recorder, to be killed.
func runChild() {
	dir := os.Getenv(childEnv)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	vf, err := readIVFFile(filepath.Join(dir, "vp8.ivf"))
	if err != nil {
		fail(err)
	}
	af, err := readOggFile(filepath.Join(dir, "a.ogg"))
	if err != nil {
		fail(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		fail(err)
	}
	clk := newFakeClock()
	p, err := New(Options{Dir: out, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		onCluster: func(end int64) { fmt.Printf("cluster %d\n", end) }})
	if err != nil {
		fail(err)
	}
	v := stream{mime: webrtc.MimeTypeVP8, rate: 90000, frames: vf, delay: 100 * time.Millisecond, seq: 1}
	a := stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: af, delay: 20 * time.Millisecond, seq: 1}
	var tracks []*TrackRecorder
	for _, st := range []stream{v, a} {
		tr, err := p.AddTrack(TrackOptions{ID: st.mime, Codec: webrtc.RTPCodecCapability{MimeType: st.mime}})
		if err != nil {
			fail(err)
		}
		tracks = append(tracks, tr)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	loops := childSeconds / clipSeconds
	for _, e := range merge(v.events(0, rng, loops), a.events(1, rng, loops)) {
		tr := tracks[e.track]
		// keep pace with the recorder (as a live source would): what was
		// fed when "fed" is printed is what the recorder was given
		for len(tr.queue) > 8 {
			runtime.Gosched()
		}
		clk.advance(localEpoch.Add(e.at))
		if e.sr {
			tr.SenderReport(e.ntp, e.srTS)
		} else if _, err := tr.WriteRTP(&e.pkt.Header, e.pkt.Payload); err != nil {
			fail(err)
		}
	}
	fmt.Println("fed")
	select {} // recording in progress: wait for SIGKILL
}

// TestKilledRecording kills a recording process with SIGKILL and checks
// that the file it leaves plays up to its last seconds: once while the
// child is busy feeding media (killed after 10 clusters), once when it has
// fed childSeconds of media and waits (killed right after saying so).
func TestKilledRecording(t *testing.T) {
	needFFmpeg(t)
	media := t.TempDir()
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", fmt.Sprint(clipSeconds),
		"-c:v", "libvpx", "-deadline", "realtime", "-g", "30", "-b:v", "600k", "-f", "ivf", filepath.Join(media, "vp8.ivf"))
	encodeOpus(t, media)
	for _, c := range []struct {
		name    string
		stop    func(line string, clusters int) bool
		minSecs func(clusters int) float64
	}{
		{"busy", func(_ string, n int) bool { return n == 10 }, func(n int) float64 { return float64(n - 1) }},
		{"idle", func(l string, _ int) bool { return l == "fed" }, func(int) float64 { return childSeconds - 3 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"vp8.ivf", "a.ogg"} {
				if err := os.Link(filepath.Join(media, f), filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			clusters := killChild(t, dir, c.stop)
			checkKilled(t, dir, clusters, c.minSecs(clusters))
		})
	}
}

// killChild runs runChild on dir and kills it with SIGKILL as soon as stop
// says so; it returns how many clusters the child reported written.
func killChild(t *testing.T, dir string, stop func(line string, clusters int) bool) int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	clusters := 0
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child ended by itself")
			}
			if strings.HasPrefix(l, "cluster ") {
				clusters++
			}
			if stop(l, clusters) {
				break wait
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("child too slow")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines { // until the pipe closes
		}
	}()
	err = cmd.Wait()
	<-readerDone
	if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.String() != "signal: killed" {
		t.Fatalf("child ended with %v", err)
	}
	return clusters
}

// checkKilled checks the recording a killed child left in dir/out.
func checkKilled(t *testing.T, dir string, clusters int, minSecs float64) {
	out := filepath.Join(dir, "out")
	metas, _ := filepath.Glob(filepath.Join(out, "rec_*.json"))
	if len(metas) != 1 {
		t.Fatalf("metadata files %v", metas)
	}
	m, err := store.ReadMeta(out, strings.TrimSuffix(filepath.Base(metas[0]), ".json"))
	if err != nil || m.State != store.StateRecording {
		t.Fatalf("metadata %+v, %v", m, err)
	}
	path := filepath.Join(out, m.File)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// the structure: EBML header, Segment of unknown size, then Info,
	// Tracks and complete clusters, and at most one cut-off cluster
	top, err := parseElements(b)
	if err != nil || len(top) != 2 || top[1].id != idSegment || top[1].size != -1 {
		t.Fatalf("top level: %v", err)
	}
	seg, err := parseElements(top[1].data)
	if err != nil {
		t.Fatal(err)
	}
	complete, end := 0, int64(0)
	for i, e := range seg {
		if e.partial && i != len(seg)-1 {
			t.Fatal("cut-off element before the end")
		}
		if e.id == idCluster && !e.partial {
			complete++
			end = int64(len(b)-len(top[1].data)) + e.off + int64(e.head) + int64(len(e.data))
		}
	}
	t.Logf("%d bytes, %d clusters reported written before the kill, %d complete clusters in the file, last element cut: %v",
		len(b), clusters, complete, seg[len(seg)-1].partial)
	if complete < clusters {
		t.Fatalf("%d complete clusters, %d reported", complete, clusters)
	}
	// the file as left plays without errors when it ends on a cluster
	// boundary (each cluster is written with one write call); a cluster cut
	// by the kill is cut off before checking
	check := path
	if int64(len(b)) != end {
		check = filepath.Join(dir, "cut.webm")
		if err := os.WriteFile(check, b[:end], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	decodeClean(t, check)
	pr := probe(t, check)
	vs, as := pr.stream("video"), pr.stream("audio")
	secs := min(float64(vs.frameCount)/30, float64(as.frameCount)*0.02)
	t.Logf("video %d frames, audio %d frames: %.1f s survived, want >= %.1f s", vs.frameCount, as.frameCount, secs, minSecs)
	if secs < minSecs {
		t.Fatal("too little media survived")
	}
}
