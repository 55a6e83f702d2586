package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCtrl is a Controller that records its calls.
type fakeCtrl struct {
	mu    sync.Mutex
	calls []string
	ids   []string
	err   error
}

func (f *fakeCtrl) StartRecording(_ context.Context, room, participant string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start "+room+"/"+participant)
	return f.ids, f.err
}

func (f *fakeCtrl) StopRecording(_ context.Context, room, participant string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "stop "+room+"/"+participant)
	return f.err
}

func (f *fakeCtrl) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// server runs the API of e's store over real HTTP.
func (e *env) server(ctrl Controller, auth func(*http.Request) error) *httptest.Server {
	srv := httptest.NewServer(e.s.Handler(ctrl, auth))
	e.t.Cleanup(srv.Close)
	return srv
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) jsonError(t *testing.T) errorJSON {
	t.Helper()
	var e errorJSON
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error with Content-Type %q, body %q", ct, r.body)
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == "" || e.Error == "" {
		t.Errorf("error body %q: %v", r.body, err)
	}
	return e
}

// do sends a request with the raw path (kept as is on the wire) and does
// not follow redirects.
func do(t *testing.T, srv *httptest.Server, method, path string, body string, header ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func TestHTTPList(t *testing.T) {
	e := newEnv(t, Options{})
	m := finished("done", "r1", t0.Add(-time.Hour), 90*time.Second+500*time.Millisecond)
	m.Chat = "done" + chatSuffix
	e.add(m, 1000, "{}\n")
	e.add(recording("live", "r2", t0.Add(-time.Minute)), 10, "")
	if err := os.WriteFile(filepath.Join(e.dir, "bad.json"), []byte("]"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := e.server(nil, nil)

	r := do(t, srv, "GET", "/api/recordings", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("list: %d %q", r.status, r.body)
	}
	var out struct {
		Recordings []map[string]any `json:"recordings"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Recordings) != 2 {
		t.Fatalf("list body %s: %v", r.body, err)
	}
	got := out.Recordings[1]
	want := map[string]any{"id": "done", "room": "r1", "participant": "p-done", "participantName": "Name done",
		"duration": 90.5, "size": float64(1003), "state": "finished", "chat": true, "contentType": "video/webm"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
	if start, err := time.Parse(time.RFC3339, fmt.Sprint(got["start"])); err != nil || !start.Equal(t0.Add(-time.Hour)) {
		t.Errorf("start %v: %v", got["start"], err)
	}
	if tr, ok := got["tracks"].([]any); !ok || len(tr) != 2 {
		t.Errorf("tracks %v", got["tracks"])
	}
	if live := out.Recordings[0]; live["id"] != "live" || live["duration"] != 60.0 || live["end"] != nil || live["state"] != "recording" {
		t.Errorf("live = %v", live)
	}

	r = do(t, srv, "GET", "/api/recordings?room=r2", "")
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Recordings) != 1 || out.Recordings[0]["id"] != "live" {
		t.Errorf("?room=r2: %s", r.body)
	}
	r = do(t, srv, "GET", "/api/recordings?room=none", "")
	if strings.TrimSpace(string(r.body)) != `{"recordings":[]}` {
		t.Errorf("empty list: %s", r.body)
	}

	r = do(t, srv, "GET", "/api/recordings/done/meta", "")
	var meta Meta
	if err := json.Unmarshal(r.body, &meta); r.status != 200 || err != nil || meta.ID != "done" || meta.File != "done.webm" {
		t.Errorf("meta: %d %s %v", r.status, r.body, err)
	}
	for path, code := range map[string]string{"/api/recordings/bad/meta": "corrupt", "/api/recordings/nope/meta": "not_found"} {
		r = do(t, srv, "GET", path, "")
		if r.status != http.StatusNotFound || r.jsonError(t).Code != code {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

func TestHTTPDownload(t *testing.T) {
	e := newEnv(t, Options{})
	m := finished("rec1", "r", t0.Add(-time.Hour), time.Minute)
	m.Chat = "rec1" + chatSuffix
	media := e.add(m, 1000, `{"from":"a","text":"hi"}`+"\n")
	srv := e.server(nil, nil)
	const p = "/api/recordings/rec1"

	r := do(t, srv, "GET", p, "")
	if r.status != 200 || string(r.body) != string(media) || r.header.Get("Content-Type") != "video/webm" ||
		r.header.Get("Accept-Ranges") != "bytes" || r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" {
		t.Fatalf("full: %d, %d bytes, %v", r.status, len(r.body), r.header)
	}
	disp, params, err := mime.ParseMediaType(r.header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != "rec1.webm" {
		t.Errorf("Content-Disposition %q", r.header.Get("Content-Disposition"))
	}
	etag, lastMod := r.header.Get("ETag"), r.header.Get("Last-Modified")

	ranges := []struct {
		rng, contentRange string
		from, to          int
	}{
		{"bytes=10-19", "bytes 10-19/1000", 10, 20},
		{"bytes=-100", "bytes 900-999/1000", 900, 1000},
		{"bytes=990-", "bytes 990-999/1000", 990, 1000},
		{"bytes=995-5000", "bytes 995-999/1000", 995, 1000},
		{"bytes=-0, 0-9", "bytes 0-9/1000", 0, 10},
	}
	for _, c := range ranges {
		r := do(t, srv, "GET", p, "", "Range", c.rng)
		if r.status != http.StatusPartialContent || r.header.Get("Content-Range") != c.contentRange ||
			string(r.body) != string(media[c.from:c.to]) {
			t.Errorf("%s: %d %q, %d bytes", c.rng, r.status, r.header.Get("Content-Range"), len(r.body))
		}
	}
	for _, bad := range []string{"bytes=1000-", "bytes=2000-3000", "bytes=-0", "bytes= -0 ", "bytes=-00,5000-"} {
		r := do(t, srv, "GET", p, "", "Range", bad)
		if r.status != http.StatusRequestedRangeNotSatisfiable || r.jsonError(t).Code != "range_not_satisfiable" ||
			r.header.Get("Content-Range") != "bytes */1000" {
			t.Errorf("%s: %d %v %q", bad, r.status, r.header, r.body)
		}
	}
	// If-Range: a current validator keeps the range, a stale one gets
	// the whole file.
	for _, c := range []struct {
		ifRange string
		partial bool
	}{
		{etag, true},
		{`"stale"`, false},
		{lastMod, true},
		{t0.Add(-24 * time.Hour).Format(http.TimeFormat), false},
	} {
		r := do(t, srv, "GET", p, "", "Range", "bytes=0-9", "If-Range", c.ifRange)
		if c.partial && (r.status != http.StatusPartialContent || len(r.body) != 10) ||
			!c.partial && (r.status != http.StatusOK || len(r.body) != 1000) {
			t.Errorf("If-Range %s: %d, %d bytes", c.ifRange, r.status, len(r.body))
		}
	}
	if r := do(t, srv, "GET", p, "", "Range", "bytes=-0", "If-Range", `"stale"`); r.status != 200 || len(r.body) != 1000 {
		t.Errorf("bytes=-0 with a stale If-Range: %d", r.status)
	}
	for _, malformed := range []string{"bytes=abc", "bytes=5-1", "items=0-1"} {
		r := do(t, srv, "GET", p, "", "Range", malformed)
		if r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%s: %d", malformed, r.status)
		}
		r.jsonError(t)
	}
	if r := do(t, srv, "GET", p, "", "If-Match", `"stale"`); r.status != http.StatusPreconditionFailed || r.jsonError(t).Code != "precondition_failed" {
		t.Errorf("If-Match stale: %d %s", r.status, r.body)
	}
	r = do(t, srv, "GET", p, "", "Range", "bytes=0-1,10-11")
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); r.status != http.StatusPartialContent || mt != "multipart/byteranges" {
		t.Errorf("two ranges: %d %q", r.status, r.header.Get("Content-Type"))
	}
	if r := do(t, srv, "GET", p, "", "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.status)
	}

	r = do(t, srv, "HEAD", p, "")
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "1000" || r.header.Get("Content-Type") != "video/webm" {
		t.Errorf("HEAD: %d %v %d bytes", r.status, r.header, len(r.body))
	}
	if r := do(t, srv, "HEAD", "/api/recordings/nope", ""); r.status != http.StatusNotFound || len(r.body) != 0 {
		t.Errorf("HEAD unknown: %d", r.status)
	}

	r = do(t, srv, "GET", p+"/chat", "")
	if r.status != 200 || r.header.Get("Content-Type") != ChatContentType || !strings.Contains(string(r.body), `"hi"`) {
		t.Errorf("chat: %d %v %q", r.status, r.header, r.body)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	e.add(finished("nochat", "r", t0, time.Minute), 1, "")
	if r := do(t, srv, "GET", "/api/recordings/nochat/chat", ""); r.status != http.StatusNotFound || r.jsonError(t).Code != "not_found" {
		t.Errorf("missing chat: %d %s", r.status, r.body)
	}

	// A recording in progress: served, with no entity tag.
	e.add(recording("live", "r", t0), 50, "")
	r = do(t, srv, "GET", "/api/recordings/live", "", "Range", "bytes=0-9")
	if r.status != http.StatusPartialContent || r.header.Get("ETag") != "" || r.header.Get("Last-Modified") != "" ||
		r.header.Get("Content-Type") != "video/x-matroska" || r.header.Get("Content-Range") != "bytes 0-9/50" {
		t.Errorf("live: %d %v", r.status, r.header)
	}
}

func TestHTTPDelete(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("done", "r", t0, time.Minute), 10, "")
	e.add(recording("live", "r", t0), 10, "")
	srv := e.server(nil, nil)

	if r := do(t, srv, "DELETE", "/api/recordings/done", ""); r.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if e.exists("done.webm") || e.exists("done.json") {
		t.Error("files left")
	}
	if r := do(t, srv, "GET", "/api/recordings/done", ""); r.status != http.StatusNotFound {
		t.Errorf("GET after delete: %d", r.status)
	}
	for path, want := range map[string]struct {
		status int
		code   string
	}{
		"/api/recordings/done": {404, "not_found"},
		"/api/recordings/live": {409, "in_progress"},
		"/api/recordings/a.b":  {400, "bad_id"},
		"/api/recordings/a%00": {400, "bad_id"},
	} {
		r := do(t, srv, "DELETE", path, "")
		if r.status != want.status || r.jsonError(t).Code != want.code {
			t.Errorf("DELETE %s: %d %s, want %d %s", path, r.status, r.body, want.status, want.code)
		}
	}
	if !e.exists("live.mkv") {
		t.Error("recording in progress deleted")
	}
}

func TestHTTPTraversal(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("rec1", "r", t0, time.Minute), 100, "")
	if runtime.GOOS != "windows" {
		if err := os.Symlink(filepath.Join(e.parent, "secret.webm"), filepath.Join(e.dir, "link.webm")); err != nil {
			t.Fatal(err)
		}
		if err := WriteMeta(e.dir, finished("link", "r", t0, time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	evil := finished("evil", "r", t0, time.Minute)
	evil.File, evil.Chat = "../secret.webm", "../secret.webm"
	if err := WriteMeta(e.dir, evil); err != nil {
		t.Fatal(err)
	}
	passwd := finished("passwd", "r", t0, time.Minute)
	passwd.File, passwd.Chat = "../../etc/passwd", "/etc/passwd"
	if err := WriteMeta(e.dir, passwd); err != nil {
		t.Fatal(err)
	}
	secretPath := filepath.Join(e.parent, "secret.webm")
	srv := e.server(nil, nil)

	// The control: a real recording is served.
	if r := do(t, srv, "GET", "/api/recordings/rec1", ""); r.status != 200 || len(r.body) != 100 {
		t.Fatalf("rec1: %d", r.status)
	}
	paths := []string{
		"/api/recordings/..%2f..%2fetc%2fpasswd",
		"/api/recordings/..%2Fsecret",
		"/api/recordings/..%2fsecret.webm",
		"/api/recordings/%2e%2e",
		"/api/recordings/%2e%2e%2fsecret",
		"/api/recordings/..",
		"/api/recordings/../secret",
		"/api/recordings/..%5Csecret",
		"/api/recordings/..%5c..%5cetc%5cpasswd",
		"/api/recordings/%2Fetc%2Fpasswd",
		"/api/recordings/%2f" + strings.ReplaceAll(strings.TrimPrefix(secretPath, "/"), "/", "%2f"),
		"/api/recordings//etc/passwd",
		"/api/recordings/" + secretPath,
		"/api/recordings/rec1%00",
		"/api/recordings/rec1%00.webm",
		"/api/recordings/%00",
		"/api/recordings/rec1.webm",
		"/api/recordings/rec1%2ewebm",
		"/api/recordings/%252e%252e%252fsecret",
		"/api/recordings/C:%5Cwindows",
		"/api/recordings/link",
		"/api/recordings/link/chat",
		"/api/recordings/evil",
		"/api/recordings/evil/chat",
		"/api/recordings/evil/meta",
		"/api/recordings/passwd",
		"/api/recordings/passwd/chat",
		"/api/recordings/..%2fsecret/chat",
		"/api/recordings/..%2fsecret/meta",
		"/api/recordings/" + strings.Repeat("a", 65),
	}
	// Recordings whose metadata points outside may be deleted (only their
	// own files go), never served.
	deletable := map[string]bool{"/api/recordings/link": true, "/api/recordings/evil": true, "/api/recordings/passwd": true}
	for _, m := range []string{"GET", "HEAD", "DELETE"} {
		for _, p := range paths {
			r := do(t, srv, m, p, "")
			t.Logf("%s %s: %d %s", m, p, r.status, r.body)
			if strings.Contains(string(r.body), secretMarker) || strings.Contains(string(r.body), "root:") {
				t.Errorf("%s %s served a file outside the store: %d", m, p, r.status)
			}
			switch {
			case r.status >= 300 && r.status < 400:
				// The ServeMux redirects unclean paths (307); follow
				// once if the target is ours.
				loc := r.header.Get("Location")
				if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
					t.Errorf("%s %s: redirect to %q", m, p, loc)
				}
				if strings.HasPrefix(loc, "/api/recordings/") {
					if r2 := do(t, srv, m, loc, ""); r2.status < 400 || strings.Contains(string(r2.body), secretMarker) {
						t.Errorf("%s %s -> %s: %d", m, p, loc, r2.status)
					}
				}
			case m == "DELETE" && deletable[p] && r.status == http.StatusNoContent:
			case r.status < 400:
				t.Errorf("%s %s: %d %q", m, p, r.status, r.body)
			case m != "HEAD":
				r.jsonError(t)
			}
		}
	}
	if b, err := os.ReadFile(secretPath); err != nil || string(b) != secretMarker {
		t.Errorf("the file outside was touched: %v", err)
	}
	if !e.exists("rec1.webm") {
		t.Error("rec1 deleted through a crafted path")
	}
}

func TestHTTPAuth(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("rec1", "r", t0, time.Minute), 10, "")
	ctrl := &fakeCtrl{ids: []string{"x"}}
	var mu sync.Mutex
	var seen []string
	auth := func(r *http.Request) error {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			return nil
		case "Bearer viewer":
			return fmt.Errorf("viewer may not do that: %w", ErrForbidden)
		}
		return errors.New("no token")
	}
	srv := e.server(ctrl, auth)
	reqs := []struct{ method, path, body string }{
		{"GET", "/api/recordings", ""},
		{"GET", "/api/recordings/rec1", ""},
		{"GET", "/api/recordings/rec1/meta", ""},
		{"GET", "/api/recordings/rec1/chat", ""},
		{"DELETE", "/api/recordings/rec1", ""},
		{"POST", "/api/recordings", `{"room":"r"}`},
		{"POST", "/api/recordings/stop", `{"room":"r"}`},
		{"GET", "/api/recordings/..%2fx", ""},
		{"GET", "/api/nothing", ""},
		{"PUT", "/api/recordings", ""},
	}
	for _, q := range reqs {
		r := do(t, srv, q.method, q.path, q.body, "Content-Type", "application/json")
		if r.status != http.StatusUnauthorized || r.jsonError(t).Code != "unauthorized" || strings.Contains(string(r.body), "no token") {
			t.Errorf("%s %s without token: %d %s", q.method, q.path, r.status, r.body)
		}
		r = do(t, srv, q.method, q.path, q.body, "Content-Type", "application/json", "Authorization", "Bearer viewer")
		if r.status != http.StatusForbidden || r.jsonError(t).Code != "forbidden" {
			t.Errorf("%s %s forbidden: %d %s", q.method, q.path, r.status, r.body)
		}
	}
	if len(ctrl.Calls()) != 0 || !e.exists("rec1.webm") {
		t.Errorf("refused requests acted: %v", ctrl.Calls())
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 2*len(reqs) {
		t.Errorf("auth called %d times, want %d", n, 2*len(reqs))
	}
	if r := do(t, srv, "GET", "/api/recordings/rec1", "", "Authorization", "Bearer good"); r.status != 200 {
		t.Errorf("with token: %d", r.status)
	}
}

func TestHTTPControl(t *testing.T) {
	e := newEnv(t, Options{})
	ctrl := &fakeCtrl{ids: []string{"rec-a"}}
	srv := e.server(ctrl, nil)
	ct := []string{"Content-Type", "application/json"}

	r := do(t, srv, "POST", "/api/recordings", `{"room":"r1","participant":"alice"}`, ct...)
	var started struct {
		Room, Participant string
		Participants      []string
	}
	if err := json.Unmarshal(r.body, &started); r.status != http.StatusCreated || err != nil ||
		started.Room != "r1" || !slices.Equal(started.Participants, []string{"rec-a"}) {
		t.Errorf("start: %d %s %v", r.status, r.body, r.header)
	}
	ctrl.ids = []string{"a", "b"}
	r = do(t, srv, "POST", "/api/recordings", `{"room":"r1"}`, "Content-Type", "application/json; charset=utf-8")
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"participants":["a","b"]`) {
		t.Errorf("start room: %d %s", r.status, r.body)
	}
	if r := do(t, srv, "POST", "/api/recordings/stop", `{"room":"r1","participant":"alice"}`, ct...); r.status != http.StatusNoContent {
		t.Errorf("stop: %d %s", r.status, r.body)
	}
	if got, want := ctrl.Calls(), []string{"start r1/alice", "start r1/", "stop r1/alice"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}

	errs := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("room %q: %w", "r1", ErrUnknownRoom), 404, "unknown_room"},
		{fmt.Errorf("bob: %w", ErrUnknownParticipant), 404, "unknown_participant"},
		{fmt.Errorf("alice: %w", ErrAlreadyRecording), 409, "already_recording"},
		{fmt.Errorf("alice: %w", ErrNotRecording), 409, "not_recording"},
		{fmt.Errorf("shutting down: %w", ErrUnavailable), 503, "unavailable"},
		{fmt.Errorf("bad name: %w", ErrBadRequest), 400, "bad_request"},
		{errors.New("secret internal detail"), 500, "internal"},
	}
	for _, c := range errs {
		ctrl.err = c.err
		for _, p := range []string{"/api/recordings", "/api/recordings/stop"} {
			r := do(t, srv, "POST", p, `{"room":"r1"}`, ct...)
			if r.status != c.status || r.jsonError(t).Code != c.code {
				t.Errorf("%s with %v: %d %s", p, c.err, r.status, r.body)
			}
			if c.status == 500 && strings.Contains(string(r.body), "secret") {
				t.Errorf("internal error leaked: %s", r.body)
			}
		}
	}
	ctrl.err = nil
	n := len(ctrl.Calls())

	bad := []struct {
		body, contentType string
		status            int
		code              string
	}{
		{`{"room":`, "application/json", 400, "bad_request"},
		{`not json`, "application/json", 400, "bad_request"},
		{``, "application/json", 400, "bad_request"},
		{`[]`, "application/json", 400, "bad_request"},
		{`{"room":""}`, "application/json", 400, "bad_request"},
		{`{"participant":"x"}`, "application/json", 400, "bad_request"},
		{`{"room":"r","extra":1}`, "application/json", 400, "bad_request"},
		{`{"room":"r"}{"room":"s"}`, "application/json", 400, "bad_request"},
		{`{"room":5}`, "application/json", 400, "bad_request"},
		{`{"room":"` + strings.Repeat("x", 300) + `"}`, "application/json", 400, "bad_request"},
		{`{"room":"r"}`, "text/plain", 415, "unsupported_media_type"},
		{`{"room":"r"}`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{`{"room":"r"}`, "", 415, "unsupported_media_type"},
		{`{"room":"` + strings.Repeat("x", 70<<10) + `"}`, "application/json", 413, "too_large"},
	}
	for _, c := range bad {
		for _, p := range []string{"/api/recordings", "/api/recordings/stop"} {
			var hdr []string
			if c.contentType != "" {
				hdr = []string{"Content-Type", c.contentType}
			}
			r := do(t, srv, "POST", p, c.body, hdr...)
			if r.status != c.status || r.jsonError(t).Code != c.code {
				t.Errorf("%s %.40q (%s): %d %s, want %d %s", p, c.body, c.contentType, r.status, r.body, c.status, c.code)
			}
		}
	}
	if got := ctrl.Calls(); len(got) != n {
		t.Errorf("bad requests reached the controller: %v", got[n:])
	}

	// Without a controller.
	srv2 := httptest.NewServer(e.s.Handler(nil, nil))
	defer srv2.Close()
	if r := do(t, srv2, "POST", "/api/recordings", `{"room":"r"}`, ct...); r.status != http.StatusNotImplemented || r.jsonError(t).Code != "not_implemented" {
		t.Errorf("nil controller: %d %s", r.status, r.body)
	}
}

func TestHTTPRouting(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("rec1", "r", t0, time.Minute), 10, "")
	srv := e.server(&fakeCtrl{}, nil)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/api/recordings", 405, "GET, HEAD, POST"},
		{"DELETE", "/api/recordings", 405, "GET, HEAD, POST"},
		{"PATCH", "/api/recordings/rec1", 405, "GET, HEAD, DELETE"},
		{"POST", "/api/recordings/rec1", 405, "GET, HEAD, DELETE"},
		{"PUT", "/api/recordings/stop", 405, "POST"},
		{"POST", "/api/recordings/rec1/chat", 405, "GET, HEAD"},
		{"DELETE", "/api/recordings/rec1/meta", 405, "GET, HEAD"},
		{"GET", "/api/recordings/rec1/other", 404, ""},
		{"GET", "/api/recordings/", 404, ""},
		{"GET", "/", 404, ""},
	}
	for _, c := range cases {
		r := do(t, srv, c.method, c.path, "")
		if r.status != c.status || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.path, r.status, r.header.Get("Allow"), c.status, c.allow)
		}
		r.jsonError(t)
	}
}
