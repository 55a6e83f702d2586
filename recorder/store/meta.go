// Package store keeps recordings on disk: each recording is a media file and
// a JSON metadata file next to it. It lists, serves and deletes them and
// applies a retention policy.
package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Recording states.
const (
	StateRecording = "recording" // still being written
	StateFinished  = "finished"  // closed cleanly
	StateFailed    = "failed"    // stopped by an error; the file may still play
)

// TrackMeta describes one track in a recording.
type TrackMeta struct {
	Kind  string `json:"kind"`  // "audio" or "video"
	Codec string `json:"codec"` // MIME type, e.g. "audio/opus"
	ID    string `json:"id,omitempty"`
}

// Meta is a recording's metadata, stored as <ID>.json in the storage folder.
// File names are relative to the storage folder and never contain a path
// separator.
type Meta struct {
	ID              string      `json:"id"`
	Room            string      `json:"room"`
	Participant     string      `json:"participant,omitempty"` // empty: a whole-room recording
	ParticipantName string      `json:"participantName,omitempty"`
	Tracks          []TrackMeta `json:"tracks"`
	Start           time.Time   `json:"start"`
	End             time.Time   `json:"end,omitzero"` // zero while recording
	State           string      `json:"state"`
	File            string      `json:"file"`           // media file name, e.g. "<ID>.webm"
	Chat            string      `json:"chat,omitempty"` // chat archive file name (JSON lines), if any
	Error           string      `json:"error,omitempty"`
}

// MetaName is the metadata file name of a recording.
func MetaName(id string) string { return id + ".json" }

// WriteMeta stores m in dir atomically (temporary file, then rename), so
// that a reader never sees half a file, even if the process is killed.
func WriteMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("store: encode metadata: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".meta-*")
	if err != nil {
		return fmt.Errorf("store: write metadata: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("store: write metadata: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("store: write metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, MetaName(m.ID))); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("store: write metadata: %w", err)
	}
	return nil
}

// ReadMeta loads the metadata of recording id from dir.
func ReadMeta(dir, id string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, MetaName(id)))
	if err != nil {
		return m, fmt.Errorf("store: read metadata: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("store: decode metadata %s: %w", id, err)
	}
	return m, nil
}
