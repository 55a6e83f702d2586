package recorder

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/chorus-sfu/chorus/recorder/store"
)

// part is one media file being written, with its metadata.
type part struct {
	id        string
	file      mediaFile
	mkv       *mkvWriter
	meta      store.Meta
	slots     []*slot
	zero      time.Time // capture time of the file's time 0
	lastWall  time.Time // capture time of the newest frame written
	lastWrite time.Time // when a frame was last written
}

// slot is a track of a file. A track feeds it; when the track is removed,
// a new track of the same codec may take its place.
type slot struct {
	num     int // Matroska track number
	codec   codec
	t       *TrackRecorder
	lastMs  int64 // timecode of the last block, -1 before the first
	needKey bool  // video: the next block must be a keyframe
}

// freeSlot returns a slot of codec c whose track is gone (or removed and
// drained), or nil.
func (pt *part) freeSlot(c codec) *slot {
	for _, s := range pt.slots {
		if s.codec == c && (s.t == nil || s.t.flushed) {
			return s
		}
	}
	return nil
}

// openPart starts a file with the given tracks. Time 0 of the file is the
// capture time of the earliest frame queued, or after if that is earlier
// (the end of the previous part, so that the next frames of the tracks
// continuing from it do not fall before 0).
func (p *ParticipantRecorder) openPart(now time.Time, ready []*TrackRecorder, after time.Time) {
	var tracks []*TrackRecorder
	zero := after
	webm := true
	for _, t := range ready {
		if t.removed.Load() && t.head() == nil {
			continue
		}
		tracks = append(tracks, t)
		if f := t.head(); f != nil {
			if w := t.clock.at(f.extTS); zero.IsZero() || w.Before(zero) {
				zero = w
			}
		}
		webm = webm && t.codec != codecH264
	}
	if len(tracks) == 0 {
		return
	}
	if zero.IsZero() {
		zero = now
	}
	id := newID()
	name := id + ".mkv"
	if webm {
		name = id + ".webm"
	}
	mt := make([]mkvTrack, len(tracks))
	meta := store.Meta{
		ID: id, Room: p.o.Room, Participant: p.o.Participant, ParticipantName: p.o.ParticipantName,
		Start: zero, State: store.StateRecording, File: name,
	}
	for i, t := range tracks {
		m := mkvTrack{number: i + 1, uid: randUint64(), video: t.codec.video(), codecID: t.codec.matroskaID(),
			width: t.width, height: t.height}
		kind := "video"
		switch t.codec {
		case codecOpus:
			m.private, m.rate, m.chans = opusHead(t.chans), float64(t.rate), t.chans
			kind = "audio"
		case codecH264:
			m.private = t.avcC
		}
		mt[i] = m
		meta.Tracks = append(meta.Tracks, store.TrackMeta{Kind: kind, Codec: t.codec.mime(), ID: t.id})
	}
	f, err := p.o.createFile(filepath.Join(p.o.Dir, name))
	if err != nil {
		p.fail(fmt.Errorf("recorder: create media file: %w", err))
		return
	}
	pt := &part{id: id, file: f, meta: meta, zero: zero, lastWall: zero, lastWrite: now}
	p.part = pt
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
	if err := store.WriteMeta(p.o.Dir, meta); err != nil {
		p.fail(err)
		return
	}
	if pt.mkv, err = newMKV(f, webm, zero, mt); err != nil {
		p.fail(err)
		return
	}
	pt.mkv.onFlush = p.o.onCluster
	for i, t := range tracks {
		s := &slot{num: i + 1, codec: t.codec, t: t, lastMs: -1, needKey: t.codec.video()}
		pt.slots = append(pt.slots, s)
		t.slot = s
	}
	p.log.Info("recording started", "id", id, "file", name, "tracks", len(tracks))
	if p.o.onPart != nil {
		p.o.onPart(id)
	}
}

// closePart finishes the current file cleanly.
func (p *ParticipantRecorder) closePart(now time.Time) {
	if err := p.endPart(now, nil); err != nil {
		p.fail(err)
	}
}

// endPart ends the current file: finished cleanly when cause is nil (the
// returned error says whether that worked), else marked failed.
func (p *ParticipantRecorder) endPart(now time.Time, cause error) error {
	pt := p.part
	p.part = nil
	for _, s := range pt.slots {
		if s.t != nil {
			s.t.slot, s.t = nil, nil
		}
	}
	err := cause
	if err == nil && pt.mkv != nil {
		err = pt.mkv.finish()
	}
	if cerr := pt.file.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("recorder: close media file: %w", cerr)
	}
	// the end is the capture time of the end of the media written (the
	// time of closing when nothing was)
	pt.meta.End, pt.meta.State = now, store.StateFinished
	if pt.mkv != nil && pt.mkv.endMs > 0 {
		pt.meta.End = pt.zero.Add(time.Duration(pt.mkv.endMs) * time.Millisecond)
	}
	if err != nil {
		pt.meta.State, pt.meta.Error = store.StateFailed, err.Error()
	}
	if merr := store.WriteMeta(p.o.Dir, pt.meta); merr != nil && err == nil {
		err = merr
	}
	p.log.Info("recording ended", "id", pt.id, "state", pt.meta.State)
	if cause != nil {
		return nil // already reported
	}
	return err
}

// writeFrame writes one frame of t into the current file. Timecodes are
// milliseconds since the file's time 0, clamped so that a track's never go
// backwards (a sender report may move a track back by up to maxSyncJump:
// its next frames are then squeezed 1 ms apart until it catches up).
func (p *ParticipantRecorder) writeFrame(t *TrackRecorder, f *frame, now time.Time) {
	defer t.recycle(f)
	s, pt := t.slot, p.part
	if s.needKey {
		if !f.key {
			t.framesDropped.Add(1)
			t.askKeyframe(now)
			return
		}
		s.needKey = false
	}
	w := t.clock.at(f.extTS)
	ms := max((w.Sub(pt.zero) + time.Millisecond/2).Milliseconds(), 0)
	var dur int64
	if s.lastMs >= 0 {
		ms = max(ms, s.lastMs+1)
		dur = ms - s.lastMs
	}
	if err := pt.mkv.writeBlock(s.num, ms, f.key, t.codec.video(), dur, f.data); err != nil {
		p.fail(err)
		return
	}
	s.lastMs = ms
	t.frames.Add(1)
	if w.After(pt.lastWall) {
		pt.lastWall = w
	}
	pt.lastWrite = now
}

// newID returns a random recording ID: "rec_" and 16 base32 characters.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "rec_" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // non-zero
}

func randUint32() uint32 { return uint32(randUint64() >> 32) }
