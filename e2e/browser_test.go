package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/chorus-sfu/chorus/internal/server"
)

const (
	// mediaDeadline bounds the wait for decoded media. The product target
	// is ttffTarget; the test allows much more so a slow machine does not
	// fail it, and logs the time it measured.
	mediaDeadline = 30 * time.Second
	ttffTarget    = 5 * time.Second
	uiDeadline    = 15 * time.Second
	pollInterval  = 100 * time.Millisecond
	evalTimeout   = 10 * time.Second
)

// ---------------------------------------------------------------- test log

// testWriter forwards to t.Log until the test ends; goroutines of the server
// or the browser that write later are ignored rather than panicking.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() { // registered first, so it runs last
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// ---------------------------------------------------------------- server

type testServer struct {
	*server.Server
	close  func() error
	pubFEC bool // publishers may send video FEC
}

func startServer(t *testing.T, w *testWriter) *testServer {
	t.Helper()
	return startServerWith(t, w, server.Config{})
}

// startServerWith starts a server with cfg's settings: the HTTP listener
// and the media on loopback unless cfg names other addresses, logging to w.
func startServerWith(t *testing.T, w *testWriter, cfg server.Config) *testServer {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.UDPIP == "" {
		cfg.UDPIP = "127.0.0.1"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	// CHORUS_PUB_FEC=1: publishers' video FEC on (off by default), to compare
	cfg.PublisherFEC = cfg.PublisherFEC || os.Getenv("CHORUS_PUB_FEC") != ""
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ts := &testServer{Server: s, close: sync.OnceValue(s.Close), pubFEC: cfg.PublisherFEC}
	t.Cleanup(func() {
		if err := ts.close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return ts
}

func roomURL(s *testServer, room, name string) string {
	q := url.Values{"room": {room}}
	if name != "" {
		q.Set("name", name)
	}
	return s.URL() + "?" + q.Encode()
}

// ---------------------------------------------------------------- browser

// chromiumPath finds the browser, or skips the test (fails it under
// CHORUS_E2E=1) when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHORUS_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHORUS_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "Chromium not found at /usr/bin/chromium or on PATH; set CHORUS_CHROMIUM to run the browser tests"
	if os.Getenv("CHORUS_E2E") == "1" {
		t.Fatal(msg + " (CHORUS_E2E=1 requires them)")
	}
	t.Skip(msg)
	return ""
}

type browser struct {
	t   *testing.T
	log *testWriter
	ctx context.Context
}

// newBrowser starts a headless Chromium with fake camera and microphone
// that the test's cleanup stops; extra options (e.g. more flags) come last.
func newBrowser(t *testing.T, w *testWriter, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	for _, f := range []string{
		"headless", "no-sandbox", "disable-gpu", "no-first-run", "no-default-browser-check",
		"disable-background-networking", "disable-component-update", "disable-sync",
		"use-fake-device-for-media-stream", "use-fake-ui-for-media-stream",
		"allow-loopback-in-peer-connection", "disable-quic",
		// Keep every tab running at full speed, and keep Chromium's shared
		// memory out of a possibly small /dev/shm.
		"disable-background-timer-throttling", "disable-renderer-backgrounding",
		"disable-backgrounding-occluded-windows", "disable-dev-shm-usage",
		"disable-extensions", "disable-default-apps",
	} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	opts = append(opts, extra...)
	if f := os.Getenv("CHORUS_CHROME_LOG"); f != "" {
		// debugging aid: Chromium's own log, with WebRTC's video receive
		// path (frame assembly, reference finding, keyframe requests)
		lf, _ := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		opts = append(opts, chromedp.CombinedOutput(lf), chromedp.Flag("enable-logging", "stderr"),
			chromedp.Flag("vmodule", "*rtp_vp8_ref_finder*=3,*packet_buffer*=3,*frame_buffer*=3,*video_receive_stream*=3,*rtp_video_stream_receiver*=3,*timing*=1,*frame_buffer3*=3,*video_stream_buffer_controller*=3,*flexfec*=3,*forward_error_correction*=3,*ulpfec*=3"))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(allocCancel) // kills the browser if the graceful close below did not
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(w.logf), chromedp.WithErrorf(w.logf))
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			w.logf("closing the browser: %v", err)
		}
		cancel()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return &browser{t: t, log: w, ctx: ctx}
}

// tab is one page of the browser, in its own window.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []string
}

