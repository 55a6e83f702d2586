package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// RoomDirectory finds rooms by name. The local implementation keeps them in
// memory; a multi-node implementation can put the same interface over a
// shared store.
type RoomDirectory interface {
	// GetOrCreate returns the open room with this name, creating it.
	GetOrCreate(name string) *Room
	// Get returns the open room with this name.
	Get(name string) (*Room, bool)
	// List returns every open room.
	List() []*Room
	// remove is called by a room when it closes.
	remove(*Room)
}

type localRooms struct {
	sfu   *SFU
	mu    sync.Mutex
	rooms map[string]*Room
}

func newLocalRooms(s *SFU) *localRooms { return &localRooms{sfu: s, rooms: map[string]*Room{}} }

func (d *localRooms) GetOrCreate(name string) *Room {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.rooms[name]; ok {
		return r
	}
	r := &Room{name: name, dir: d, log: d.sfu.log.With("room", name),
		participants: map[string]*Participant{}, tracks: map[string]*PublishedTrack{}, changed: make(chan struct{})}
	d.rooms[name] = r
	r.log.Info("room created")
	if f := d.sfu.cfg.OnRoomCreated; f != nil {
		f(r)
	}
	return r
}

func (d *localRooms) Get(name string) (*Room, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rooms[name]
	return r, ok
}

func (d *localRooms) List() []*Room {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*Room, 0, len(d.rooms))
	for _, r := range d.rooms {
		out = append(out, r)
	}
	return out
}

func (d *localRooms) remove(r *Room) {
	d.mu.Lock()
	if d.rooms[r.name] == r {
		delete(d.rooms, r.name)
	}
	d.mu.Unlock()
}

// Room is a set of participants that receive each other's tracks. It is
// created on first join and closed when the last participant leaves.
type Room struct {
	name string
	dir  RoomDirectory
	log  *slog.Logger

	mu           sync.Mutex
	closed       bool
	seq          int // join order
	participants map[string]*Participant
	tracks       map[string]*PublishedTrack
	changed      chan struct{}   // closed and replaced on every change
	observers    []TrackObserver // copy on write, under mu
	data         dataRouter
}

// Name is the room's name.
func (r *Room) Name() string { return r.name }

func (r *Room) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Room) addParticipant(p *Participant) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomClosed
	}
	r.seq++
	p.joinSeq = r.seq
	info := p.info(nil)
	if p.onJoined != nil {
		p.onJoined(info, r.participantsLocked())
	}
	for _, q := range r.participants {
		q.listener.ParticipantJoined(info)
	}
	for _, o := range r.observers {
		if po, ok := o.(ParticipantObserver); ok {
			po.ParticipantJoined(info)
		}
	}
	r.participants[p.id] = p
	if d := p.data; d != nil {
		r.data.add(d)
	}
	if p.autoSubscribe {
		for _, t := range r.sortedTracksLocked() {
			p.subscribe(t)
		}
	}
	r.notifyLocked()
	p.log.Info("participant joined")
	return nil
}

// removeParticipant takes p out of the room with all its tracks and
// subscriptions, and closes the room when it is empty.
func (r *Room) removeParticipant(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	r.data.remove(p.id)
	for id, t := range r.tracks {
		if t.info.ParticipantID == p.id {
			r.unpublishLocked(t)
			delete(r.tracks, id)
		}
	}
	info := p.info(nil)
	for _, q := range r.participants {
		q.listener.ParticipantLeft(info)
	}
	for _, o := range r.observers {
		if po, ok := o.(ParticipantObserver); ok {
			po.ParticipantLeft(info)
		}
	}
	empty := len(r.participants) == 0
	if empty {
		r.closed = true
		for _, o := range r.observers {
			o.RoomClosed()
		}
		r.observers = nil
	}
	r.notifyLocked()
	r.mu.Unlock()
	p.log.Info("participant left")
	if empty {
		r.dir.remove(r)
		r.log.Info("room closed")
	}
}

