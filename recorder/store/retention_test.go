package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestSweepByAge(t *testing.T) {
	e := newEnv(t, Options{MaxAge: 24 * time.Hour})
	e.add(finished("old", "r", t0.Add(-50*time.Hour), time.Hour), 10, "")        // ended 49 h ago
	e.add(finished("longrun", "r", t0.Add(-40*time.Hour), 20*time.Hour), 10, "") // started 40 h ago, ended 20 h ago
	e.add(finished("recent", "r", t0.Add(-2*time.Hour), time.Hour), 10, "")      // ended 1 h ago
	e.add(finished("edge", "r", t0.Add(-25*time.Hour), time.Hour), 10, "")       // ended exactly MaxAge ago
	e.add(recording("live", "r", t0.Add(-100*time.Hour)), 10, "")                // in progress for 100 h
	failed := finished("failed", "r", t0.Add(-48*time.Hour), 0)                  // failed, no end
	failed.End, failed.State = time.Time{}, StateFailed
	e.add(failed, 10, "")
	failedNew := finished("failednew", "r", t0.Add(-time.Hour), 0)
	failedNew.End, failedNew.State = time.Time{}, StateFailed
	e.add(failedNew, 10, "")
	if err := os.WriteFile(filepath.Join(e.dir, "corrupt.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := e.s.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(removed), []string{"failed", "old"}; !slices.Equal(got, want) {
		t.Fatalf("removed %v, want %v", got, want)
	}
	for _, name := range []string{"old.webm", "old.json", "failed.webm", "failed.json"} {
		if e.exists(name) {
			t.Errorf("%s not deleted", name)
		}
	}
	for _, name := range []string{"live.json", "live.mkv", "corrupt.json", "edge.json", "longrun.json"} {
		if !e.exists(name) {
			t.Errorf("%s deleted", name)
		}
	}

	e.clock.Add(12 * time.Hour)
	removed, err = e.s.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(removed), []string{"edge", "longrun"}; !slices.Equal(got, want) {
		t.Fatalf("after 12 h: removed %v, want %v", got, want)
	}
	e.clock.Add(1000 * time.Hour)
	removed, _ = e.s.Sweep()
	if got, want := sorted(removed), []string{"failednew", "recent"}; !slices.Equal(got, want) {
		t.Fatalf("after 1000 h: removed %v, want %v", got, want)
	}
	list, _ := e.s.List()
	if got := ids(list); !slices.Equal(got, []string{"live"}) {
		t.Errorf("left %v, want only the recording in progress", got)
	}
}

func TestSweepBySize(t *testing.T) {
	e := newEnv(t, Options{MaxTotalBytes: 700})
	e.add(recording("live", "r", t0.Add(-10*time.Hour)), 400, "") // oldest, in progress
	a := finished("a", "r", t0.Add(-5*time.Hour), time.Hour)
	a.Chat = "a" + chatSuffix
	e.add(a, 250, string(make([]byte, 50))) // 300 bytes with its chat
	e.add(finished("b", "r", t0.Add(-4*time.Hour), time.Hour), 200, "")
	e.add(finished("c", "r", t0.Add(-3*time.Hour), time.Hour), 100, "")
	// 1000 bytes: deleting a (the oldest finished) is enough.
	removed, err := e.s.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"a"}) || e.exists("a"+chatSuffix) {
		t.Fatalf("removed %v, want [a] with its chat", removed)
	}
	if removed, _ := e.s.Sweep(); len(removed) != 0 {
		t.Fatalf("second sweep removed %v; 700 bytes is within the limit", removed)
	}

	// The recording in progress alone exceeds the limit: everything else
	// goes, oldest first, and it stays.
	s2, err := Open(e.dir, Options{MaxTotalBytes: 300, Now: e.clock.Now, Logger: e.s.log})
	if err != nil {
		t.Fatal(err)
	}
	removed, err = s2.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"b", "c"}) {
		t.Fatalf("removed %v, want [b c] in that order", removed)
	}
	if !e.exists("live.mkv") || !e.exists("live.json") {
		t.Error("the recording in progress was deleted")
	}
}

func TestSweepNoPolicy(t *testing.T) {
	e := newEnv(t, Options{})
	e.add(finished("ancient", "r", t0.Add(-10000*time.Hour), time.Hour), 1<<16, "")
	if removed, err := e.s.Sweep(); err != nil || len(removed) != 0 || !e.exists("ancient.webm") {
		t.Errorf("Sweep without limits = %v, %v", removed, err)
	}
}

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	type result struct {
		removed []string
		err     error
	}
	results := make(chan result)
	e := newEnv(t, Options{MaxAge: time.Hour, OnSweep: func(removed []string, err error) {
		results <- result{removed, err}
	}})
	e.add(finished("old", "r", t0.Add(-3*time.Hour), time.Minute), 10, "")
	e.add(finished("young", "r", t0.Add(-30*time.Minute), time.Minute), 10, "")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.s.Run(ctx, time.Millisecond)
		close(done)
	}()
	// The first sweep runs at once.
	if r := <-results; r.err != nil || !slices.Equal(r.removed, []string{"old"}) {
		t.Fatalf("first sweep: %v, %v", r.removed, r.err)
	}
	// Later ones follow the ticker; the clock decides what they delete.
	e.clock.Add(time.Hour)
	for {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.removed) > 0 {
			if !slices.Equal(r.removed, []string{"young"}) {
				t.Fatalf("removed %v", r.removed)
			}
			break
		}
	}
	cancel()
	// Run may be delivering one more result.
	for {
		select {
		case <-results:
			continue
		case <-done:
		}
		break
	}

	// A done context stops Run before any sweep.
	swept := false
	s2, err := Open(e.dir, Options{MaxAge: time.Hour, OnSweep: func([]string, error) { swept = true }})
	if err != nil {
		t.Fatal(err)
	}
	s2.Run(ctx, time.Hour)
	if swept {
		t.Error("Run swept with a done context")
	}
}
