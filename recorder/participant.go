package recorder

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// Options configure a ParticipantRecorder.
type Options struct {
	// Dir is the storage directory; it must exist. Files are named after
	// generated recording IDs only.
	Dir string
	// Room, Participant and ParticipantName only go into the metadata.
	Room            string
	Participant     string
	ParticipantName string

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock (default time.Now). Arrival times, timeouts and the
	// metadata times come from it.
	Now func() time.Time
	// QueueSize is the number of packets queued per track before packets
	// are dropped (default 512).
	QueueSize int
	// JitterDelay is how long a missing packet is waited for before it is
	// declared lost (default 150 ms).
	JitterDelay time.Duration
	// StartWait is how long the file header waits, after the first track
	// has media, for the other tracks to have media and sender reports
	// (default 2 s). Media is buffered meanwhile.
	StartWait time.Duration

	// test hooks
	createFile func(path string) (mediaFile, error)
	onCluster  func(end int64)
	onPart     func(id string)
	onStep     func()
}

// mediaFile is where a part's media goes: an *os.File, or a test double.
type mediaFile interface {
	io.Writer
	io.Closer
}

// stallTimeout: a track that queued no frame for this long is not waited
// for when frames of the tracks are interleaved into the file.
const stallTimeout = 500 * time.Millisecond

// ParticipantRecorder writes all the tracks of one participant into one
// WebM file (Matroska .mkv when a track is H264), with a JSON metadata
// file next to it (package store). One goroutine per participant does all
// the work: reordering, depacketizing, timing and writing.
//
// The Matroska header lists the tracks before any media, so tracks are
// best added right after New: the header is written once every added
// track has media (video: a keyframe) and a sender report, or StartWait
// after the first media, whichever comes first. A track whose media starts
// later ends the current file and starts a new part (a new recording ID
// holding all tracks), unless it takes the place of a removed track of the
// same codec, which it then continues in the same file.
type ParticipantRecorder struct {
	o    Options
	log  *slog.Logger
	wake chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu     sync.Mutex
	tracks []*TrackRecorder // copy on write
	closed bool
	ids    []string // recording IDs of the parts
	err    error    // set by the goroutine before it ends

	// owned by the goroutine
	part       *part
	failed     bool
	ntpOffset  time.Duration
	ntpSet     bool
	firstReady time.Time
}

// New starts a participant recorder. Nothing is written before the first
// media arrives.
func New(o Options) (*ParticipantRecorder, error) {
	if st, err := os.Stat(o.Dir); err != nil {
		return nil, fmt.Errorf("recorder: storage directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("recorder: storage directory %s: not a directory", o.Dir)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 512
	}
	if o.JitterDelay <= 0 {
		o.JitterDelay = 150 * time.Millisecond
	}
	if o.StartWait <= 0 {
		o.StartWait = 2 * time.Second
	}
	if o.createFile == nil {
		o.createFile = func(path string) (mediaFile, error) {
			return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
	}
	p := &ParticipantRecorder{
		o: o, wake: make(chan struct{}, 1), done: make(chan struct{}),
		log: o.Logger.With("room", o.Room, "participant", o.Participant),
	}
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// AddTrack adds a track to record and returns the writer the SFU feeds.
func (p *ParticipantRecorder) AddTrack(o TrackOptions) (*TrackRecorder, error) {
	c, err := parseCodec(o.Codec.MimeType)
	if err != nil {
		return nil, err
	}
	t := newTrack(p, c, o)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.tracks = append(slices.Clip(p.tracks), t)
	p.poke()
	return t, nil
}

// RemoveTrack stops recording t: what it queued is still written, further
// writes fail with ErrClosed.
func (p *ParticipantRecorder) RemoveTrack(t *TrackRecorder) {
	t.closed.Store(true)
	t.removed.Store(true)
	p.poke()
}

// Recordings returns the IDs of the files written so far, oldest first.
func (p *ParticipantRecorder) Recordings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

// Close writes what is queued, finishes the file and its metadata, and
// returns once the goroutine has ended. It returns the first error that
// stopped the recording, if any. Close may be called more than once.
func (p *ParticipantRecorder) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		for _, t := range p.tracks {
			t.closed.Store(true)
		}
		p.mu.Unlock()
		close(p.done)
	})
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// poke wakes the goroutine without blocking.
func (p *ParticipantRecorder) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *ParticipantRecorder) run() {
	defer p.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.wake:
		case <-tick.C:
		case <-p.done:
			p.step(p.o.Now(), true)
			return
		}
		p.step(p.o.Now(), false)
	}
}

func (p *ParticipantRecorder) snapshot() []*TrackRecorder {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tracks
}

