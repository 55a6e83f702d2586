package sfu

import (
	"slices"
	"time"
)

// TrackObserver is told about a room's published tracks without being a
// participant: a recorder is one. Its methods are called with the room
// locked: they must not block and must not call back into the room (post
// to your own goroutine instead).
type TrackObserver interface {
	TrackPublished(*PublishedTrack)
	TrackUnpublished(*PublishedTrack)
	// RoomClosed: the last participant left; no more calls follow.
	RoomClosed()
}

// ParticipantObserver is a TrackObserver that is also told of
// participants joining and leaving (same rules: called with the room
// locked, must not block).
type ParticipantObserver interface {
	TrackObserver
	ParticipantJoined(ParticipantInfo)
	ParticipantLeft(ParticipantInfo)
}

// Observe registers o. It returns the tracks published now (o is told only
// of later changes) and a function that unregisters o; ErrRoomClosed when
// the room has closed.
func (r *Room) Observe(o TrackObserver) ([]*PublishedTrack, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, ErrRoomClosed
	}
	r.observers = append(slices.Clip(r.observers), o)
	cancel := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if i := slices.Index(r.observers, o); i >= 0 {
			r.observers = slices.Delete(slices.Clone(r.observers), i, i+1)
		}
	}
	return r.sortedTracksLocked(), cancel, nil
}

// Attach makes d, a down track bound outside a PeerConnection (a
// recorder's), receive t's packets: every layer, forwarded by the layer
// selection as for any subscriber (with no bandwidth estimate, the highest
// the publisher sends).
func (t *PublishedTrack) Attach(d *DownTrack) { t.attach(d) }

// Detach stops d receiving t's packets.
func (t *PublishedTrack) Detach(d *DownTrack) { t.detach(d) }

// AttachWithHistory is Attach, with d first handed the recent past the
// publisher's highest active layer still holds in its cache: for video,
// from its newest keyframe; for audio, what arrived at or after since (unix
// nanoseconds). It returns the arrival time of the first packet handed (0:
// none): attach video first, then audio with since set to that time, and a
// recording starts with audio and video aligned at the keyframe the
// publisher already sent.
func (t *PublishedTrack) AttachWithHistory(d *DownTrack, since int64) int64 {
	active := t.ActiveLayers(time.Now(), time.Second)
	top := -1
	for i, ok := range active {
		if ok {
			top = i
		}
	}
	t.mu.Lock()
	t.downs = append(t.downs, d)
	var layers [MaxLayers]*UpTrack
	for i := range t.layers {
		layers[i] = t.layers[i].Load()
	}
	t.mu.Unlock()
	var first int64
	for i, u := range layers { // no lock held: d may ask for keyframes
		switch {
		case u == nil:
		case i == top:
			first = u.AddDownTrackWithHistory(d, since)
		default:
			u.AddDownTrack(d)
		}
	}
	return first
}

// TopActiveLayer is the highest layer that received a packet within the
// last second (-1: none).
func (t *PublishedTrack) TopActiveLayer() int {
	top := -1
	for i, ok := range t.ActiveLayers(time.Now(), time.Second) {
		if ok {
			top = i
		}
	}
	return top
}