// newTab opens a blank tab; scripts run in every document it loads, before
// the page's own.
func (b *browser) newTab(name string, scripts ...string) *tab {
	t := b.t
	t.Helper()
	tb := &tab{t: t, name: name}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tb.onEvent))
	t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab %s: %v", name, err)
	}
	for _, s := range scripts {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: s}); err != nil {
			t.Fatalf("tab %s: add script: %v", name, err)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, line := range tb.console {
			t.Logf("[%s console] %s", name, line)
		}
	})
	return tb
}

func (tb *tab) onEvent(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			switch {
			case len(a.Value) > 0:
				parts = append(parts, string(a.Value))
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		line = fmt.Sprintf("%s: %s", ev.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			line += " " + d.Exception.Description
		}
	default:
		return
	}
	tb.mu.Lock()
	tb.console = append(tb.console, line)
	tb.mu.Unlock()
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("tab %s: %v", tb.name, err)
	}
}

func (tb *tab) navigate(u string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(u))
}

func (tb *tab) click(id string) {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.ID(id), chromedp.NodeVisible))
}

// exec runs a statement in the page.
func (tb *tab) exec(js string) {
	tb.t.Helper()
	if _, err := evaluate[json.RawMessage](tb, "(() => { "+js+"; return null; })()"); err != nil {
		tb.t.Fatalf("tab %s: %s: %v", tb.name, js, err)
	}
}

func evaluate[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// ---------------------------------------------------------------- page state

// snapshotJS reads the page's state: window.chorus, the DOM, and the
// subscriber connection's inbound-rtp statistics (the minimum over the
// streams of a kind, so "decoded" means every remote stream decoded).
const snapshotJS = `(async () => {
  const c = window.chorus || null;
  const shown = (id) => { const el = document.getElementById(id); return !!el && !el.hidden && !el.closest('[hidden]'); };
  const text = (id) => shown(id) ? document.getElementById(id).textContent : '';
  const snap = {
    state: c ? c.state : '', participantId: (c && c.participantId) || '', url: location.href,
    banner: shown('banner') ? text('banner-text') : '', notice: shown('media-notice') ? text('media-notice-text') : '',
    joinForm: shown('join-form'), callView: shown('call-view'), audioBlocked: !!(c && c.audioBlocked),
    micLabel: document.querySelector('#mic-button .ctl-label').textContent,
    micDisabled: document.getElementById('mic-button').disabled, camDisabled: document.getElementById('cam-button').disabled,
    participants: c ? Object.values(c.participants).map(p => ({id: p.id, name: p.name, tracks: Object.values(p.tracks)})) : [],
    timings: (c && c.timings) || {}, tiles: [],
    video: {streams: 0, framesDecoded: 0, packetsReceived: 0},
    audio: {streams: 0, totalSamplesReceived: 0, packetsReceived: 0, totalAudioEnergy: 0},
  };
  for (const el of document.querySelectorAll('#grid .tile')) {
    const v = el.querySelector('video');
    snap.tiles.push({
      id: el.dataset.participantId || '', local: el.classList.contains('local'), source: el.dataset.source || '',
      name: el.querySelector('.tile-name').textContent, videoWidth: v.videoWidth, paused: v.paused,
      mirrored: getComputedStyle(v).transform !== 'none', elementMuted: v.muted,
      audioMuted: el.dataset.audioMuted === 'true', videoMuted: el.dataset.videoMuted === 'true',
      micBadge: !el.querySelector('.badge-mic-off').hidden, camBadge: !el.querySelector('.badge-cam-off').hidden,
      noVideo: el.classList.contains('no-video'),
    });
  }
  const pc = c && c.pcs && c.pcs.subscriber;
  if (pc) {
    const min = (o, k, v) => { o[k] = o.streams === 1 ? v : Math.min(o[k], v); };
    (await pc.getStats()).forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        const o = snap.video; o.streams++;
        min(o, 'framesDecoded', s.framesDecoded || 0); min(o, 'packetsReceived', s.packetsReceived || 0);
      } else if (s.kind === 'audio') {
        const o = snap.audio; o.streams++;
        min(o, 'totalSamplesReceived', s.totalSamplesReceived || 0); min(o, 'packetsReceived', s.packetsReceived || 0);
        min(o, 'totalAudioEnergy', s.totalAudioEnergy || 0);
      }
    });
  }
  return snap;
})()`

type pageState struct {
	State         string  `json:"state"`
	ParticipantID string  `json:"participantId"`
	URL           string  `json:"url"`
	Banner        string  `json:"banner"`
	Notice        string  `json:"notice"`
	JoinForm      bool    `json:"joinForm"`
	CallView      bool    `json:"callView"`
	AudioBlocked  bool    `json:"audioBlocked"`
	MicLabel      string  `json:"micLabel"`
	MicDisabled   bool    `json:"micDisabled"`
	CamDisabled   bool    `json:"camDisabled"`
	Tiles         []tile  `json:"tiles"`
	Video         inbound `json:"video"`
	Audio         inbound `json:"audio"`
	Participants  []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Tracks []struct {
			ID    string `json:"id"`
			Kind  string `json:"kind"`
			Muted bool   `json:"muted"`
		} `json:"tracks"`
	} `json:"participants"`
	Timings map[string]float64 `json:"timings"`
}

