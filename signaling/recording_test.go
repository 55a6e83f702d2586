package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 10 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ---------------------------------------------------------------- fake recorder

type recCall struct {
	op, room, participant string
}

// fakeRecorder is a RecordingControl that records its calls. Its hooks,
// if set, run instead of the default behaviour.
type fakeRecorder struct {
	mu       sync.Mutex
	recorded map[string][]string // by room
	calls    []recCall
	start    func(ctx context.Context, room, participant string) ([]string, error)
	stop     func(ctx context.Context, room, participant string) error
	snapshot func(room string) []string
}

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{recorded: map[string][]string{}} }

func (f *fakeRecorder) set(room string, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded[room] = ids
}

func (f *fakeRecorder) StartRecording(ctx context.Context, room, participant string) ([]string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, recCall{"start", room, participant})
	hook := f.start
	f.mu.Unlock()
	if hook != nil {
		return hook(ctx, room, participant)
	}
	return []string{"P-" + room + "-" + participant}, nil
}

func (f *fakeRecorder) StopRecording(ctx context.Context, room, participant string) error {
	f.mu.Lock()
	f.calls = append(f.calls, recCall{"stop", room, participant})
	hook := f.stop
	f.mu.Unlock()
	if hook != nil {
		return hook(ctx, room, participant)
	}
	return nil
}

func (f *fakeRecorder) Recording(room string) []string {
	f.mu.Lock()
	hook := f.snapshot
	ids := slices.Clone(f.recorded[room])
	f.mu.Unlock()
	if hook != nil {
		return hook(room)
	}
	return ids
}

func (f *fakeRecorder) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *fakeRecorder) callList() []recCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ---------------------------------------------------------------- server and members

type testServer struct {
	sig *signaling.Server
	url string // ws://.../ws
}

func startServer(t testing.TB, cfg signaling.Config) *testServer {
	t.Helper()
	return startServerSFU(t, sfu.Config{}, cfg)
}

// startServerSFU is startServer with SFU settings (media stays on loopback).
func startServerSFU(t testing.TB, sc sfu.Config, cfg signaling.Config) *testServer {
	t.Helper()
	log := testLogger()
	sc.UDPIP, sc.Logger = "127.0.0.1", log
	sf, err := sfu.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = log
	sig := signaling.NewServer(sf, cfg)
	mux := http.NewServeMux()
	sig.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		sig.Close()
		hs.Close()
		if err := sf.Close(); err != nil {
			t.Errorf("close sfu: %v", err)
		}
	})
	return &testServer{sig: sig, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
}

// member is a protocol client that keeps the server's notifications.
type member struct {
	t      *testing.T
	name   string
	c      *client.Client
	joined signaling.Message

	mu     sync.Mutex
	events []signaling.Message
	change chan struct{} // closed and replaced on every event
	seq    int
}

