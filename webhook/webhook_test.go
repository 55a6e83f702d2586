package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecret = "s3cret"
	// waitLimit bounds every channel wait; tests never sleep.
	waitLimit = 5 * time.Second
)

var epoch = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

// fakeClock is a manually advanced clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sleepRecorder is a Config.Sleep that returns at once and remembers the
// requested delays.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.delays)
}

// captureHandler is a slog.Handler that keeps records for inspection.
type captureHandler struct {
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

func newCaptureHandler() *captureHandler {
	return &captureHandler{mu: new(sync.Mutex), records: new([]slog.Record)}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) WithGroup(string) slog.Handler            { return h }
func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{mu: h.mu, records: h.records, attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, r)
	return nil
}

// messages returns the records with the given message, as attribute maps.
func (h *captureHandler) messages(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range *h.records {
		if r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

// request is what a receiver saw.
type request struct {
	n      int // 1-based arrival number
	header http.Header
	body   []byte
}

// receiver is an httptest server that reports every request on reqs before
// answering it with respond (200 when respond is nil).
type receiver struct {
	srv   *httptest.Server
	reqs  chan request
	count atomic.Int64
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{reqs: make(chan request, 256)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n := int(rc.count.Add(1))
		rc.reqs <- request{n: n, header: r.Header.Clone(), body: body}
		if respond != nil {
			respond(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL }

func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rc.reqs:
		return r
	case <-time.After(waitLimit):
		t.Fatalf("no request within %s", waitLimit)
		return request{}
	}
}

func (rc *receiver) requests() int { return int(rc.count.Load()) }

// gate blocks handlers until opened; it is opened automatically at cleanup
// (before the servers close) so a failing test cannot hang.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

// newNotifier fills test defaults and makes sure the Notifier is closed
// before the receivers are.
func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

func closeNotifier(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func decode(t *testing.T, body []byte) Event {
	t.Helper()
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode body %q: %v", body, err)
	}
	return e
}

func TestDeliveryInOrderWithValidSignatures(t *testing.T) {
	clock := newFakeClock()
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	n := newNotifier(t, Config{URLs: []string{a.URL(), b.URL()}, Now: clock.Now})

	const count = 20
	for i := range count {
		n.Notify(Event{
			Event:       EventParticipantJoined,
			Room:        "standup",
			Participant: &ParticipantInfo{ID: fmt.Sprintf("PA_%d", i), Identity: "alice"},
		})
	}

	ids := map[string]bool{}
	for _, rc := range []*receiver{a, b} {
		for i := range count {
			req := rc.next(t)
			e := decode(t, req.body)
			if want := fmt.Sprintf("PA_%d", i); e.Participant == nil || e.Participant.ID != want {
				t.Fatalf("request %d: participant %+v, want ID %s (out of order?)", i, e.Participant, want)
			}
			if err := Verify(testSecret, req.header, req.body, clock.Now(), time.Minute); err != nil {
				t.Fatalf("request %d: Verify: %v", i, err)
			}
			tampered := bytes.Replace(req.body, []byte("alice"), []byte("mallory"), 1)
			if err := Verify(testSecret, req.header, tampered, clock.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("request %d: Verify(tampered) = %v, want ErrBadSignature", i, err)
			}
			if err := Verify("other", req.header, req.body, clock.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("request %d: Verify(wrong secret) = %v, want ErrBadSignature", i, err)
			}

			h := req.header
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := h.Get(HeaderEvent); got != EventParticipantJoined {
				t.Errorf("%s = %q", HeaderEvent, got)
			}
			if got := h.Get(HeaderDelivery); got != e.ID || e.ID == "" {
				t.Errorf("%s = %q, body id %q", HeaderDelivery, got, e.ID)
			}
			if got, want := h.Get(HeaderTimestamp), strconv.FormatInt(epoch.Unix(), 10); got != want {
				t.Errorf("%s = %q, want %q", HeaderTimestamp, got, want)
			}
			if got, want := h.Get(HeaderSignature), Sign(testSecret, epoch.Unix(), req.body); got != want {
				t.Errorf("%s = %q, want %q", HeaderSignature, got, want)
			}
			if e.CreatedAt != epoch.Unix() {
				t.Errorf("created_at = %d, want %d", e.CreatedAt, epoch.Unix())
			}
			ids[e.ID] = true
		}
	}
	if len(ids) != count {
		t.Errorf("%d distinct IDs across both endpoints, want %d (same ID per event, unique per event)", len(ids), count)
	}

	closeNotifier(t, n)
	if got, want := n.Stats(), (Stats{Sent: 2 * count}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestEventJSON(t *testing.T) {
	body, err := json.Marshal(Event{
		ID: "evt_1", Event: EventRecordingFinished, CreatedAt: 42, Room: "r",
		Track:     &TrackInfo{ID: "TR_1", Kind: "video", Source: "camera", MimeType: "video/VP8"},
		Recording: &RecordingInfo{ID: "RC_1", Room: "r", Participant: "alice", File: "a.webm", Bytes: 10, DurationMs: 2000, State: "complete"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"evt_1","event":"recording_finished","created_at":42,"room":"r",` +
		`"track":{"id":"TR_1","kind":"video","source":"camera","mime_type":"video/VP8"},` +
		`"recording":{"id":"RC_1","room":"r","participant":"alice","file":"a.webm","bytes":10,"duration_ms":2000,"state":"complete"}}`
	if string(body) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", body, want)
	}
}

func TestNotifyKeepsCallerIDAndTime(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, Config{URLs: []string{rc.URL()}})
	n.Notify(Event{ID: "evt_mine", Event: EventRoomStarted, CreatedAt: 7, Room: "r"})
	req := rc.next(t)
	if e := decode(t, req.body); e.ID != "evt_mine" || e.CreatedAt != 7 {
		t.Errorf("event = %+v, want caller's ID and CreatedAt", e)
	}
	if got := req.header.Get(HeaderDelivery); got != "evt_mine" {
		t.Errorf("%s = %q", HeaderDelivery, got)
	}
	closeNotifier(t, n)
}

func TestRetriesServerErrorsThenDelivers(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	sleeps := &sleepRecorder{}
	n := newNotifier(t, Config{
		URLs:    []string{rc.URL()},
		Backoff: []time.Duration{time.Millisecond, 2 * time.Millisecond},
		Sleep:   sleeps.Sleep,
	})
	n.Notify(Event{Event: EventTrackPublished, Track: &TrackInfo{ID: "TR_1"}})

	var ids []string
	for range 3 {
		ids = append(ids, rc.next(t).header.Get(HeaderDelivery))
	}
	closeNotifier(t, n)

	if ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("delivery IDs across attempts = %q, want one stable ID", ids)
	}
	if got := rc.requests(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
	if got, want := sleeps.Delays(), []time.Duration{time.Millisecond, 2 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("backoff delays = %v, want %v", got, want)
	}
	if got, want := n.Stats(), (Stats{Sent: 1, Retries: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestRealBackoffTimer(t *testing.T) {
	// The default Sleep with a tiny schedule: no injected scheduler.
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	n := newNotifier(t, Config{URLs: []string{rc.URL()}, Backoff: []time.Duration{time.Millisecond}})
	n.Notify(Event{Event: EventRoomStarted})
	for range 3 {
		rc.next(t)
	}
	closeNotifier(t, n)
	if got, want := n.Stats(), (Stats{Sent: 1, Retries: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestRetryClassification(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusUnauthorized, false},
		{http.StatusNotFound, false},
		{http.StatusGone, false},
		{http.StatusMovedPermanently, false}, // redirects are not followed
		{http.StatusRequestTimeout, true},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tc.status == http.StatusMovedPermanently {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			})
			sleeps := &sleepRecorder{}
			n := newNotifier(t, Config{URLs: []string{rc.URL()}, MaxAttempts: 3, Sleep: sleeps.Sleep})
			n.Notify(Event{Event: EventRoomFinished})
			closeNotifier(t, n)

			wantReqs, want := 1, Stats{Failed: 1}
			if tc.retry {
				wantReqs, want = 3, Stats{Failed: 1, Retries: 2}
			}
			if got := rc.requests(); got != wantReqs {
				t.Errorf("requests = %d, want %d", got, wantReqs)
			}
			if got := n.Stats(); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
		})
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close() // connection refused from now on

	sleeps := &sleepRecorder{}
	n := newNotifier(t, Config{URLs: []string{url}, MaxAttempts: 3, Sleep: sleeps.Sleep})
	n.Notify(Event{Event: EventRoomStarted})
	closeNotifier(t, n)
	if got, want := n.Stats(), (Stats{Failed: 1, Retries: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got, want := sleeps.Delays(), DefaultBackoff()[:2]; !slices.Equal(got, want) {
		t.Errorf("delays = %v, want default schedule prefix %v", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	clock := newFakeClock()
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { // seconds on 429
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) { // capped on 503
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) { // HTTP date on 503
			w.Header().Set("Retry-After", clock.Now().Add(5*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) { // ignored on 500: backoff applies
			w.Header().Set("Retry-After", "9")
			w.WriteHeader(http.StatusInternalServerError)
		},
		func(w http.ResponseWriter) { // garbage: backoff applies
			w.Header().Set("Retry-After", "soon")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(http.ResponseWriter) {}, // 200
	}
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) { answers[n-1](w) })
	sleeps := &sleepRecorder{}
	backoff := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond}
	n := newNotifier(t, Config{
		URLs: []string{rc.URL()}, MaxAttempts: len(answers), Backoff: backoff,
		Sleep: sleeps.Sleep, Now: clock.Now,
	})
	n.Notify(Event{Event: EventRoomStarted})
	closeNotifier(t, n)

	want := []time.Duration{7 * time.Second, 60 * time.Second, 5 * time.Second, 40 * time.Millisecond, 50 * time.Millisecond}
	if got := sleeps.Delays(); !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
	if got, want := n.Stats(), (Stats{Sent: 1, Retries: 5}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := epoch
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", -1},
		{"0", 0},
		{" 12 ", 12 * time.Second},
		{"60", 60 * time.Second},
		{"61", 60 * time.Second},
		{"99999999999999999", 60 * time.Second},
		{"-1", -1},
		{"1.5", -1},
		{"later", -1},
		{now.Add(30 * time.Second).UTC().Format(http.TimeFormat), 30 * time.Second},
		{now.Add(time.Hour).UTC().Format(http.TimeFormat), 60 * time.Second},
		{now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCloseFlushesQueuedEvents(t *testing.T) {
	g := newGate(t)
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			g.wait(r)
		}
	})
	n := newNotifier(t, Config{URLs: []string{rc.URL()}})
	for i := range 5 {
		n.Notify(Event{Event: EventTrackPublished, Track: &TrackInfo{ID: strconv.Itoa(i)}})
	}
	first := rc.next(t) // the sender is now stuck on event 0; 1..4 are queued

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		closed <- n.Close(ctx)
	}()
	g.open()

	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}

	got := []string{decode(t, first.body).Track.ID}
	for range 4 {
		got = append(got, decode(t, rc.next(t).body).Track.ID)
	}
	if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if got, want := n.Stats(), (Stats{Sent: 5}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}

	n.Notify(Event{Event: EventRoomFinished}) // after Close: dropped, not sent
	if got := n.Stats().Dropped; got != 1 {
		t.Errorf("Dropped after Notify-on-closed = %d, want 1", got)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseGivesUpWhenContextEnds(t *testing.T) {
	g := newGate(t) // never opened by the test: the receiver hangs
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) { g.wait(r) })
	n := newNotifier(t, Config{URLs: []string{rc.URL()}, Timeout: time.Hour})
	for range 4 {
		n.Notify(Event{Event: EventRoomStarted})
	}
	rc.next(t) // first event in flight, three queued

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := n.Close(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	if got, want := n.Stats(), (Stats{Failed: 1, Dropped: 3}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestCloseInterruptsBackoff(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	// The real timer with an hour-long backoff: only cancellation ends it.
	n := newNotifier(t, Config{URLs: []string{rc.URL()}, Backoff: []time.Duration{time.Hour}})
	n.Notify(Event{Event: EventRoomStarted})
	rc.next(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	if got, want := n.Stats(), (Stats{Failed: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	clock := newFakeClock()
	logs := newCaptureHandler()
	g := newGate(t)
	slow := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			g.wait(r)
		}
	})
	fast := newReceiver(t, nil)
	n := newNotifier(t, Config{
		URLs:      []string{slow.URL(), fast.URL()},
		QueueSize: 2,
		Now:       clock.Now,
		Logger:    slog.New(logs),
	})

	notify := func(i int) { n.Notify(Event{Event: EventTrackPublished, Track: &TrackInfo{ID: strconv.Itoa(i)}}) }
	notify(0)
	slow.next(t) // slow sender holds event 0
	fast.next(t) // fast sender delivered event 0, its queue is empty
	for i := 1; i <= 5; i++ {
		notify(i) // slow: 1 and 2 queued, 3..5 dropped
		if got := decode(t, fast.next(t).body).Track.ID; got != strconv.Itoa(i) {
			t.Fatalf("fast receiver got %s, want %d", got, i)
		}
	}
	if got := n.Stats().Dropped; got != 3 {
		t.Fatalf("Dropped = %d, want 3", got)
	}
	warns := logs.messages("webhook events dropped")
	if len(warns) != 1 || warns[0]["dropped"] != "1" || warns[0]["reason"] != "queue full" {
		t.Fatalf("drop warnings = %v, want exactly one for the first drop", warns)
	}

	clock.Advance(dropWarnInterval)
	notify(6)
	fast.next(t)
	warns = logs.messages("webhook events dropped")
	if len(warns) != 2 || warns[1]["dropped"] != "3" || warns[1]["dropped_total"] != "4" {
		t.Fatalf("drop warnings = %v, want a second one covering the 3 drops since the first", warns)
	}

	g.open()
	closeNotifier(t, n)
	var got []string
	for range 2 {
		got = append(got, decode(t, slow.next(t).body).Track.ID)
	}
	if want := []string{"1", "2"}; !slices.Equal(got, want) {
		t.Errorf("slow receiver got %v after event 0, want %v", got, want)
	}
	if got, want := n.Stats(), (Stats{Sent: 3 + 7, Dropped: 4}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestTimeoutCutsHangingReceiver(t *testing.T) {
	g := newGate(t) // never opened by the test
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) { g.wait(r) })
	sleeps := &sleepRecorder{}
	n := newNotifier(t, Config{
		URLs: []string{rc.URL()}, Timeout: 50 * time.Millisecond, MaxAttempts: 2, Sleep: sleeps.Sleep,
	})
	start := time.Now()
	n.Notify(Event{Event: EventRoomStarted})
	rc.next(t)
	rc.next(t) // the first attempt was cut and retried
	closeNotifier(t, n)

	if got, want := n.Stats(), (Stats{Failed: 1, Retries: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if elapsed := time.Since(start); elapsed > waitLimit {
		t.Errorf("took %s; Timeout did not cut the attempts", elapsed)
	}
}

func TestNoURLs(t *testing.T) {
	n := New(Config{Secret: testSecret, Logger: slog.New(slog.DiscardHandler)})
	n.Notify(Event{Event: EventRoomStarted})
	closeNotifier(t, n)
	if got := n.Stats(); got != (Stats{}) {
		t.Errorf("Stats = %+v, want zero", got)
	}
}

func TestConcurrentNotifyAndClose(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, Config{URLs: []string{rc.URL()}, QueueSize: 8})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				n.Notify(Event{Event: EventParticipantLeft})
			}
		})
	}
	closeNotifier(t, n)
	wg.Wait()
	s := n.Stats()
	if s.Sent+s.Dropped != 200 || s.Failed != 0 {
		t.Errorf("Stats = %+v, want Sent+Dropped = 200 and no failures", s)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","event":"room_started","created_at":1767225600}`)
	ts := epoch.Unix()
	headers := func(ts, sig string) http.Header {
		h := http.Header{}
		if ts != "" {
			h.Set(HeaderTimestamp, ts)
		}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		return h
	}
	tsStr := strconv.FormatInt(ts, 10)
	good := Sign(testSecret, ts, body)

	for _, tc := range []struct {
		name      string
		header    http.Header
		body      []byte
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"valid", headers(tsStr, good), body, epoch, time.Minute, nil},
		{"valid at edge of tolerance", headers(tsStr, good), body, epoch.Add(time.Minute), time.Minute, nil},
		{"valid with default tolerance", headers(tsStr, good), body, epoch.Add(4 * time.Minute), 0, nil},
		{"missing timestamp", headers("", good), body, epoch, time.Minute, ErrMissingHeader},
		{"missing signature", headers(tsStr, ""), body, epoch, time.Minute, ErrMissingHeader},
		{"tampered body", headers(tsStr, good), append(slices.Clone(body), ' '), epoch, time.Minute, ErrBadSignature},
		{"wrong secret", headers(tsStr, Sign("nope", ts, body)), body, epoch, time.Minute, ErrBadSignature},
		{"timestamp changed", headers(strconv.FormatInt(ts+1, 10), good), body, epoch, time.Minute, ErrBadSignature},
		{"malformed timestamp", headers("soon", good), body, epoch, time.Minute, ErrBadSignature},
		{"wrong scheme", headers(tsStr, "sha1="+good[len("sha256="):]), body, epoch, time.Minute, ErrBadSignature},
		{"bad hex", headers(tsStr, "sha256=zz"), body, epoch, time.Minute, ErrBadSignature},
		{"stale", headers(tsStr, good), body, epoch.Add(61 * time.Second), time.Minute, ErrStale},
		{"future", headers(tsStr, good), body, epoch.Add(-61 * time.Second), time.Minute, ErrStale},
		{"stale with default tolerance", headers(tsStr, good), body, epoch.Add(6 * time.Minute), 0, ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(testSecret, tc.header, tc.body, tc.now, tc.tolerance)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}