type tile struct {
	ID           string `json:"id"`
	Local        bool   `json:"local"`
	Name         string `json:"name"`
	VideoWidth   int    `json:"videoWidth"`
	Paused       bool   `json:"paused"`
	Mirrored     bool   `json:"mirrored"`
	ElementMuted bool   `json:"elementMuted"`
	AudioMuted   bool   `json:"audioMuted"`
	VideoMuted   bool   `json:"videoMuted"`
	MicBadge     bool   `json:"micBadge"`
	CamBadge     bool   `json:"camBadge"`
	NoVideo      bool   `json:"noVideo"`
	Source       string `json:"source"` // "camera" or "screen"
}

type inbound struct {
	Streams              int     `json:"streams"`
	FramesDecoded        float64 `json:"framesDecoded"`
	PacketsReceived      float64 `json:"packetsReceived"`
	TotalSamplesReceived float64 `json:"totalSamplesReceived"`
	TotalAudioEnergy     float64 `json:"totalAudioEnergy"`
}

func (tb *tab) snapshot() (pageState, error) {
	return evaluate[pageState](tb, snapshotJS)
}

// remoteTiles lists the other participants' camera tiles (screen shares
// have tiles of their own, which this leaves out).
func (s pageState) remoteTiles() []tile {
	var out []tile
	for _, t := range s.Tiles {
		if !t.Local && t.Source != "screen" {
			out = append(out, t)
		}
	}
	return out
}

// tile finds the camera tile of a participant ("local" for our own).
func (s pageState) tile(id string) (tile, bool) {
	for _, t := range s.Tiles {
		if t.ID == id && t.Source != "screen" {
			return t, true
		}
	}
	return tile{}, false
}

