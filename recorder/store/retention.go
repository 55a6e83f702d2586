package store

import (
	"context"
	"errors"
	"time"
)

// DefaultSweepInterval is the interval Run uses when given none.
const DefaultSweepInterval = 10 * time.Minute

// retentionTime is the time a recording's age is measured from: its end, or
// its start when it has no end.
func retentionTime(in Info) time.Time {
	if !in.End.IsZero() {
		return in.End
	}
	return in.Start
}

// Sweep applies the retention policy once. First it deletes the finished
// and failed recordings older than MaxAge (measured from their end, or from
// their start when they have none); then, while all recordings together
// take more than MaxTotalBytes, the oldest finished or failed ones. A
// recording in progress is never deleted, but its size counts. Recordings
// whose metadata cannot be read are left alone and not counted. It returns
// the IDs deleted, and the errors met on the way (it goes on after one).
func (s *Store) Sweep() (removed []string, err error) {
	if s.opts.MaxAge == 0 && s.opts.MaxTotalBytes == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	metas, err := s.loadAll(root)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var (
		errs  []error
		total int64
		kept  []Info
	)
	del := func(in Info, reason string) bool {
		if err := s.remove(root, in.ID); err != nil {
			errs = append(errs, err)
			return false
		}
		s.log.Info("store: retention deleted recording", "id", in.ID, "reason", reason,
			"size", in.Size, "end", retentionTime(in))
		removed = append(removed, in.ID)
		return true
	}
	for _, m := range metas {
		in := s.info(root, m)
		total += in.Size
		if in.State == StateRecording {
			continue
		}
		if s.opts.MaxAge > 0 && now.Sub(retentionTime(in)) > s.opts.MaxAge {
			if del(in, "age") {
				total -= in.Size
				continue
			}
		}
		kept = append(kept, in)
	}
	if s.opts.MaxTotalBytes > 0 && total > s.opts.MaxTotalBytes {
		sortOldestFirst(kept, retentionTime)
		for _, in := range kept {
			if total <= s.opts.MaxTotalBytes {
				break
			}
			if del(in, "size") {
				total -= in.Size
			}
		}
		if total > s.opts.MaxTotalBytes {
			s.log.Warn("store: recordings exceed the size limit after the sweep",
				"total", total, "limit", s.opts.MaxTotalBytes)
		}
	}
	return removed, errors.Join(errs...)
}

// Run calls Sweep at once and then every interval (DefaultSweepInterval if
// interval <= 0) until ctx is done. It blocks; errors are logged and passed
// to Options.OnSweep.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		removed, err := s.Sweep()
		if err != nil {
			s.log.Error("store: retention sweep", "err", err)
		}
		if s.opts.OnSweep != nil {
			s.opts.OnSweep(removed, err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
