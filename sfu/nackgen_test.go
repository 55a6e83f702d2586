package sfu

import (
	"slices"
	"testing"
	"time"
)

// received records packet seq (new, late or repaired) arriving at now, as
// one that ends a frame (audio, or a video frame's last packet).
func (n *nackTracker) received(seq uint16, now time.Time) {
	n.receivedPacket(seq, true, now)
}

// NACK retry timing with injected time: a gap is asked for at once, then
// every nackInterval, until repaired, too old or asked nackMaxTries times.
func TestNACKTrackerTiming(t *testing.T) {
	var n nackTracker
	t0 := time.Unix(100, 0)
	n.received(65530, t0)
	n.received(65533, t0) // 65531, 65532 missing
	if got := n.due(t0, nil); !slices.Equal(got, []uint16{65531, 65532}) {
		t.Fatalf("first NACK %v", got)
	}
	if got := n.due(t0.Add(10*time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("asked again after 10 ms: %v", got)
	}
	n.received(65531, t0.Add(20*time.Millisecond)) // repaired (e.g. over RTX)
	n.received(2, t0.Add(20*time.Millisecond))     // across the wrap: 65534..1 missing
	got := n.due(t0.Add(nackInterval), nil)
	slices.Sort(got)
	if want := []uint16{0, 1, 65532, 65534, 65535}; !slices.Equal(got, want) {
		t.Fatalf("second round %v, want %v", got, want)
	}
	// retries stop at nackMaxTries
	tries := 2
	for at := t0.Add(2 * nackInterval); tries < 20; at = at.Add(nackInterval) {
		if !slices.Contains(n.due(at, nil), 65532) {
			break
		}
		tries++
	}
	if tries != nackMaxTries {
		t.Fatalf("65532 asked %d times, want %d", tries, nackMaxTries)
	}
}

func TestNACKTrackerAgeAndRestart(t *testing.T) {
	var n nackTracker
	t0 := time.Unix(100, 0)
	n.received(10, t0)
	n.received(12, t0)
	if got := n.due(t0.Add(nackMaxAge+time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("a packet too old to be useful was asked for: %v", got)
	}
	n.received(5000, t0) // a jump beyond nackMaxGap: a restart, not 4987 losses
	if got := n.due(t0, nil); len(got) != 0 {
		t.Fatalf("restart taken for loss: %d NACKs", len(got))
	}
	n.received(5001, t0)
	n.received(4999, t0) // late, from before: not a gap
	if got := n.due(t0, nil); len(got) != 0 {
		t.Fatalf("in-order stream asked for %v", got)
	}
}

// Audio: asked for every audioNackInterval, at most audioNackMaxTries
// times, not past audioNackMaxAge.
func TestNACKTrackerAudioTiming(t *testing.T) {
	n := nackTracker{audio: true}
	t0 := time.Unix(100, 0)
	n.received(1, t0)
	n.received(3, t0)
	var asked []time.Duration
	for at := t0; at.Sub(t0) <= time.Second; at = at.Add(audioNackTick) {
		if slices.Contains(n.due(at, nil), 2) {
			asked = append(asked, at.Sub(t0))
		}
	}
	if len(asked) == 0 || asked[0] != 0 {
		t.Fatalf("asked at %v, want at once first", asked)
	}
	for i := 1; i < len(asked); i++ {
		if d := asked[i] - asked[i-1]; d != audioNackInterval {
			t.Fatalf("asked at %v: interval %v, want %v", asked, d, audioNackInterval)
		}
	}
	if last := asked[len(asked)-1]; last > audioNackMaxAge || len(asked) > audioNackMaxTries {
		t.Fatalf("asked %d times, last after %v: want at most %d, within %v", len(asked), last, audioNackMaxTries, audioNackMaxAge)
	}
	if len(asked) < 30 {
		t.Fatalf("asked only %d times in %v", len(asked), audioNackMaxAge)
	}
}

// With the publisher's round trip known, video retries come one round trip
// plus nackRTTMargin apart, within [nackMinInterval, nackMaxInterval].
func TestNACKTrackerFollowsRTT(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{time.Millisecond, nackMinInterval},
		{50 * time.Millisecond, 60 * time.Millisecond},
		{time.Second, nackMaxInterval},
	} {
		n := nackTracker{rtt: c.rtt}
		t0 := time.Unix(100, 0)
		n.received(1, t0)
		n.received(3, t0)
		n.due(t0, nil) // the first request
		var next time.Duration
		for d := time.Millisecond; d <= 2*nackMaxInterval; d += time.Millisecond {
			if len(n.due(t0.Add(d), nil)) > 0 {
				next = d
				break
			}
		}
		if next != c.want {
			t.Errorf("rtt %v: asked again after %v, want %v", c.rtt, next, c.want)
		}
	}
}

// Audio packets that are overdue are asked for before a later packet shows
// the gap; when the later packet comes, they are not asked for afresh.
func TestNACKTrackerAudioOverdue(t *testing.T) {
	n := nackTracker{audio: true}
	t0 := time.Unix(100, 0)
	n.received(100, t0)
	if got := n.due(t0.Add(25*time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("asked for %v before anything was overdue", got)
	}
	if got := n.due(t0.Add(31*time.Millisecond), nil); !slices.Equal(got, []uint16{101}) {
		t.Fatalf("31 ms after packet 100: asked for %v, want 101", got)
	}
	if got := n.due(t0.Add(71*time.Millisecond), nil); !slices.Equal(got, []uint16{101, 102, 103}) {
		t.Fatalf("71 ms after packet 100: asked for %v, want 101-103", got)
	}
	n.received(104, t0.Add(75*time.Millisecond)) // 101-103 really were lost
	if got := n.due(t0.Add(76*time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("asked for %v again 5 ms after the last request", got)
	}
	n.received(102, t0.Add(80*time.Millisecond)) // repaired
	if got := n.due(t0.Add(85*time.Millisecond), nil); !slices.Equal(got, []uint16{101, 103}) {
		t.Fatalf("asked for %v, want 101 and 103", got)
	}
	// a pause longer than the playout window asks for nothing more
	var m nackTracker
	m.audio = true
	m.received(7, t0)
	m.due(t0.Add(audioNackMaxAge+50*time.Millisecond), nil)
	if m.overdue != 0 {
		t.Fatalf("%d packets taken as overdue after a long pause", m.overdue)
	}
}

// A video packet without the marker bit is followed by the rest of its
// frame: when nothing comes within the tail wait, the next packet is asked
// for without waiting for the next frame to reveal the gap; the wait
// follows the spacing of the frame's packets.
func TestNACKTrackerAsksForAFramesLostTail(t *testing.T) {
	var n nackTracker
	t0 := time.Unix(100, 0)
	if !n.receivedPacket(10, false, t0) {
		t.Fatal("a frame left unfinished did not bring the next check forward")
	}
	got, next := n.dueNext(t0.Add(5*time.Millisecond), nil)
	if len(got) != 0 || !next.Equal(t0.Add(tailWaitMin)) {
		t.Fatalf("after 5 ms: NACKs %v, next check %v after; want none, and %v", got, next.Sub(t0), tailWaitMin)
	}
	if got := n.due(t0.Add(tailWaitMin), nil); !slices.Equal(got, []uint16{11}) {
		t.Fatalf("the frame's tail after %v: NACKs %v, want [11]", tailWaitMin, got)
	}
	if got := n.due(t0.Add(tailWaitMin+time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("the tail asked for twice at once: %v", got)
	}
	// 11 arrives (late), ends the frame: nothing more is pending
	n.receivedPacket(11, true, t0.Add(30*time.Millisecond))
	if got, next := n.dueNext(t0.Add(200*time.Millisecond), nil); len(got) != 0 || !next.IsZero() {
		t.Fatalf("after the frame ended: NACKs %v, next %v", got, next)
	}

	// a paced sender: 20 ms between the packets of a frame; the tail wait
	// grows to 1.5 x 20 + 5 ms
	var m nackTracker
	m.receivedPacket(100, false, t0)
	m.receivedPacket(101, false, t0.Add(20*time.Millisecond))
	if w := m.tailWait(); w != 35*time.Millisecond {
		t.Fatalf("tail wait %v after a 20 ms spacing, want 35ms", w)
	}
	if got := m.due(t0.Add(50*time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("asked for the tail of a paced frame too early: %v", got)
	}
	if got := m.due(t0.Add(55*time.Millisecond), nil); !slices.Equal(got, []uint16{102}) {
		t.Fatalf("paced frame's tail: %v", got)
	}
	// a keyframe's gap and the tail together; then the retry comes an
	// interval after the first request
	if got, next := m.dueNext(t0.Add(60*time.Millisecond), nil); len(got) != 0 || !next.Equal(t0.Add(55*time.Millisecond+nackInterval)) {
		t.Fatalf("retry planned at %v, want %v", next.Sub(t0), 55*time.Millisecond+nackInterval)
	}
}