// dial connects a member; with a room, it joins it.
func dial(t *testing.T, s *testServer, room, name string) *member {
	t.Helper()
	m := &member{t: t, name: name, change: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := client.Dial(ctx, s.url, client.Options{Events: m.record})
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	t.Cleanup(func() { _ = c.Close() })
	if room != "" {
		j, err := c.Join(ctx, room, name)
		if err != nil {
			t.Fatalf("%s: join %s: %v", name, room, err)
		}
		m.joined = j
	}
	return m
}

// record keeps a server notification (client.Options.Events).
func (m *member) record(msg signaling.Message) {
	m.mu.Lock()
	m.events = append(m.events, msg)
	close(m.change)
	m.change = make(chan struct{})
	m.mu.Unlock()
}

// waitFor waits until one of the events received so far satisfies cond and
// returns it.
func (m *member) waitFor(what string, cond func(signaling.Message) bool) signaling.Message {
	m.t.Helper()
	var found signaling.Message
	m.waitUntil(what, func(events []signaling.Message) bool {
		for _, e := range events {
			if cond(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// waitUntil waits until cond holds for the events received so far.
func (m *member) waitUntil(what string, cond func([]signaling.Message) bool) {
	m.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		ch := m.change
		ok := cond(m.events)
		m.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-m.c.Done():
			m.t.Fatalf("%s: connection closed while waiting for %s", m.name, what)
		case <-deadline.C:
			m.t.Fatalf("%s: timed out after %v waiting for %s; events: %s", m.name, waitLimit, what, m.summary())
		}
	}
}

// summary lists the events received so far, briefly.
func (m *member) summary() string {
	var parts []string
	for _, e := range m.eventList() {
		s := e.Type
		if e.ID != "" {
			s += " id=" + e.ID
		}
		if e.Code != "" {
			s += " code=" + e.Code
		}
		if e.Type == signaling.TypeRecording || len(e.Recorded) > 0 {
			s += fmt.Sprintf(" recorded=%v", e.Recorded)
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (m *member) eventList() []signaling.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// sync makes sure that everything the server queued for the member before
// this call has arrived: messages are delivered in order, so a pong to a
// fresh ping comes after them.
func (m *member) sync() {
	m.t.Helper()
	m.mu.Lock()
	m.seq++
	id := fmt.Sprintf("sync-%d", m.seq)
	m.mu.Unlock()
	if err := m.c.Send(signaling.Message{Type: signaling.TypePing, ID: id}); err != nil {
		m.t.Fatal(err)
	}
	m.waitFor("pong "+id, func(e signaling.Message) bool { return e.Type == signaling.TypePong && e.ID == id })
}

// notices lists the recording notices received so far (each one's list of
// recorded participants).
func (m *member) notices() [][]string {
	var out [][]string
	for _, e := range m.eventList() {
		if e.Type == signaling.TypeRecording {
			out = append(out, e.Recorded)
		}
	}
	return out
}

// waitNotices waits until the member has received n recording notices and
// returns them.
func (m *member) waitNotices(n int) [][]string {
	m.t.Helper()
	m.waitUntil(fmt.Sprintf("%d recording notices", n), func(events []signaling.Message) bool {
		count := 0
		for _, e := range events {
			if e.Type == signaling.TypeRecording {
				count++
			}
		}
		return count >= n
	})
	return m.notices()
}

// request sends m with an id and waits for the reply (or error) with it.
func (m *member) request(msg signaling.Message) signaling.Message {
	m.t.Helper()
	m.mu.Lock()
	m.seq++
	msg.ID = fmt.Sprintf("req-%d", m.seq)
	m.mu.Unlock()
	if err := m.c.Send(msg); err != nil {
		m.t.Fatal(err)
	}
	return m.waitFor("the reply to "+msg.ID, func(e signaling.Message) bool { return e.ID == msg.ID })
}

func errCode(err error) string {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// ---------------------------------------------------------------- tests

// TestRecordingNoticeOnJoin: a client that joins a recorded room learns it
// right after joined; one that joins another room hears nothing; joined
// says whether the client may control recording.
func TestRecordingNoticeOnJoin(t *testing.T) {
	rec := newFakeRecorder()
	rec.set("recorded", "PX", "PY")
	s := startServer(t, signaling.Config{Recording: rec, ClientRecording: true})

	a := dial(t, s, "recorded", "a")
	if !a.joined.CanRecord {
		t.Error("joined.canRecord is false although ClientRecording and Recording are set")
	}
	if got := a.waitNotices(1); !slices.Equal(got[0], []string{"PX", "PY"}) {
		t.Errorf("notice at join = %v, want [PX PY]", got[0])
	}
	// The notice follows joined: the first event after the join reply.
	if ev := a.eventList(); ev[0].Type != signaling.TypeRecording {
		t.Errorf("first event after joined = %+v, want the recording notice", ev[0])
	}

	b := dial(t, s, "quiet", "b")
	b.sync()
	if n := b.notices(); len(n) != 0 {
		t.Errorf("member of a room nobody records got notices %v", n)
	}
	a.sync()
	if n := a.notices(); len(n) != 1 {
		t.Errorf("a got %d notices, want 1: %v", len(n), n)
	}

	t.Run("notice without control", func(t *testing.T) {
		rec := newFakeRecorder()
		rec.set("r", "PX")
		s := startServer(t, signaling.Config{Recording: rec})
		c := dial(t, s, "r", "c")
		if c.joined.CanRecord {
			t.Error("joined.canRecord is true although ClientRecording is off")
		}
		if got := c.waitNotices(1); !slices.Equal(got[0], []string{"PX"}) {
			t.Errorf("notice at join = %v, want [PX]", got[0])
		}
	})
	t.Run("no recorder", func(t *testing.T) {
		s := startServer(t, signaling.Config{ClientRecording: true})
		c := dial(t, s, "r", "c")
		if c.joined.CanRecord {
			t.Error("joined.canRecord is true without a RecordingControl")
		}
		c.sync()
		if n := c.notices(); len(n) != 0 {
			t.Errorf("notices without a recorder: %v", n)
		}
	})
}

// TestRecordingChanged: notices reach every WebSocket member of the room,
// and only them.
func TestRecordingChanged(t *testing.T) {
	rec := newFakeRecorder()
	s := startServer(t, signaling.Config{Recording: rec})
	a := dial(t, s, "r", "a")
	b := dial(t, s, "r", "b")
	other := dial(t, s, "s", "other")
	lobby := dial(t, s, "", "lobby") // connected, not joined

	s.sig.RecordingChanged("r", []string{a.c.ID()})
	for _, m := range []*member{a, b} {
		if got := m.waitNotices(1); len(got) != 1 || !slices.Equal(got[0], []string{a.c.ID()}) {
			t.Errorf("%s: notices %v, want [[%s]]", m.name, got, a.c.ID())
		}
	}
	s.sig.RecordingChanged("nobody-here", []string{"PZ"})
	s.sig.RecordingChanged("r", nil)
	for _, m := range []*member{a, b} {
		if got := m.waitNotices(2); len(got) != 2 || len(got[1]) != 0 {
			t.Errorf("%s: notices %v, want the second one empty", m.name, got)
		}
	}
	for _, m := range []*member{other, lobby, a, b} {
		m.sync()
	}
	if n := other.notices(); len(n) != 0 {
		t.Errorf("member of another room got notices %v", n)
	}
	if n := lobby.notices(); len(n) != 0 {
		t.Errorf("member that has not joined got notices %v", n)
	}
	for _, m := range []*member{a, b} {
		if n := m.notices(); len(n) != 2 {
			t.Errorf("%s: %d notices, want 2: %v", m.name, len(n), n)
		}
	}

	// A member that left is no longer told; the others still are.
	if err := a.c.Leave(); err != nil {
		t.Fatal(err)
	}
	b.waitFor("a's departure", func(e signaling.Message) bool { return e.Type == signaling.TypeParticipantLeft })
	s.sig.RecordingChanged("r", []string{b.c.ID()})
	if got := b.waitNotices(3); !slices.Equal(got[2], []string{b.c.ID()}) {
		t.Errorf("b: third notice %v, want [%s]", got[2], b.c.ID())
	}
}

// TestRecordingChangedDuringJoin: a change notified while a joining client's
// initial state is being read wins over that (older) state.
func TestRecordingChangedDuringJoin(t *testing.T) {
	rec := newFakeRecorder()
	s := startServer(t, signaling.Config{Recording: rec})
	rec.snapshot = func(room string) []string {
		// The recorder reports a change (from another goroutine in real
		// life) after it computed what it answers.
		s.sig.RecordingChanged(room, []string{"NEW"})
		return []string{"OLD"}
	}
	a := dial(t, s, "r", "a")
	a.sync()
	if got := a.notices(); len(got) != 1 || !slices.Equal(got[0], []string{"NEW"}) {
		t.Errorf("notices %v, want only [[NEW]]", got)
	}
}

// TestRecordingChangedSlowClient: a member that does not read does not hold
// up RecordingChanged; it is disconnected instead.
func TestRecordingChangedSlowClient(t *testing.T) {
	s := startServer(t, signaling.Config{Recording: newFakeRecorder()})
	conn, _, err := websocket.DefaultDialer.Dial(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteJSON(signaling.Message{Type: signaling.TypeJoin, Room: "r", Name: "slow"}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	var joined signaling.Message
	if err := conn.ReadJSON(&joined); err != nil || joined.Type != signaling.TypeJoined {
		t.Fatalf("join: %+v, %v", joined, err)
	}
	// From now on the client reads nothing. 1000 notices of some 60 KB
	// each are far more than the session's queue and the sockets' buffers.
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = fmt.Sprintf("participant-%018d", i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			s.sig.RecordingChanged("r", ids)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("RecordingChanged blocked on a client that does not read")
	}
	// The server gave up on the client: reading now drains what was
	// queued, then the connection ends.
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the slow client's connection was not closed: %v", err)
			}
			break
		}
	}
}

// TestRecordingControl: startRecording and stopRecording, when permitted,
// reach the recorder for the client's own room; refusals carry codes.
func TestRecordingControl(t *testing.T) {
	t.Run("not permitted", func(t *testing.T) {
		for _, cfg := range []signaling.Config{
			{Recording: newFakeRecorder()}, // ClientRecording off
			{ClientRecording: true},        // no recorder
			{},                             // neither
		} {
			s := startServer(t, cfg)
			a := dial(t, s, "r", "a")
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			_, err := a.c.StartRecording(ctx, "")
			if errCode(err) != signaling.CodeNotPermitted {
				t.Errorf("ClientRecording %v, recorder %v: start: %v, want %s", cfg.ClientRecording, cfg.Recording != nil, err, signaling.CodeNotPermitted)
			}
			err = a.c.StopRecording(ctx, "")
			if errCode(err) != signaling.CodeNotPermitted {
				t.Errorf("ClientRecording %v, recorder %v: stop: %v, want %s", cfg.ClientRecording, cfg.Recording != nil, err, signaling.CodeNotPermitted)
			}
			cancel()
			if rec, ok := cfg.Recording.(*fakeRecorder); ok && len(rec.callList()) != 0 {
				t.Errorf("the recorder was called: %+v", rec.callList())
			}
		}
	})

	rec := newFakeRecorder()
	s := startServer(t, signaling.Config{Recording: rec, ClientRecording: true})
	a := dial(t, s, "r", "a")
	b := dial(t, s, "r", "b")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	t.Run("start and stop", func(t *testing.T) {
		rec.resetCalls()
		ids, err := a.c.StartRecording(ctx, "")
		if err != nil || !slices.Equal(ids, []string{"P-r-"}) {
			t.Errorf("start room: %v, %v; want [P-r-]", ids, err)
		}
		ids, err = a.c.StartRecording(ctx, b.c.ID())
		if err != nil || !slices.Equal(ids, []string{"P-r-" + b.c.ID()}) {
			t.Errorf("start participant: %v, %v", ids, err)
		}
		if err := a.c.StopRecording(ctx, b.c.ID()); err != nil {
			t.Errorf("stop participant: %v", err)
		}
		if err := b.c.StopRecording(ctx, ""); err != nil {
			t.Errorf("stop room: %v", err)
		}
		want := []recCall{{"start", "r", ""}, {"start", "r", b.c.ID()}, {"stop", "r", b.c.ID()}, {"stop", "r", ""}}
		if got := rec.callList(); !slices.Equal(got, want) {
			t.Errorf("recorder calls %+v, want %+v", got, want)
		}
		// The reply echoes the request.
		r := a.request(signaling.Message{Type: signaling.TypeStartRecording, ParticipantID: "PQ"})
		if r.Type != signaling.TypeRecordingStarted || r.ParticipantID != "PQ" || !slices.Equal(r.Recorded, []string{"P-r-PQ"}) {
			t.Errorf("reply to startRecording = %+v", r)
		}
		r = a.request(signaling.Message{Type: signaling.TypeStopRecording, ParticipantID: "PQ"})
		if r.Type != signaling.TypeRecordingStopped || r.ParticipantID != "PQ" {
			t.Errorf("reply to stopRecording = %+v", r)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			err  error
			code string
		}{
			{fmt.Errorf("recorder: room %q: %w", "r", store.ErrAlreadyRecording), signaling.CodeAlreadyRecording},
			{fmt.Errorf("recorder: room %q: %w", "r", store.ErrNotRecording), signaling.CodeNotRecording},
			{fmt.Errorf("recorder: participant %q: %w", "x", store.ErrUnknownParticipant), signaling.CodeNotFound},
			{fmt.Errorf("recorder: room %q: %w", "r", store.ErrUnknownRoom), signaling.CodeNotFound},
			{fmt.Errorf("policy: %w", store.ErrForbidden), signaling.CodeNotPermitted},
			{fmt.Errorf("what: %w", store.ErrBadRequest), signaling.CodeBadRequest},
			{errors.New("disk full"), signaling.CodeInternal},
		} {
			rec.mu.Lock()
			rec.start = func(context.Context, string, string) ([]string, error) { return nil, c.err }
			rec.stop = func(context.Context, string, string) error { return c.err }
			rec.mu.Unlock()
			_, err := a.c.StartRecording(ctx, "x")
			var se *client.ServerError
			if !errors.As(err, &se) || se.Code != c.code || !strings.Contains(se.Message, c.err.Error()) {
				t.Errorf("start failing with %q: %v, want code %s and the error's text", c.err, err, c.code)
			}
			if err := a.c.StopRecording(ctx, "x"); errCode(err) != c.code {
				t.Errorf("stop failing with %q: %v, want code %s", c.err, err, c.code)
			}
		}
		rec.mu.Lock()
		rec.start, rec.stop = nil, nil
		rec.mu.Unlock()
		a.sync()
		if errs := a.c.Errors(); len(errs) != 0 {
			t.Errorf("errors outside replies: %+v", errs)
		}
	})

	t.Run("own room only", func(t *testing.T) {
		rec.resetCalls()
		r := a.request(signaling.Message{Type: signaling.TypeStartRecording, Room: "elsewhere"})
		if r.Type != signaling.TypeError || r.Code != signaling.CodeNotPermitted {
			t.Errorf("start in another room: %+v, want error %s", r, signaling.CodeNotPermitted)
		}
		r = a.request(signaling.Message{Type: signaling.TypeStopRecording, Room: "r"}) // its own: fine
		if r.Type != signaling.TypeRecordingStopped {
			t.Errorf("stop naming its own room: %+v", r)
		}
		if got, want := rec.callList(), []recCall{{"stop", "r", ""}}; !slices.Equal(got, want) {
			t.Errorf("recorder calls %+v, want %+v", got, want)
		}
		lobby := dial(t, s, "", "lobby")
		r = lobby.request(signaling.Message{Type: signaling.TypeStartRecording})
		if r.Type != signaling.TypeError || r.Code != signaling.CodeNotJoined {
			t.Errorf("start before join: %+v, want error %s", r, signaling.CodeNotJoined)
		}
		r = a.request(signaling.Message{Type: signaling.TypeStartRecording, ParticipantID: strings.Repeat("p", signaling.MaxParticipantIDLen+1)})
		if r.Type != signaling.TypeError || r.Code != signaling.CodeBadRequest {
			t.Errorf("start with an oversized participantId: %+v, want error %s", r, signaling.CodeBadRequest)
		}
	})

	t.Run("session keeps working during a request", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		rec.mu.Lock()
		rec.start = func(ctx context.Context, room, _ string) ([]string, error) {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// A recorder that reports the change before it returns.
			s.sig.RecordingChanged(room, []string{"PA"})
			return []string{"PA"}, nil
		}
		rec.mu.Unlock()
		defer func() {
			rec.mu.Lock()
			rec.start = nil
			rec.mu.Unlock()
		}()
		before := len(b.notices())
		first := fmt.Sprintf("slow-%d", time.Now().UnixNano())
		if err := a.c.Send(signaling.Message{Type: signaling.TypeStartRecording, ID: first}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-entered:
		case <-time.After(waitLimit):
			t.Fatal("the recorder was not called")
		}
		a.sync() // answered while the recorder is busy
		r := a.request(signaling.Message{Type: signaling.TypeStartRecording})
		if r.Type != signaling.TypeError || r.Code != signaling.CodeBadRequest {
			t.Errorf("second request while one runs: %+v, want error %s", r, signaling.CodeBadRequest)
		}
		close(release)
		r = a.waitFor("the reply to the slow request", func(e signaling.Message) bool { return e.ID == first })
		if r.Type != signaling.TypeRecordingStarted || !slices.Equal(r.Recorded, []string{"PA"}) {
			t.Errorf("reply = %+v", r)
		}
		if got := b.waitNotices(before + 1); !slices.Equal(got[before], []string{"PA"}) {
			t.Errorf("b's notice = %v, want [PA]", got[before])
		}
		// The next request is accepted again.
		if err := a.c.StopRecording(ctx, ""); err != nil {
			t.Errorf("stop after the slow start: %v", err)
		}
	})
}