func (s pageState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// videoDecoded: every one of n remote video streams decoded a frame.
func (s pageState) videoDecoded(n int) bool {
	return s.Video.Streams >= n && s.Video.FramesDecoded > 0
}

// audioReceived: every one of n remote audio streams delivered samples (or
// packets with energy).
func (s pageState) audioReceived(n int) bool {
	return s.Audio.Streams >= n &&
		(s.Audio.TotalSamplesReceived > 0 || (s.Audio.PacketsReceived > 0 && s.Audio.TotalAudioEnergy > 0))
}

// waitFor polls the tab until cond holds, failing the test at the deadline
// with the last state it saw.
func (tb *tab) waitFor(timeout time.Duration, what string, cond func(pageState) bool) pageState {
	tb.t.Helper()
	return poll(tb, time.Now().Add(timeout), what, tb.snapshot, cond)
}

// poll reads a state of the tab with snap until cond holds, failing the
// test at the deadline with the last state it saw.
func poll[S fmt.Stringer](tb *tab, deadline time.Time, what string, snap func() (S, error), cond func(S) bool) S {
	tb.t.Helper()
	start := time.Now()
	var last string
	for {
		s, err := snap()
		if err == nil && cond(s) {
			return s
		}
		if err != nil {
			last = "error: " + err.Error()
		} else {
			last = s.String()
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("tab %s: timed out after %v waiting for %s; last state: %s",
				tb.name, time.Since(start).Round(time.Millisecond), what, last)
		}
		time.Sleep(pollInterval)
	}
}

// ---------------------------------------------------------------- media

type joined struct {
	a, b           *tab
	aID, bID       string
	ttfA, ttfB     time.Duration
	stateA, stateB pageState
}

// joinPair opens two tabs in one room and waits until each decodes the
// other's video and receives its audio, and shows one remote tile with the
// other's name.
func joinPair(t *testing.T, b *browser, s *testServer, room string) joined {
	t.Helper()
	ta, tb := b.newTab("a"), b.newTab("b")
	ta.navigate(roomURL(s, room, "a"))
	start := time.Now()
	tb.navigate(roomURL(s, room, "b"))

	ready := func(st pageState, other string) bool {
		remote := st.remoteTiles()
		return st.State == "joined" && st.videoDecoded(1) && st.audioReceived(1) &&
			len(remote) == 1 && remote[0].Name == other && remote[0].VideoWidth > 0
	}
	var j joined
	j.a, j.b = ta, tb
	deadline := start.Add(mediaDeadline)
	var lastA, lastB string
	for {
		for _, x := range []struct {
			tab   *tab
			other string
			ttf   *time.Duration
			last  *string
			state *pageState
		}{{ta, "b", &j.ttfA, &lastA, &j.stateA}, {tb, "a", &j.ttfB, &lastB, &j.stateB}} {
			if *x.ttf != 0 {
				continue
			}
			st, err := x.tab.snapshot()
			switch {
			case err != nil:
				*x.last = "error: " + err.Error()
			case ready(st, x.other):
				*x.ttf = time.Since(start)
				*x.state = st
			default:
				*x.last = st.String()
			}
		}
		if j.ttfA != 0 && j.ttfB != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for both tabs to decode each other's media\n a: %s\n b: %s",
				mediaDeadline, lastA, lastB)
		}
		time.Sleep(pollInterval)
	}
	j.aID, j.bID = j.stateA.ParticipantID, j.stateB.ParticipantID
	worst := max(j.ttfA, j.ttfB)
	verdict := "within"
	if worst > ttffTarget {
		verdict = "OVER"
	}
	t.Logf("time to first decoded frame and audio after the second participant opened the room: a %v, b %v (%s the %v target)",
		j.ttfA.Round(time.Millisecond), j.ttfB.Round(time.Millisecond), verdict, ttffTarget)
	t.Logf("page timings (ms since navigation): a %v, b %v", j.stateA.Timings, j.stateB.Timings)
	return j
}

// ---------------------------------------------------------------- tests

// TestStaticFiles checks the bundled client is served, without a browser.
func TestStaticFiles(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	get := func(path string) (string, string) {
		t.Helper()
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /%s: %s", path, resp.Status)
		}
		return string(body), resp.Header.Get("Content-Type")
	}
	html, ct := get("")
	if !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET /: Content-Type %q", ct)
	}
	for _, want := range []string{`id="join-form"`, `src="app.js"`, `href="style.css"`} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(html); m != "" {
		t.Errorf("index.html loads an external resource (%s); the client must work offline", m)
	}
	for _, js := range []string{"app.js", "state.js", "tiles.js", "publish.js", "session.js", "chat.js", "data.js", "recording.js"} {
		if _, ct := get(js); !strings.Contains(ct, "javascript") {
			t.Errorf("GET /%s: Content-Type %q", js, ct)
		}
	}
	if _, ct := get("style.css"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("GET /style.css: Content-Type %q", ct)
	}
}

