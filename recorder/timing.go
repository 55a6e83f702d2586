package recorder

import "time"

// maxSyncJump bounds how far a sender report may move a track's timeline
// (see applySR).
const maxSyncJump = time.Second

// tsUnwrap extends 32-bit RTP timestamps to 64 bits across wrap-arounds.
// Timestamps older than the newest one seen (reordering) stay below it.
type tsUnwrap struct {
	last    int64
	started bool
}

func (u *tsUnwrap) extend(ts uint32) int64 {
	if !u.started {
		u.started = true
		u.last = 1<<32 + int64(ts) // keep earlier timestamps positive
		return u.last
	}
	e := u.last + int64(int32(ts-uint32(u.last)))
	u.last = max(u.last, e)
	return e
}

// peek extends ts without moving the reference.
func (u *tsUnwrap) peek(ts uint32) int64 {
	if !u.started {
		return u.extend(ts)
	}
	return u.last + int64(int32(ts-uint32(u.last)))
}

// clockMap maps a track's extended RTP timestamps to wall-clock time: ts
// was captured at wall.
type clockMap struct {
	rate int64
	wall time.Time
	ts   int64
	set  bool
}

func (c clockMap) at(ts int64) time.Time {
	d := ts - c.ts
	return c.wall.Add(time.Duration(d/c.rate)*time.Second + time.Duration(d%c.rate*int64(time.Second)/c.rate))
}

// applySR moves a track onto the clock of its publisher's sender reports.
//
// Before any sender report, a track's timeline is anchored at the arrival
// time of its first packet. The publisher's NTP clock is not ours, so the
// participant's first sender report (of whichever track) fixes the offset
// between the two clocks such that this track does not move at all; every
// track then follows its own reports through that same offset, so all
// tracks of the participant line up as the publisher captured them.
// A report that would move a track's timeline by more than maxSyncJump is
// ignored (and logged): it is inconsistent with the others, and following
// it would open a large gap or squash frames together.
// The track's clock must be set (it has had packets).
func (p *ParticipantRecorder) applySR(t *TrackRecorder, sr senderReport, now time.Time) {
	ext := t.unwrap.peek(sr.ts)
	if !p.ntpSet {
		p.ntpOffset, p.ntpSet = t.clock.at(ext).Sub(sr.ntp), true
	}
	next := clockMap{rate: t.rate, wall: sr.ntp.Add(p.ntpOffset), ts: ext, set: true}
	if t.clock.set {
		jump := next.at(ext).Sub(t.clock.at(ext))
		if jump > maxSyncJump || jump < -maxSyncJump {
			if t.srLog.allow(now, 30*time.Second) {
				t.log.Warn("sender report ignored: inconsistent with the other tracks", "jump", jump)
			}
			return
		}
	}
	t.clock, t.hasSR = next, true
}
