package store

import (
	"errors"
	"fmt"
)

// MarkInterrupted marks every recording still in the "recording" state as
// failed ("interrupted"), with the time its media file was last written as
// its end. Call it at startup, before anything records: such recordings
// were cut by a crash or a kill, their files play up to their last
// flushed seconds, and they can now be listed as ended, deleted and swept.
func (s *Store) MarkInterrupted() ([]string, error) {
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	metas, err := s.loadAll(root)
	if err != nil {
		return nil, err
	}
	var marked []string
	var errs error
	for _, m := range metas {
		if m.State != StateRecording {
			continue
		}
		m.State, m.Error = StateFailed, "interrupted: the server stopped while recording"
		if fi, err := root.Lstat(m.File); err == nil && fi.Mode().IsRegular() {
			m.End = fi.ModTime()
		} else {
			m.End = m.Start
		}
		if err := WriteMeta(s.dir, m); err != nil {
			errs = errors.Join(errs, fmt.Errorf("store: mark %s interrupted: %w", m.ID, err))
			continue
		}
		marked = append(marked, m.ID)
	}
	return marked, errs
}
