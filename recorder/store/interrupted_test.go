package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMarkInterrupted(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for _, m := range []Meta{
		{ID: "rec_a", Room: "r", State: StateRecording, Start: start, File: "rec_a.webm"},
		{ID: "rec_b", Room: "r", State: StateFinished, Start: start, End: start.Add(time.Minute), File: "rec_b.webm"},
	} {
		if err := os.WriteFile(filepath.Join(dir, m.File), []byte("media"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := WriteMeta(dir, m); err != nil {
			t.Fatal(err)
		}
	}
	written := start.Add(90 * time.Second)
	if err := os.Chtimes(filepath.Join(dir, "rec_a.webm"), written, written); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	marked, err := s.MarkInterrupted()
	if err != nil || len(marked) != 1 || marked[0] != "rec_a" {
		t.Fatalf("marked %v, %v", marked, err)
	}
	a, _ := ReadMeta(dir, "rec_a")
	if a.State != StateFailed || a.Error == "" || !a.End.Equal(written) {
		t.Fatalf("rec_a: %+v", a)
	}
	if b, _ := ReadMeta(dir, "rec_b"); b.State != StateFinished {
		t.Fatalf("rec_b changed: %+v", b)
	}
	if err := s.Delete("rec_a"); err != nil {
		t.Fatalf("an interrupted recording cannot be deleted: %v", err)
	}
}
