package recorder

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
)

// roomSession records one room: all of it, or some of its participants. It
// observes the room's tracks (its observer methods only queue events) and
// its goroutine, run, starts and stops the recorders.
type roomSession struct {
	m    *Manager
	room *sfu.Room
	log  *slog.Logger

	mu      sync.Mutex
	whole   bool            // every participant, present and future
	wanted  map[string]bool // participant IDs
	events  []sessionEvent
	kick    chan struct{}
	ended   bool // the room closed or the session was stopped
	cancel  func()
	initial []*sfu.PublishedTrack
	who     []string // participants recorded (as last reported)

	done chan struct{} // closed when run returns
}

type sessionEvent struct {
	track     *sfu.PublishedTrack
	published bool
}

// participantFiles is one participant's recorder and its tracks (owned by
// run).
type participantFiles struct {
	rec    *ParticipantRecorder
	tracks map[string]*recordedTrack
}

func newRoomSession(m *Manager, r *sfu.Room) *roomSession {
	return &roomSession{m: m, room: r, log: m.log.With("room", r.Name()), wanted: map[string]bool{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// start observes the room; called before run.
func (s *roomSession) start() error {
	tracks, cancel, err := s.room.Observe(s)
	if err != nil {
		return err
	}
	s.initial, s.cancel = tracks, cancel
	return nil
}

// TrackPublished implements sfu.TrackObserver.
func (s *roomSession) TrackPublished(t *sfu.PublishedTrack) {
	s.post(sessionEvent{track: t, published: true})
}

// TrackUnpublished implements sfu.TrackObserver.
func (s *roomSession) TrackUnpublished(t *sfu.PublishedTrack) { s.post(sessionEvent{track: t}) }

// RoomClosed implements sfu.TrackObserver.
func (s *roomSession) RoomClosed() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
}

func (s *roomSession) post(e sessionEvent) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.poke()
}

func (s *roomSession) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// want adds a participant (pid empty: the whole room) and returns the
// participants that are now to be recorded.
func (s *roomSession) want(pid string) ([]string, error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, fmt.Errorf("recorder: room %q: %w", s.room.Name(), store.ErrUnknownRoom)
	}
	if (pid == "" && s.whole) || (pid != "" && (s.whole || s.wanted[pid])) {
		s.mu.Unlock()
		return nil, fmt.Errorf("recorder: room %q: %w", s.room.Name(), store.ErrAlreadyRecording)
	}
	if pid == "" {
		s.whole = true
	} else {
		s.wanted[pid] = true
	}
	s.mu.Unlock()
	s.poke()
	var ids []string
	for _, p := range s.room.Participants() {
		if pid == "" || p.ID == pid {
			ids = append(ids, p.ID)
		}
	}
	return ids, nil
}

// unwant removes a participant (pid empty: everybody); the session ends
// when nobody is left to record.
func (s *roomSession) unwant(pid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case pid == "" && (s.whole || len(s.wanted) > 0):
		s.whole, s.wanted = false, map[string]bool{}
	case pid != "" && s.wanted[pid]:
		delete(s.wanted, pid)

	case pid != "" && s.whole:
		return fmt.Errorf("recorder: room %q is recorded as a whole, stop the room: %w", s.room.Name(), store.ErrNotRecording)
	default:
		return fmt.Errorf("recorder: room %q: %w", s.room.Name(), store.ErrNotRecording)
	}
	if !s.whole && len(s.wanted) == 0 {
		s.ended = true
	}
	s.poke()
	return nil
}

// wants reports whether participant ID pid was asked for.
func (s *roomSession) wants(pid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted[pid]
}

// stop ends the session and waits for its files to be finished.
func (s *roomSession) stop() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
	<-s.done
}

// isEnded reports whether the session is finishing.
func (s *roomSession) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// recorded lists the participants being recorded.
func (s *roomSession) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.who)
}

// retargetInterval: how often recorded video follows the publisher's
// highest active layer.
const retargetInterval = time.Second

// run applies events until the session ends, then finishes every file.
func (s *roomSession) run() {
	defer close(s.done)
	defer s.m.forget(s)
	tick := time.NewTicker(retargetInterval)
	defer tick.Stop()
	tracks := map[string]*sfu.PublishedTrack{}
	for _, t := range s.initial {
		tracks[t.Info().ID] = t
	}
	s.initial = nil
	files := map[string]*participantFiles{}
	for {
		s.mu.Lock()
		events, ended := s.events, s.ended
		s.events = nil
		whole, wanted := s.whole, maps.Clone(s.wanted)
		s.mu.Unlock()
		for _, e := range events {
			id := e.track.Info().ID
			if e.published {
				tracks[id] = e.track
			} else if tracks[id] == e.track {
				delete(tracks, id)
			}
		}
		if ended {
			s.cancel()
			for pid, f := range files {
				s.closeFiles(pid, f)
			}
			s.report(nil)
			return
		}
		s.reconcile(tracks, files, func(pid string) bool { return whole || wanted[pid] })
		select {
		case <-s.kick:
		case <-tick.C:
			retarget(files)
		}
	}
}