func (r *Room) publish(t *PublishedTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.participants[t.info.ParticipantID] == nil {
		return
	}
	r.tracks[t.info.ID] = t
	info := t.Info()
	for _, o := range r.observers {
		o.TrackPublished(t)
	}
	for _, q := range r.participants {
		if q.id == info.ParticipantID {
			continue
		}
		q.listener.TrackPublished(info)
		if q.autoSubscribe {
			q.subscribe(t)
		}
	}
	r.notifyLocked()
}

func (r *Room) unpublish(t *PublishedTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracks[t.info.ID] != t {
		return
	}
	delete(r.tracks, t.info.ID)
	r.unpublishLocked(t)
	r.notifyLocked()
}

func (r *Room) unpublishLocked(t *PublishedTrack) {
	info := t.Info()
	for _, o := range r.observers {
		o.TrackUnpublished(t)
	}
	for _, q := range r.participants {
		if q.id == info.ParticipantID {
			continue
		}
		q.unsubscribe(t)
		q.listener.TrackUnpublished(info)
	}
}

func (r *Room) trackMuted(t *PublishedTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracks[t.info.ID] != t {
		return
	}
	info := t.Info()
	for _, q := range r.participants {
		if q.id != info.ParticipantID {
			q.listener.TrackMuted(info)
		}
	}
}

func (r *Room) sortedTracksLocked() []*PublishedTrack {
	out := make([]*PublishedTrack, 0, len(r.tracks))
	for _, t := range r.tracks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].info.ID < out[j].info.ID })
	return out
}

// Participants describes the room's members in join order, with their tracks.
func (r *Room) Participants() []ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.participantsLocked()
}

func (r *Room) participantsLocked() []ParticipantInfo {
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].joinSeq < ps[j].joinSeq })
	out := make([]ParticipantInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.info(r.tracksOfLocked(p.id)))
	}
	return out
}

func (r *Room) tracksOfLocked(id string) []TrackInfo {
	var out []TrackInfo
	for _, t := range r.sortedTracksLocked() {
		if t.info.ParticipantID == id {
			out = append(out, t.Info())
		}
	}
	return out
}

// Track returns a published track by ID.
func (r *Room) Track(id string) (*PublishedTrack, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tracks[id]
	return t, ok
}

// FindParticipant returns a participant by ID, or else the most recently
// joined participant with that display name.
func (r *Room) FindParticipant(idOrName string) (*Participant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.participants[idOrName]; ok {
		return p, true
	}
	var best *Participant
	for _, p := range r.participants {
		if p.name == idOrName && (best == nil || p.joinSeq > best.joinSeq) {
			best = p
		}
	}
	return best, best != nil
}

// WaitTracks waits until participant p has published all the tracks it
// negotiated, or ctx ends; it returns the tracks published by then.
func (r *Room) WaitTracks(ctx context.Context, p *Participant) []*PublishedTrack {
	for {
		r.mu.Lock()
		var ts []*PublishedTrack
		for _, t := range r.sortedTracksLocked() {
			if t.info.ParticipantID == p.id {
				ts = append(ts, t)
			}
		}
		ch := r.changed
		_, present := r.participants[p.id]
		r.mu.Unlock()
		want := int(p.expected.Load())
		if !present || (want > 0 && len(ts) >= want) {
			return ts
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ts
		}
	}
}

// Close removes every participant.
func (r *Room) Close() {
	r.mu.Lock()
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

// MuteTrack mutes (or unmutes) a published track for everyone, as an
// operator: its media stops being forwarded to subscribers and recorders,
// and the room is told it is muted. The publisher cannot unmute it.
func (r *Room) MuteTrack(trackID string, muted bool) error {
	t, ok := r.Track(trackID)
	if !ok {
		return fmt.Errorf("%w: %s", ErrTrackNotFound, trackID)
	}
	t.blocked.Store(muted)
	if t.muted.Swap(muted) != muted {
		r.trackMuted(t)
	}
	if !muted { // the subscribers resume at a keyframe
		for l := range MaxLayers {
			if u := t.Layer(l); u != nil {
				u.RequestKeyframe()
			}
		}
	}
	return nil
}
