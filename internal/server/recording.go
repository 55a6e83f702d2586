package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/chorus-sfu/chorus/recorder"
	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
)

// RecordingConfig configures server-side recording.
type RecordingConfig struct {
	// Dir is the storage folder (created if missing); empty: no recording
	// and no recordings API.
	Dir string
	// MaxAge and MaxBytes are the retention policy: finished recordings
	// older than MaxAge are deleted, then the oldest while the folder holds
	// more than MaxBytes (0: no limit).
	MaxAge   time.Duration
	MaxBytes int64
	// AutoRecord lists rooms recorded from their creation ("*": every room).
	AutoRecord []string
	// ClientRecording lets clients whose token has the record grant start
	// and stop recordings over the WebSocket. The recordings HTTP API needs
	// a token with the admin grant (see Config.Keys).
	ClientRecording bool
}

// recording is the server's recording side.
type recording struct {
	mgr    *recorder.Manager
	chat   *recorder.ChatArchive // the rooms' chat while they are recorded
	store  *store.Store
	cancel context.CancelFunc
	done   chan struct{}
}

// startRecording opens the store (marking recordings a crash left open as
// interrupted) and starts its retention sweeps.
func startRecording(cfg RecordingConfig, log *slog.Logger) (*recording, error) {
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("recordings folder: %w", err)
	}
	st, err := store.Open(cfg.Dir, store.Options{MaxAge: cfg.MaxAge, MaxTotalBytes: cfg.MaxBytes, Logger: log})
	if err != nil {
		return nil, err
	}
	if ids, err := st.MarkInterrupted(); err != nil {
		log.Warn("recordings left open by an earlier run", "err", err)
	} else if len(ids) > 0 {
		log.Warn("recordings left open by an earlier run marked interrupted", "ids", ids)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recording{store: st, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		st.Run(ctx, 0)
	}()
	return r, nil
}

// autoRecord returns the sfu hook that starts recording the rooms cfg
// names as they are created.
func autoRecord(cfg RecordingConfig, mgr func() *recorder.Manager, log *slog.Logger) func(*sfu.Room) {
	if len(cfg.AutoRecord) == 0 {
		return nil
	}
	return func(r *sfu.Room) {
		if !slices.Contains(cfg.AutoRecord, "*") && !slices.Contains(cfg.AutoRecord, r.Name()) {
			return
		}
		name := r.Name()
		go func() { // the hook runs with the room directory locked
			m := mgr()
			if m == nil {
				return
			}
			if _, err := m.StartRecording(context.Background(), name, ""); err != nil &&
				!errors.Is(err, store.ErrAlreadyRecording) {
				log.Warn("automatic recording not started", "room", name, "err", err)
			}
		}()
	}
}

// closeTimeout bounds how long shutdown waits for recordings to finish.
const closeTimeout = 15 * time.Second

// close finishes every recording (for at most closeTimeout) and stops the
// sweeps.
func (r *recording) close(log *slog.Logger) {
	if r.mgr != nil {
		done := make(chan struct{})
		go func() { r.mgr.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			log.Error("recordings not finished within the shutdown limit", "limit", closeTimeout)
		}
	}
	if r.chat != nil {
		r.chat.Close()
	}
	r.cancel()
	<-r.done
}