// retarget points every recorded video at its publisher's highest active
// layer: a simulcast publisher may pause its top layer (congestion, CPU),
// and nothing else moves a recorder's down track.
func retarget(files map[string]*participantFiles) {
	for _, f := range files {
		for _, rt := range f.tracks {
			if rt.pt.Info().Kind != webrtc.RTPCodecTypeVideo {
				continue
			}
			if top := rt.pt.TopActiveLayer(); top >= 0 && top != rt.down.TargetLayer() {
				rt.down.SetTargetLayer(top, "recording")
			}
		}
	}
}

// reconcile records exactly the tracks of the wanted participants.
func (s *roomSession) reconcile(tracks map[string]*sfu.PublishedTrack, files map[string]*participantFiles, wanted func(string) bool) {
	// stop what is no longer published or wanted
	for pid, f := range files {
		for id, rt := range f.tracks {
			if tracks[id] != rt.pt || !wanted(pid) {
				rt.stop(f.rec)
				delete(f.tracks, id)
			}
		}
		if len(f.tracks) == 0 {
			s.closeFiles(pid, f)
			delete(files, pid)
		}
	}
	// start what is new: per participant, video first, so that audio
	// starts where the video's keyframe does (sorted by ID otherwise)
	ids := make([]string, 0, len(tracks))
	for id := range tracks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		va, vb := tracks[a].Info().Kind == webrtc.RTPCodecTypeVideo, tracks[b].Info().Kind == webrtc.RTPCodecTypeVideo
		if va != vb {
			if va {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	// add every new track to its recorder first, then feed them (video
	// first: audio starts where the video's keyframe does)
	var started []*recordedTrack
	for _, id := range ids {
		t := tracks[id]
		pid := t.Info().ParticipantID
		if !wanted(pid) {
			continue
		}
		f := files[pid]
		if f != nil && f.tracks[id] != nil {
			continue
		}
		if f == nil {
			name := ""
			if p, ok := s.room.FindParticipant(pid); ok {
				name = p.Name()
			}
			rec, err := New(Options{Dir: s.m.o.Dir, Room: s.room.Name(), Participant: pid, ParticipantName: name,
				Logger: s.log.With("participant", pid)})
			if err != nil {
				s.log.Error("recording not started", "participant", pid, "err", err)
				continue
			}
			f = &participantFiles{rec: rec, tracks: map[string]*recordedTrack{}}
			files[pid] = f
			s.log.Info("recording participant", "participant", pid)
		}
		rt, err := prepareTrack(f.rec, t, &s.m.drops, s.log.With("participant", pid, "track", id))
		if err != nil {
			s.log.Warn("track not recorded", "participant", pid, "track", id, "err", err)
			continue
		}
		f.tracks[id] = rt
		started = append(started, rt)
	}
	since := map[string]int64{} // per participant: where its video started
	now := time.Now().UnixNano()
	for _, rt := range started { // in ids order: video first
		info := rt.pt.Info()
		from, ok := since[info.ParticipantID]
		if !ok {
			from = now
		}
		first := rt.start(from)
		if info.Kind == webrtc.RTPCodecTypeVideo && first > 0 && (!ok || first < from) {
			since[info.ParticipantID] = first
		}
	}
	var who []string
	for pid := range files {
		who = append(who, pid)
	}
	slices.Sort(who)
	s.report(who)
}

// report tells the manager's listener when the recorded set changes.
func (s *roomSession) report(who []string) {
	s.mu.Lock()
	same := slices.Equal(s.who, who)
	s.who = who
	s.mu.Unlock()
	if !same {
		s.m.changed(s.room.Name(), who)
	}
}

// closeFiles stops a participant's tracks and finishes its file.
func (s *roomSession) closeFiles(pid string, f *participantFiles) {
	for id, rt := range f.tracks {
		rt.stop(f.rec)
		delete(f.tracks, id)
	}
	if err := f.rec.Close(); err != nil {
		s.log.Error("recording failed", "participant", pid, "recordings", f.rec.Recordings(), "err", err)
		return
	}
	s.log.Info("recording finished", "participant", pid, "recordings", f.rec.Recordings())
}
