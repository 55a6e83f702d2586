package sfu

import (
	"runtime"
	"testing"
	"time"
)

// A down track attached with history gets the cached packets from the
// newest keyframe on, then the live ones; with a queue too small for the
// history it drops frames and asks for a keyframe without deadlocking
// (the request takes the up track's lock, which the replay must not hold).
func TestAttachWithHistory(t *testing.T) {
	for _, queue := range []int{1024, 32} {
		up := newVideoUp(nil)
		pt := published(up)
		pz := &packetizer{seq: 500, perFrame: 10}
		for f := 0; f < 20; f++ { // 200 packets, a keyframe first and at frame 10
			for _, b := range pz.frameAt(f%10 == 0) {
				up.handlePacket(b)
			}
		}
		w := &fakeWriter{}
		d := NewDownTrack(pt, DownTrackOptions{QueueSize: queue})
		if _, err := d.Bind(fakeCtx{w: w, ssrc: 4242}); err != nil {
			t.Fatal(err)
		}
		done := make(chan int64)
		go func() { done <- pt.AttachWithHistory(d, 0) }()
		var first int64
		select {
		case first = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("queue %d: AttachWithHistory deadlocked", queue)
		}
		if first == 0 {
			t.Fatalf("queue %d: no history handed", queue)
		}
		if queue == 1024 {
			waitCount(t, w, 100) // frames 10..19: from the newest keyframe
			for _, b := range pz.frameAt(false) {
				up.handlePacket(b)
			}
			waitCount(t, w, 110)
			hs := w.written()
			for i := 1; i < len(hs); i++ {
				if hs[i].SequenceNumber != hs[i-1].SequenceNumber+1 {
					t.Fatalf("history then live: gap after packet %d", i)
				}
			}
		}
		d.Close()
	}
}

// History is not handed when the newest keyframe is too far back.
func TestAttachWithHistoryTooOld(t *testing.T) {
	up := newVideoUp(nil)
	pt := published(up)
	pz := &packetizer{seq: 1, perFrame: 10}
	for f := 0; f < 40; f++ { // the only keyframe is 400 packets back
		for _, b := range pz.frameAt(f == 0) {
			up.handlePacket(b)
		}
	}
	d := NewDownTrack(pt, DownTrackOptions{})
	if _, err := d.Bind(fakeCtx{w: &fakeWriter{}, ssrc: 1}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if first := pt.AttachWithHistory(d, 0); first != 0 {
		t.Fatalf("a keyframe %d packets back was replayed", 400)
	}
}

// A detached and closed down track can be collected: nothing the published
// track keeps (its list of down tracks) holds on to it. A stopped
// recorder's buffers hang off its down track.
func TestDetachedDownTrackCollected(t *testing.T) {
	up := newVideoUp(nil)
	pt := published(up)
	other := NewDownTrack(pt, DownTrackOptions{})
	defer other.Close()
	pt.Attach(other)
	collected := make(chan struct{})
	func() {
		d := NewDownTrack(pt, DownTrackOptions{})
		if _, err := d.Bind(fakeCtx{w: &fakeWriter{}, ssrc: 1}); err != nil {
			t.Fatal(err)
		}
		pt.Attach(d) // the last of two: removing it used to keep it in the array
		runtime.SetFinalizer(d, func(*DownTrack) { close(collected) })
		pt.Detach(d)
		d.Close()
	}()
	deadline := time.After(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-deadline:
			t.Fatal("a detached, closed down track is still reachable")
		case <-time.After(10 * time.Millisecond): // let the finalizer goroutine run
		}
	}
}
