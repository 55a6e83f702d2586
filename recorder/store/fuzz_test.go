package store

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzValidID checks ValidID against its specification and that whatever
// it accepts names files inside the storage folder, and that the store
// refuses whatever it rejects before touching the file system.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"rec1", "", "..", "../x", "a/b", `a\b`, "a\x00", "%2e%2e", "é", "A-b_9",
		strings.Repeat("x", 64), strings.Repeat("x", 65)} {
		f.Add(s)
	}
	spec := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	s, err := Open(f.TempDir(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ok := ValidID(id)
		if ok != spec.MatchString(id) {
			t.Fatalf("ValidID(%q) = %v, the pattern says otherwise", id, ok)
		}
		if !ok {
			if _, err := s.Get(id); !errors.Is(err, ErrBadID) {
				t.Fatalf("Get(%q) = %v", id, err)
			}
			if err := s.Delete(id); !errors.Is(err, ErrBadID) {
				t.Fatalf("Delete(%q) = %v", id, err)
			}
			if d, err := s.Open(id); !errors.Is(err, ErrBadID) {
				if d != nil {
					d.Close()
				}
				t.Fatalf("Open(%q) = %v", id, err)
			}
			return
		}
		for _, name := range []string{id + metaSuffix, id + ".webm", id + chatSuffix} {
			p, err := s.path(name)
			if err != nil {
				t.Fatalf("path(%q): %v", name, err)
			}
			if filepath.Dir(p) != s.Dir() {
				t.Fatalf("path(%q) = %q, outside %q", name, p, s.Dir())
			}
		}
		if !mediaFileOK(id, id+".webm") || mediaFileOK(id, "../"+id+".webm") || !chatFileOK(id, id+chatSuffix) {
			t.Fatalf("file name checks wrong for %q", id)
		}
	})
}

// FuzzHandlerPath sends arbitrary paths to the API: it must never panic,
// never serve the file outside the store, and answer every error in JSON.
func FuzzHandlerPath(f *testing.F) {
	for _, s := range []string{"rec1", "rec1/chat", "rec1/meta", "..%2fsecret.webm", "%2e%2e", "..\\secret",
		"link", "evil", "evil/chat", "a%00b", "%2fetc%2fpasswd", "", "stop", "rec1/", "//x", "?room=r"} {
		f.Add("GET", s)
	}
	f.Add("HEAD", "rec1")
	f.Add("DELETE", "evil")
	f.Add("POST", "stop")
	parent := f.TempDir()
	dir := filepath.Join(parent, "rec")
	if err := os.WriteFile(filepath.Join(parent, "secret.webm"), []byte(secretMarker), 0o600); err != nil {
		f.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	m := finished("rec1", "r", t0, time.Minute)
	if err := os.WriteFile(filepath.Join(dir, "rec1.webm"), []byte("media"), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := WriteMeta(dir, m); err != nil {
		f.Fatal(err)
	}
	_ = os.Symlink(filepath.Join(parent, "secret.webm"), filepath.Join(dir, "link.webm"))
	if err := WriteMeta(dir, finished("link", "r", t0, time.Minute)); err != nil {
		f.Fatal(err)
	}
	evil := finished("evil", "r", t0, time.Minute)
	evil.File, evil.Chat = "../secret.webm", "../secret.webm"
	if err := WriteMeta(dir, evil); err != nil {
		f.Fatal(err)
	}
	h := s.Handler(&fakeCtrl{}, nil)
	f.Fuzz(func(t *testing.T, method, path string) {
		switch method {
		case "GET", "HEAD":
		default:
			// Deleting would change the store under the other inputs.
			method = "GET"
		}
		req, err := http.NewRequest(method, "http://chorus.test/api/recordings/"+path, nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		body, _ := io.ReadAll(res.Body)
		if strings.Contains(string(body), secretMarker) {
			t.Fatalf("%s %q served the file outside the store", method, path)
		}
		if res.StatusCode >= 400 && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %q: %d with Content-Type %q", method, path, res.StatusCode, res.Header.Get("Content-Type"))
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
