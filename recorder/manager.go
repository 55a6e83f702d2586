package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
)

// Rooms finds the SFU's open rooms (sfu.RoomDirectory satisfies it).
type Rooms interface {
	Get(name string) (*sfu.Room, bool)
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Dir    string // storage folder (it must exist)
	Rooms  Rooms
	Logger *slog.Logger
	// OnChange, if set, is called (from the manager's goroutines, never
	// with its lock held) when a room starts or stops being recorded, so
	// that its participants can be told; participants lists who is
	// recorded (empty: nobody any more).
	OnChange func(room string, participants []string)
}

// Manager records rooms and participants: it watches a room's tracks
// (sfu.Room.Observe), gives every recorded track a down track bound to a
// TrackRecorder, and writes one file per participant. It implements
// store.Controller for the HTTP API.
type Manager struct {
	o   ManagerOptions
	log *slog.Logger

	drops atomic.Uint64 // packets dropped by every track recorder so far

	mu       sync.Mutex
	sessions map[string]*roomSession // by room
	closed   bool
	wg       sync.WaitGroup
}

// NewManager returns a Manager.
func NewManager(o ManagerOptions) *Manager {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Manager{o: o, log: o.Logger, sessions: map[string]*roomSession{}}
}

var _ store.Controller = (*Manager)(nil)

// StartRecording records a whole room (participant empty: every present and
// future participant) or one participant (by ID or name). It returns the
// IDs of the participants recorded now. Errors wrap store.ErrUnknownRoom,
// store.ErrUnknownParticipant or store.ErrAlreadyRecording.
func (m *Manager) StartRecording(ctx context.Context, room, participant string) ([]string, error) {
	r, ok := m.o.Rooms.Get(room)
	if !ok {
		return nil, fmt.Errorf("recorder: room %q: %w", room, store.ErrUnknownRoom)
	}
	var pid string
	if participant != "" {
		p, ok := r.FindParticipant(participant)
		if !ok {
			return nil, fmt.Errorf("recorder: participant %q in room %q: %w", participant, room, store.ErrUnknownParticipant)
		}
		pid = p.ID()
	}
	m.mu.Lock()
	for {
		if m.closed {
			m.mu.Unlock()
			return nil, fmt.Errorf("recorder: shutting down: %w (%w)", store.ErrUnavailable, ErrClosed)
		}
		s := m.sessions[room]
		if s == nil || !s.isEnded() {
			break
		}
		m.mu.Unlock() // a session that is finishing: wait for it
		select {
		case <-s.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("recorder: room %q: %w", room, ctx.Err())
		}
		m.mu.Lock()
	}
	s := m.sessions[room]
	if s == nil {
		s = newRoomSession(m, r)
		if err := s.start(); err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("recorder: room %q: %w", room, store.ErrUnknownRoom)
		}
		m.sessions[room] = s
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			s.run() // forgets s before it reports done
		}()
	}
	m.mu.Unlock()
	ids, err := s.want(pid)
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// StopRecording stops recording a room (participant empty) or one
// participant; errors wrap store.ErrUnknownRoom, store.ErrUnknownParticipant
// or store.ErrNotRecording.
func (m *Manager) StopRecording(_ context.Context, room, participant string) error {
	m.mu.Lock()
	s := m.sessions[room]
	m.mu.Unlock()
	if s == nil {
		if _, ok := m.o.Rooms.Get(room); !ok {
			return fmt.Errorf("recorder: room %q: %w", room, store.ErrUnknownRoom)
		}
		return fmt.Errorf("recorder: room %q: %w", room, store.ErrNotRecording)
	}
	pid := participant
	if participant != "" {
		if p, ok := s.room.FindParticipant(participant); ok {
			pid = p.ID()
		} else if !s.wants(participant) { // a participant who left can still be unwanted by ID
			return fmt.Errorf("recorder: participant %q in room %q: %w", participant, room, store.ErrUnknownParticipant)
		}
	}
	return s.unwant(pid)
}

// Recording reports who is being recorded in room (nil: nobody).
func (m *Manager) Recording(room string) []string {
	m.mu.Lock()
	s := m.sessions[room]
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.recorded()
}

// Close stops every recording and waits until the files are finished (for a
// clean shutdown). Later starts fail with ErrClosed.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	ss := make([]*roomSession, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	for _, s := range ss {
		s.stop()
	}
	m.wg.Wait()
}

// forget removes s from the sessions once it has ended.
func (m *Manager) forget(s *roomSession) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.room.Name()] == s {
		delete(m.sessions, s.room.Name())
	}
}

func (m *Manager) changed(room string, who []string) {
	if m.o.OnChange != nil {
		m.o.OnChange(room, who)
	}
}

// recordedTrack is one published track being recorded.
type recordedTrack struct {
	pt   *sfu.PublishedTrack
	down *sfu.DownTrack
	live atomic.Pointer[sfu.DownTrack] // down, once it is fed (keyframe requests go to it)
	tr   *TrackRecorder
}

// recordingCodec is the codec a recorder receives a published track as:
// Opus for RED audio (the down track unwraps it), else the track's own.
func recordingCodec(c webrtc.RTPCodecParameters) webrtc.RTPCodecCapability {
	if strings.EqualFold(c.MimeType, sfu.MimeRED) {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	}
	return c.RTPCodecCapability
}

// prepareTrack adds t to rec (so that the file's header waits for it)
// without feeding it yet: a participant's tracks are all added before any
// is started, or the header could be written with only the first one and
// the others would start a new part.
func prepareTrack(rec *ParticipantRecorder, t *sfu.PublishedTrack, drops *atomic.Uint64, log *slog.Logger) (*recordedTrack, error) {
	info := t.Info()
	rt := &recordedTrack{pt: t}
	pli := []rtcp.Packet{&rtcp.PictureLossIndication{}}
	tr, err := rec.AddTrack(TrackOptions{ID: info.ID, Codec: recordingCodec(t.Codec()), Drops: drops, RequestKeyframe: func() {
		if d := rt.live.Load(); d != nil {
			d.HandleRTCP(pli) // coalesced per layer by the up track
		}
	}})
	if err != nil {
		return nil, err
	}
	rt.tr = tr
	rt.down = sfu.NewDownTrack(t, sfu.DownTrackOptions{Logger: log})
	if _, err := rt.down.Bind(tr.BindContext()); err != nil {
		rt.down.Close()
		rec.RemoveTrack(tr)
		return nil, err
	}
	return rt, nil
}

// start feeds the track, with what the publisher sent since since (unix
// nanoseconds; see sfu.PublishedTrack.AttachWithHistory). It returns the
// arrival time of the first packet it starts with (0: none yet).
func (r *recordedTrack) start(since int64) int64 {
	r.live.Store(r.down)
	first := r.pt.AttachWithHistory(r.down, since)
	if first == 0 && r.pt.Info().Kind == webrtc.RTPCodecTypeVideo {
		r.down.HandleRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{}}) // nothing to start with
	}
	return first
}

func (r *recordedTrack) stop(rec *ParticipantRecorder) {
	r.pt.Detach(r.down)
	r.down.Close()
	rec.RemoveTrack(r.tr)
}
