package sfu

import "slices"

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
