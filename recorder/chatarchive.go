package recorder

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chorus-sfu/chorus/recorder/store"
)

// ChatArchive writes a room's chat while the room is recorded: one JSON
// line per message in <id>.chat.jsonl, with metadata of its own (no media
// file), so that the recordings API lists and serves it next to the
// participants' media files. A room's archive starts with its first message
// while recorded and ends with End (the recording stopped) or Close.
type ChatArchive struct {
	dir string
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	rooms map[string]*chatFile
}

type chatFile struct {
	meta store.Meta
	f    *os.File
}

// NewChatArchive returns an archive writing into dir (the recordings
// folder).
func NewChatArchive(dir string, log *slog.Logger) *ChatArchive {
	if log == nil {
		log = slog.Default()
	}
	return &ChatArchive{dir: dir, log: log, now: time.Now, rooms: map[string]*chatFile{}}
}

// Append writes v (a chat message) as one JSON line to room's archive,
// starting the archive if needed. Writes are small and appended at once;
// the caller's goroutine waits for the disk.
func (a *ChatArchive) Append(room string, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("recorder: encode chat message: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cf := a.rooms[room]
	if cf == nil {
		id := newID()
		m := store.Meta{ID: id, Room: room, Start: a.now(), State: store.StateRecording, File: "",
			Chat: id + ".chat.jsonl"}
		f, err := os.OpenFile(filepath.Join(a.dir, m.Chat), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("recorder: create chat archive: %w", err)
		}
		if err := store.WriteMeta(a.dir, m); err != nil {
			_ = f.Close()
			return err
		}
		cf = &chatFile{meta: m, f: f}
		a.rooms[room] = cf
		a.log.Info("chat archive started", "room", room, "id", id)
	}
	if _, err := cf.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("recorder: write chat archive: %w", err)
	}
	return nil
}

// End finishes room's archive, if it has one.
func (a *ChatArchive) End(room string) {
	a.mu.Lock()
	cf := a.rooms[room]
	delete(a.rooms, room)
	a.mu.Unlock()
	if cf != nil {
		a.finish(cf)
	}
}

// Close finishes every archive.
func (a *ChatArchive) Close() {
	a.mu.Lock()
	rooms := a.rooms
	a.rooms = map[string]*chatFile{}
	a.mu.Unlock()
	for _, cf := range rooms {
		a.finish(cf)
	}
}

func (a *ChatArchive) finish(cf *chatFile) {
	cf.meta.End, cf.meta.State = a.now(), store.StateFinished
	if err := cf.f.Close(); err != nil {
		cf.meta.State, cf.meta.Error = store.StateFailed, err.Error()
	}
	if err := store.WriteMeta(a.dir, cf.meta); err != nil {
		a.log.Warn("chat archive metadata not written", "id", cf.meta.ID, "err", err)
	}
}