// TestBrowserJoinPage: "/" shows the join form; joining from it updates the
// address bar to the room's link, and leaving returns to the form.
func TestBrowserJoinPage(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	tb := b.newTab("a")
	tb.navigate(s.URL())
	tb.do(chromedp.WaitVisible(chromedp.ID("join-form")))
	st := tb.waitFor(uiDeadline, "the join page", func(s pageState) bool { return s.JoinForm })
	if st.State != "idle" || st.CallView {
		t.Fatalf("join page: state %q, call view shown %v", st.State, st.CallView)
	}
	for _, id := range []string{"room", "name", "join-button"} {
		tb.do(chromedp.WaitVisible(chromedp.ID(id)))
	}

	tb.do(chromedp.SetValue(chromedp.ID("room"), "lobby"), chromedp.SetValue(chromedp.ID("name"), "carol"))
	tb.click("join-button")
	st = tb.waitFor(uiDeadline, "joined with a local preview", func(s pageState) bool {
		_, ok := s.tile("local")
		return s.State == "joined" && s.CallView && ok
	})
	u, err := url.Parse(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query(); got.Get("room") != "lobby" || got.Get("name") != "carol" {
		t.Errorf("address bar after joining = %s, want ?room=lobby&name=carol", st.URL)
	}
	if st.ParticipantID == "" {
		t.Error("window.chorus.participantId is empty after joining")
	}
	local, _ := st.tile("local")
	if local.Name != "You" || !local.ElementMuted || !local.Mirrored {
		t.Errorf("local tile = %+v, want labelled You, muted and mirrored", local)
	}
	if len(st.remoteTiles()) != 0 {
		t.Errorf("remote tiles in an empty room: %+v", st.remoteTiles())
	}
	tb.do(chromedp.WaitVisible(chromedp.ID("copy-link")))

	tb.click("leave-button")
	st = tb.waitFor(uiDeadline, "the join form after leaving", func(s pageState) bool {
		return s.State == "left" && s.JoinForm && len(s.Tiles) == 0
	})
	if u, _ := url.Parse(st.URL); u.Query().Get("room") != "lobby" || u.Query().Has("name") {
		t.Errorf("address bar after leaving = %s, want ?room=lobby", st.URL)
	}
	room, err := chromedp.Run(tb.ctx, chromedp.Value(chromedp.ID("room")))
	if err != nil || room != "lobby" {
		t.Errorf("room field after leaving = %q, %v; want lobby", room, err)
	}
}

// TestBrowserTwoParticipants: two tabs in one room see and hear each other.
func TestBrowserTwoParticipants(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "r")
	for _, x := range []struct {
		st    pageState
		other string
	}{{j.stateA, j.bID}, {j.stateB, j.aID}} {
		remote := x.st.remoteTiles()
		if remote[0].ID != x.other {
			t.Errorf("remote tile is for participant %q, want %q", remote[0].ID, x.other)
		}
		if remote[0].AudioMuted || remote[0].MicBadge || remote[0].NoVideo {
			t.Errorf("remote tile = %+v, want unmuted with video", remote[0])
		}
		if x.st.Banner != "" {
			t.Errorf("error banner shown: %q", x.st.Banner)
		}
		if x.st.AudioBlocked {
			t.Logf("note: autoplay with sound was blocked; the page offers its enable-audio button")
		} else if remote[0].ElementMuted || remote[0].Paused {
			t.Errorf("remote media element muted %v, paused %v, and no enable-audio button", remote[0].ElementMuted, remote[0].Paused)
		}
	}
}

// TestBrowserMuteAndLeave: mute and camera-off reach the other tab as
// trackMuted, and leaving removes the tile there.
func TestBrowserMuteAndLeave(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "mute")

	j.a.click("mic-button")
	j.b.waitFor(uiDeadline, "a's tile to show muted", func(s pageState) bool {
		tl, ok := s.tile(j.aID)
		return ok && tl.AudioMuted && tl.MicBadge
	})
	st := j.a.waitFor(uiDeadline, "a's own tile to show muted", func(s pageState) bool {
		tl, ok := s.tile("local")
		return ok && tl.MicBadge && s.MicLabel == "Unmute"
	})
	if st.Banner != "" {
		t.Errorf("a: error banner after muting: %q", st.Banner)
	}

	j.a.click("mic-button")
	j.b.waitFor(uiDeadline, "a's tile to show unmuted", func(s pageState) bool {
		tl, ok := s.tile(j.aID)
		return ok && !tl.AudioMuted && !tl.MicBadge
	})

	j.a.click("cam-button")
	j.b.waitFor(uiDeadline, "a's tile to show camera off", func(s pageState) bool {
		tl, ok := s.tile(j.aID)
		return ok && tl.VideoMuted && tl.CamBadge && tl.NoVideo && !tl.AudioMuted
	})

	j.a.click("leave-button")
	j.a.waitFor(uiDeadline, "a back on the join page", func(s pageState) bool {
		return s.State == "left" && s.JoinForm
	})
	st = j.b.waitFor(uiDeadline, "a's tile to disappear from b", func(s pageState) bool {
		return len(s.remoteTiles()) == 0 && len(s.Participants) == 0
	})
	if st.State != "joined" || st.Banner != "" {
		t.Errorf("b after a left: state %q, banner %q", st.State, st.Banner)
	}
}

// denyMediaJS makes getUserMedia fail as if the user had refused.
const denyMediaJS = `(() => {
  const deny = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  Object.defineProperty(MediaDevices.prototype, 'getUserMedia', {value: deny, configurable: true});
})();`

