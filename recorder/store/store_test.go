package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fake "now" of the tests.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuf collects log output, safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	t      *testing.T
	parent string // temporary folder holding dir and the "outside" files
	dir    string
	clock  *clock
	logs   *logBuf
	s      *Store
}

const secretMarker = "TOPSECRET-outside-the-store"

// newEnv opens a store in a fresh folder; a file outside it,
// parent/secret.webm, holds secretMarker.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	parent := t.TempDir()
	e := &env{t: t, parent: parent, dir: filepath.Join(parent, "rec"), clock: &clock{now: t0}, logs: &logBuf{}}
	if err := os.WriteFile(filepath.Join(parent, "secret.webm"), []byte(secretMarker), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Now = e.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(e.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

// add writes a recording: media of mediaSize bytes (if m.File is set), chat
// (if m.Chat is set) and metadata.
func (e *env) add(m Meta, mediaSize int, chat string) []byte {
	e.t.Helper()
	media := pattern(mediaSize)
	if m.File != "" {
		if err := os.WriteFile(filepath.Join(e.dir, m.File), media, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	if m.Chat != "" {
		if err := os.WriteFile(filepath.Join(e.dir, m.Chat), []byte(chat), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := WriteMeta(e.dir, m); err != nil {
		e.t.Fatal(err)
	}
	return media
}

func (e *env) exists(name string) bool {
	_, err := os.Lstat(filepath.Join(e.dir, name))
	return err == nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func finished(id, room string, start time.Time, d time.Duration) Meta {
	return Meta{ID: id, Room: room, Participant: "p-" + id, ParticipantName: "Name " + id,
		Tracks: []TrackMeta{{Kind: "audio", Codec: "audio/opus"}, {Kind: "video", Codec: "video/VP8"}},
		Start:  start, End: start.Add(d), State: StateFinished, File: id + ".webm"}
}

func recording(id, room string, start time.Time) Meta {
	return Meta{ID: id, Room: room, Tracks: []TrackMeta{{Kind: "audio", Codec: "audio/opus"}},
		Start: start, State: StateRecording, File: id + ".mkv"}
}

func ids(in []Info) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.ID
	}
	return out
}

func TestValidID(t *testing.T) {
	good := []string{"a", "rec_1-X", strings.Repeat("z", MaxIDLen), "0", "-", "_"}
	bad := []string{"", ".", "..", "../x", "a/b", `a\b`, "a.b", "/etc/passwd", "a\x00b", "a b", "é",
		"%2e%2e", "..%2f", strings.Repeat("z", MaxIDLen+1), "C:x", "a\n"}
	for _, id := range good {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range bad {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}

func TestOpenCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("folder not created: %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o027 != 0 {
		t.Errorf("folder mode %v, want at most 0750", fi.Mode().Perm())
	}
	if !filepath.IsAbs(s.Dir()) {
		t.Errorf("Dir() = %q, not absolute", s.Dir())
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open(dir, Options{MaxAge: -1}); err == nil {
		t.Error("negative MaxAge accepted")
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("old", "r1", t0.Add(-3*time.Hour), 90*time.Second), 1000, "")
	m := finished("chat", "r2", t0.Add(-2*time.Hour), 10*time.Minute)
	m.Chat = "chat" + chatSuffix
	e.add(m, 500, `{"text":"hi"}`+"\n")
	e.add(recording("live", "r1", t0.Add(-5*time.Minute)), 300, "")
	fail := finished("failed", "r1", t0.Add(-time.Hour), 0)
	fail.End, fail.State, fail.Error = time.Time{}, StateFailed, "disk full"
	e.add(fail, 10, "")
	// Not recordings, or broken ones.
	for name, content := range map[string]string{
		"corrupt.json":    `{"id":"corrupt",`,
		"wrongid.json":    `{"id":"other","room":"r1","state":"finished","file":"other.webm"}`,
		"badstate.json":   `{"id":"badstate","room":"r1","state":"paused"}`,
		"notes.txt":       "hello",
		".meta-123":       "{}",
		"bad.name.json":   "{}",
		"orphan.webm":     "xx",
		"README":          "",
		"old.webm.1.json": "{}",
	} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(e.dir, "sub.json"), 0o750); err != nil {
		t.Fatal(err)
	}

	list, err := e.s.List()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"live", "failed", "chat", "old"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v (newest first)", got, want)
	}
	byID := map[string]Info{}
	for _, in := range list {
		byID[in.ID] = in
	}
	if in := byID["old"]; in.Duration != 90*time.Second || in.Size != 1000 || in.State != StateFinished ||
		in.Chat || in.Room != "r1" || in.Participant != "p-old" || in.ParticipantName != "Name old" ||
		len(in.Tracks) != 2 || !in.Start.Equal(t0.Add(-3*time.Hour)) || in.ContentType != "video/webm" {
		t.Errorf("old = %+v", in)
	}
	if in := byID["chat"]; !in.Chat || in.Size != 500+int64(len(`{"text":"hi"}`)+1) {
		t.Errorf("chat = %+v: want the chat archive counted", in)
	}
	if in := byID["live"]; in.State != StateRecording || in.Duration != 5*time.Minute || in.ContentType != "video/x-matroska" {
		t.Errorf("live = %+v: want duration now-start", in)
	}
	e.clock.Add(time.Minute)
	if in, err := e.s.Get("live"); err != nil || in.Duration != 6*time.Minute {
		t.Errorf("Get(live) = %+v, %v: the duration follows the clock", in, err)
	}
	if in := byID["failed"]; in.State != StateFailed || in.Duration != 0 || in.Error != "disk full" {
		t.Errorf("failed = %+v", in)
	}
	logs := e.logs.String()
	for _, id := range []string{"corrupt", "wrongid", "badstate"} {
		if !strings.Contains(logs, "skipping recording") || !strings.Contains(logs, "id="+id) {
			t.Errorf("no log line for %s in:\n%s", id, logs)
		}
	}

	r1, err := e.s.ListFilter(Filter{Room: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(r1), []string{"live", "failed", "old"}; !slices.Equal(got, want) {
		t.Errorf("room r1 = %v, want %v", got, want)
	}
	byName, _ := e.s.ListFilter(Filter{Participant: "Name chat"})
	byPID, _ := e.s.ListFilter(Filter{Room: "r2", Participant: "p-chat"})
	none, _ := e.s.ListFilter(Filter{Room: "nope"})
	if !slices.Equal(ids(byName), []string{"chat"}) || !slices.Equal(ids(byPID), []string{"chat"}) || len(none) != 0 || none == nil {
		t.Errorf("filters: %v %v %v", ids(byName), ids(byPID), none)
	}
}

func TestGetErrors(t *testing.T) {
	e := newEnv(t, Options{})
	if err := os.WriteFile(filepath.Join(e.dir, "corrupt.json"), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]error{"missing": ErrNotFound, "../x": ErrBadID, "": ErrBadID, "corrupt": ErrCorrupt} {
		if _, err := e.s.Get(id); !errors.Is(err, want) {
			t.Errorf("Get(%q) = %v, want %v", id, err, want)
		}
		if _, err := e.s.Meta(id); !errors.Is(err, want) {
			t.Errorf("Meta(%q) = %v, want %v", id, err, want)
		}
		if _, err := e.s.Open(id); !errors.Is(err, want) {
			t.Errorf("Open(%q) = %v, want %v", id, err, want)
		}
	}
}

func TestOpenFiles(t *testing.T) {
	e := newEnv(t, Options{})
	m := finished("a", "r", t0.Add(-time.Hour), time.Minute)
	m.Chat = "a" + chatSuffix
	media := e.add(m, 4096, "{}\n")
	e.add(finished("nochat", "r", t0, time.Minute), 10, "")
	e.add(recording("live", "r", t0), 64, "")

	d, err := e.s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d)
	d.Close()
	if err != nil || !bytes.Equal(got, media) || d.Size != 4096 || d.ContentType != "video/webm" || d.Name != "a.webm" || d.ETag == "" {
		t.Errorf("Open(a): %d bytes, %v, %+v", len(got), err, d)
	}
	c, err := e.s.OpenChat("a")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(c)
	c.Close()
	if string(got) != "{}\n" || c.ContentType != ChatContentType {
		t.Errorf("OpenChat(a) = %q, %+v", got, c)
	}
	if _, err := e.s.OpenChat("nochat"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenChat(nochat) = %v", err)
	}
	// A recording in progress can be read, but has no entity tag, and
	// reads stop at the size it had when opened.
	l, err := e.s.Open("live")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := os.OpenFile(filepath.Join(e.dir, "live.mkv"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(make([]byte, 100))
	f.Close()
	got, _ = io.ReadAll(l)
	if l.ETag != "" || len(got) != 64 || l.Size != 64 {
		t.Errorf("live: etag %q, %d bytes read, size %d", l.ETag, len(got), l.Size)
	}
	// The media file is missing.
	if err := os.Remove(filepath.Join(e.dir, "nochat.webm")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Open("nochat"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open without media file = %v", err)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, Options{})
	m := finished("done", "r", t0.Add(-time.Hour), time.Minute)
	m.Chat = "done" + chatSuffix
	e.add(m, 100, "{}\n")
	e.add(recording("live", "r", t0), 100, "")
	if err := os.WriteFile(filepath.Join(e.dir, "junk.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "junk.webm"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := e.s.Delete("done"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"done.webm", "done.json", "done" + chatSuffix} {
		if e.exists(name) {
			t.Errorf("%s still exists", name)
		}
	}
	if _, err := e.s.Get("done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	if err := e.s.Delete("done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := e.s.Delete("live"); !errors.Is(err, ErrInProgress) {
		t.Errorf("Delete(live) = %v, want ErrInProgress", err)
	}
	if !e.exists("live.mkv") || !e.exists("live.json") {
		t.Error("a recording in progress lost files")
	}
	for _, id := range []string{"", "..", "../rec/live", "/etc/passwd", "live\x00"} {
		if err := e.s.Delete(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Delete(%q) = %v, want ErrBadID", id, err)
		}
	}
	// Invalid metadata can be deleted.
	if err := e.s.Delete("junk"); err != nil || e.exists("junk.json") || e.exists("junk.webm") {
		t.Errorf("Delete(junk) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.parent, "secret.webm")); err != nil {
		t.Errorf("file outside the store touched: %v", err)
	}
}

func TestSymlinksRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	e := newEnv(t, Options{})
	e.add(finished("real", "r", t0, time.Minute), 10, "")
	// Media file: a link out of the folder, and one inside it.
	if err := os.Symlink(filepath.Join(e.parent, "secret.webm"), filepath.Join(e.dir, "out.webm")); err != nil {
		t.Fatal(err)
	}
	if err := WriteMeta(e.dir, finished("out", "r", t0, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.webm", filepath.Join(e.dir, "in.webm")); err != nil {
		t.Fatal(err)
	}
	if err := WriteMeta(e.dir, finished("in", "r", t0, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Metadata file that is a link out of the folder.
	if err := WriteMeta(e.parent, finished("metaout", "r", t0, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(e.parent, "metaout.json"), filepath.Join(e.dir, "metaout.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "metaout.webm"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{"out", "in"} {
		if d, err := e.s.Open(id); !errors.Is(err, ErrNotFound) {
			if d != nil {
				d.Close()
			}
			t.Errorf("Open(%s) through a symbolic link = %v", id, err)
		}
		if in, err := e.s.Get(id); err != nil || in.Size != 0 || in.ContentType != "" {
			t.Errorf("Get(%s) = %+v, %v: a link is not counted as the media file", id, in, err)
		}
	}
	if _, err := e.s.Open("metaout"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(metaout) = %v, want ErrCorrupt", err)
	}
	list, err := e.s.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(list); slices.Contains(got, "metaout") {
		t.Errorf("List = %v includes a metadata file outside the folder", got)
	}
	// Deleting removes the link, never its target.
	if err := e.s.Delete("out"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(e.parent, "secret.webm")); err != nil || string(b) != secretMarker {
		t.Errorf("link target touched: %q, %v", b, err)
	}
}

func TestMetaFileFieldsConfined(t *testing.T) {
	e := newEnv(t, Options{})
	abs := filepath.Join(e.parent, "secret.webm")
	cases := map[string]Meta{
		"up":      {File: "../secret.webm"},
		"etc":     {File: "../../etc/passwd"},
		"abs":     {File: abs},
		"other":   {File: "victim.webm"},
		"prefix":  {File: "prefix.webm/../../secret.webm"},
		"ext":     {File: "ext.json"},
		"chatup":  {File: "chatup.webm", Chat: "../secret.webm"},
		"chatabs": {File: "chatabs.webm", Chat: abs},
		"chatoth": {File: "chatoth.webm", Chat: "victim" + chatSuffix},
	}
	e.add(finished("victim", "r", t0, time.Minute), 10, "")
	for id, m := range cases {
		m.ID, m.Room, m.State, m.Start = id, "r", StateFinished, t0
		if err := WriteMeta(e.dir, m); err != nil {
			t.Fatal(err)
		}
		if d, err := e.s.Open(id); !errors.Is(err, ErrCorrupt) {
			if d != nil {
				d.Close()
			}
			t.Errorf("Open(%s) with file %q = %v, want ErrCorrupt", id, m.File, err)
		}
		if d, err := e.s.OpenChat(id); !errors.Is(err, ErrCorrupt) {
			if d != nil {
				d.Close()
			}
			t.Errorf("OpenChat(%s) with chat %q = %v, want ErrCorrupt", id, m.Chat, err)
		}
	}
	list, err := e.s.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(list); !slices.Equal(got, []string{"victim"}) {
		t.Errorf("List = %v, want only victim", got)
	}
	// Deleting one removes its own files only.
	if err := e.s.Delete("other"); err != nil || !e.exists("victim.webm") {
		t.Errorf("Delete(other) = %v; victim.webm exists: %v", err, e.exists("victim.webm"))
	}
}

func TestSymlinkedFolder(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	e := newEnv(t, Options{})
	e.add(finished("a", "r", t0, time.Minute), 10, "")
	link := filepath.Join(e.parent, "link")
	if err := os.Symlink(e.dir, link); err != nil {
		t.Fatal(err)
	}
	s, err := Open(link, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != e.s.Dir() {
		t.Errorf("Dir() = %q, want the resolved %q", s.Dir(), e.s.Dir())
	}
	if _, err := s.Get("a"); err != nil {
		t.Errorf("Get through a linked folder: %v", err)
	}
}

// TestConcurrent runs listing, reading, deleting and sweeping at once, for
// the race detector.
func TestConcurrent(t *testing.T) {
	e := newEnv(t, Options{MaxAge: time.Hour, MaxTotalBytes: 2000})
	for i := range 20 {
		id := fmt.Sprintf("r%02d", i)
		e.add(finished(id, "r", t0.Add(-time.Duration(i)*10*time.Minute), time.Minute), 100, "")
	}
	e.add(recording("live", "r", t0.Add(-time.Hour)), 100, "")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("r%02d", i)
				switch w {
				case 0:
					if _, err := e.s.List(); err != nil {
						errs <- err
					}
				case 1:
					if d, err := e.s.Open(id); err == nil {
						_, _ = io.Copy(io.Discard, d)
						d.Close()
					} else if !errors.Is(err, ErrNotFound) {
						errs <- err
					}
				case 2:
					if err := e.s.Delete(id); err != nil && !errors.Is(err, ErrNotFound) {
						errs <- err
					}
				case 3:
					if _, err := e.s.Sweep(); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := e.s.List()
	if err != nil || !slices.Equal(ids(list), []string{"live"}) {
		t.Errorf("left %v, %v", ids(list), err)
	}
}