// step does one round of work: drain the queues, write what can be
// written. final (on Close) releases and writes everything.
func (p *ParticipantRecorder) step(now time.Time, final bool) {
	tracks := p.snapshot()
	for _, t := range tracks {
		switch {
		case t.flushed:
		case final || t.removed.Load():
			t.finish(now)
			t.flushed = t.removed.Load()
		default:
			t.drain(now, false)
		}
		// after the packets that came before it; kept until the track has
		// packets, to relate the report to their arrival
		if t.clock.set {
			if sr, ok := t.takeSR(); ok {
				p.applySR(t, sr, now)
			}
		}
	}
	if p.failed {
		for _, t := range tracks {
			t.dropPending()
		}
	} else {
		p.arrange(now, tracks, final)
		p.interleave(now, final)
	}
	if p.part != nil && !p.failed && (final || now.Sub(p.part.lastWrite) >= clusterMaxMs*time.Millisecond) {
		if err := p.part.mkv.flushCluster(); err != nil {
			p.fail(err)
		}
	}
	p.forget(tracks)
	if final && p.part != nil {
		p.closePart(now)
	}
	if final && p.part == nil && len(p.Recordings()) == 0 {
		p.log.Info("recording closed without media")
	}
	if p.o.onStep != nil {
		p.o.onStep()
	}
}

// arrange writes the file header when it is time, attaches tracks that
// became ready to the file, or starts a new part when a track cannot be
// attached.
func (p *ParticipantRecorder) arrange(now time.Time, tracks []*TrackRecorder, final bool) {
	var ready []*TrackRecorder
	live, liveReady, withSR := 0, 0, 0
	for _, t := range tracks {
		removed := t.removed.Load()
		if !removed {
			live++
		}
		if !t.ready || removed && (t.head() == nil || p.part != nil && t.slot == nil) {
			continue
		}
		ready = append(ready, t)
		if !removed {
			liveReady++
		}
		if t.hasSR {
			withSR++
		}
	}
	if len(ready) == 0 {
		return
	}
	if p.part == nil {
		if p.firstReady.IsZero() {
			p.firstReady = now
		}
		if final || liveReady == live && withSR == len(ready) || now.Sub(p.firstReady) >= p.o.StartWait {
			p.openPart(now, ready, time.Time{})
		}
		return
	}
	var cut time.Time // capture time of the earliest frame of a track needing a new part
	for _, t := range ready {
		if t.slot != nil || t.head() == nil {
			continue
		}
		if s := p.part.freeSlot(t.codec); s != nil {
			if old := s.t; old != nil { // removed: write what it left first
				for old.head() != nil && !p.failed {
					p.writeFrame(old, old.popHead(), now)
				}
				old.slot = nil
			}
			s.t, t.slot, s.needKey = t, s, t.codec.video()
			continue
		}
		if w := t.clock.at(t.head().extTS); cut.IsZero() || w.Before(cut) {
			cut = w
		}
	}
	if !cut.IsZero() {
		// the old part takes the frames captured before the newcomer's
		// first, the new one the rest
		p.interleaveUntil(now, true, cut)
		last := p.part.lastWall
		p.closePart(now)
		p.openPart(now, ready, last)
	}
}

// interleave writes the queued frames of the file's tracks in capture
// order. A frame waits while another live track has nothing queued and
// may still produce an earlier frame, unless that track has stalled.
func (p *ParticipantRecorder) interleave(now time.Time, final bool) {
	p.interleaveUntil(now, final, time.Time{})
}

// interleaveUntil is interleave limited to frames captured before cut
// (unless cut is zero).
func (p *ParticipantRecorder) interleaveUntil(now time.Time, final bool, cut time.Time) {
	if p.part == nil {
		return
	}
	for !p.failed {
		var best *TrackRecorder
		var bestWall time.Time
		for _, s := range p.part.slots {
			if s.t == nil || s.t.head() == nil {
				continue
			}
			if w := s.t.clock.at(s.t.head().extTS); best == nil || w.Before(bestWall) {
				best, bestWall = s.t, w
			}
		}
		if best == nil || !cut.IsZero() && !bestWall.Before(cut) || !final && !p.mayWrite(best, bestWall, now) {
			return
		}
		p.writeFrame(best, best.popHead(), now)
	}
}

func (p *ParticipantRecorder) mayWrite(best *TrackRecorder, wall time.Time, now time.Time) bool {
	for _, s := range p.part.slots {
		u := s.t
		if u == nil || u == best || u.head() != nil || u.removed.Load() {
			continue
		}
		if !u.lastWall.Before(wall) || now.Sub(u.lastFrameAt) >= stallTimeout {
			continue
		}
		return false
	}
	return true
}

// forget drops the removed tracks that have nothing left to write.
func (p *ParticipantRecorder) forget(tracks []*TrackRecorder) {
	gone := 0
	for _, t := range tracks {
		if !t.flushed {
			continue
		}
		if t.slot == nil || p.failed {
			t.dropPending()
		}
		if t.head() != nil {
			continue
		}
		if t.slot != nil {
			t.slot.t, t.slot = nil, nil
		}
		gone++
	}
	if gone == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tracks = slices.DeleteFunc(slices.Clone(p.tracks), func(t *TrackRecorder) bool {
		return t.flushed && t.head() == nil && t.slot == nil
	})
}

// fail stops the recording after a write error: the metadata says so and
// everything further is discarded until Close.
func (p *ParticipantRecorder) fail(err error) {
	if p.failed {
		return
	}
	p.failed = true
	p.log.Error("recording failed", "err", err)
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	if p.part != nil {
		p.endPart(p.o.Now(), err)
	}
}