// TestBrowserMediaDenied: a participant who refuses camera and microphone is
// told so, joins anyway, and receives the others.
func TestBrowserMediaDenied(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	ta, tb := b.newTab("a"), b.newTab("b", denyMediaJS)
	ta.navigate(roomURL(s, "deny", "a"))
	tb.navigate(roomURL(s, "deny", "b"))

	st := tb.waitFor(mediaDeadline, "b to receive a's media without publishing", func(s pageState) bool {
		remote := s.remoteTiles()
		return s.State == "joined" && s.videoDecoded(1) && s.audioReceived(1) &&
			len(remote) == 1 && remote[0].Name == "a" && remote[0].VideoWidth > 0
	})
	if !strings.Contains(st.Notice, "Camera or microphone access was denied") {
		t.Errorf("b's notice = %q, want the access-denied message", st.Notice)
	}
	if _, ok := st.tile("local"); ok {
		t.Error("b shows a local preview although it has no media")
	}
	if !st.MicDisabled || !st.CamDisabled {
		t.Errorf("b's mic/camera buttons enabled without devices (mic disabled %v, cam disabled %v)", st.MicDisabled, st.CamDisabled)
	}
	// b captures nothing, so Chromium's autoplay policy blocks sound until
	// a click; the page plays muted meanwhile and offers a button.
	if st.AudioBlocked {
		tb.click("audio-unlock")
		tb.waitFor(uiDeadline, "sound after clicking the enable-audio button", func(s pageState) bool {
			remote := s.remoteTiles()
			return !s.AudioBlocked && len(remote) == 1 && !remote[0].ElementMuted && !remote[0].Paused
		})
	} else if remote := st.remoteTiles(); remote[0].ElementMuted {
		t.Error("b's remote media element is muted, and no enable-audio button is offered")
	}
	sa := ta.waitFor(uiDeadline, "a to list b", func(s pageState) bool {
		remote := s.remoteTiles()
		return len(remote) == 1 && remote[0].Name == "b"
	})
	if sa.Notice != "" || sa.Banner != "" {
		t.Errorf("a: notice %q, banner %q", sa.Notice, sa.Banner)
	}
}

// TestBrowserServerUnreachable: the page says so when the server cannot be
// reached, before joining and after it went away, and shows server errors.
func TestBrowserServerUnreachable(t *testing.T) {
	w := newTestWriter(t)
	b := newBrowser(t, w)

	t.Run("before join", func(t *testing.T) {
		s := startServer(t, w)
		tb := b.newTab("a")
		tb.navigate(s.URL())
		tb.waitFor(uiDeadline, "the join page", func(s pageState) bool { return s.JoinForm })
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		tb.do(chromedp.SetValue(chromedp.ID("room"), "r"), chromedp.SetValue(chromedp.ID("name"), "a"))
		tb.click("join-button")
		want := "Cannot reach the Chorus server at " + strings.Replace(s.URL(), "http://", "ws://", 1) + "ws"
		st := tb.waitFor(uiDeadline, "the unreachable-server banner", func(s pageState) bool {
			return strings.Contains(s.Banner, want)
		})
		if st.State != "failed" {
			t.Errorf("state = %q, want failed", st.State)
		}
		tb.do(chromedp.WaitVisible(chromedp.ID("banner-retry")))
	})

	t.Run("server error and server gone", func(t *testing.T) {
		s := startServer(t, w)
		tb := b.newTab("b")
		tb.navigate(roomURL(s, "r", "b"))
		tb.waitFor(uiDeadline, "joined", func(s pageState) bool { return s.State == "joined" })
		tb.exec(`window.chorus.session.send({type: 'nonsense'})`)
		tb.waitFor(uiDeadline, "the server error banner", func(s pageState) bool {
			return strings.Contains(s.Banner, "unknown_type")
		})
		closeStart := time.Now()
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(closeStart); d > time.Second {
			t.Logf("note: server Close took %v", d.Round(time.Millisecond))
		}
		st := tb.waitFor(uiDeadline, "the unreachable-server banner", func(s pageState) bool {
			return strings.Contains(s.Banner, "Cannot reach the Chorus server at ")
		})
		if st.State != "failed" || len(st.Tiles) != 0 {
			t.Errorf("after the server went away: state %q, %d tiles", st.State, len(st.Tiles))
		}
	})
}
