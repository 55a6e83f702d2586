package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/signaling"
)

// layerOf tells which simulcast layer a frame index came from.
func layerOf(idx uint32) int { return int(idx / mediatest.LayerIndexBase) }

// waitLayer waits until the last n frames received came from layer.
func waitLayer(t *testing.T, ctx context.Context, sk *mediatest.Sink, layer, n int) {
	t.Helper()
	waitLayerTB(t, ctx, sk, layer, n)
}

func waitLayerTB(t testing.TB, ctx context.Context, sk *mediatest.Sink, layer, n int) {
	t.Helper()
	for {
		fs := sk.Frames()
		run := 0
		for i := len(fs) - 1; i >= 0 && layerOf(fs[i]) == layer; i-- {
			run++
		}
		if run >= n {
			return
		}
		count := sk.Count()
		if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > count }); err != nil {
			got := -1
			if len(fs) > 0 {
				got = layerOf(fs[len(fs)-1])
			}
			t.Fatalf("timed out waiting for layer %d (receiving layer %d)", layer, got)
		}
	}
}

func (p *peer) layerEvent(trackID string, layer int, reason string) bool {
	return p.hasEvent(signaling.TypeLayerChanged, func(m signaling.Message) bool {
		return m.TrackID == trackID && m.Layer != nil && *m.Layer == layer && (reason == "" || m.Reason == reason)
	})
}

// A simulcast publisher's layers reach each subscriber according to its
// wishes, switching at keyframes into one continuous stream, and a layer the
// publisher stops sending is left for the next one down.
func TestSimulcastLayerSelection(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	full := newPeer(t, s, "room", "full", nil)
	small := newPeer(t, s, "room", "small", nil)
	pub := newPeer(t, s, "room", "pub", nil)

	_, stops := pub.publishSimulcast(ctx, 600, [3]time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond})
	fv := full.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	sv := small.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	trackID := fv.Track.ID()
	waitLayer(t, ctx, fv, 2, 20)
	waitLayer(t, ctx, sv, 2, 20)
	full.wait(ctx, "layerChanged 2", func() bool { return full.layerEvent(trackID, 2, "best") })

	// the small subscriber asks for the lowest layer, then the middle one
	zero, one := 0, 1
	if err := small.c.SetTrackSettings(trackID, &zero, nil); err != nil {
		t.Fatal(err)
	}
	waitLayer(t, ctx, sv, 0, 20)
	small.wait(ctx, "layerChanged 0", func() bool { return small.layerEvent(trackID, 0, "preference") })
	if err := small.c.SetTrackSettings(trackID, &one, nil); err != nil {
		t.Fatal(err)
	}
	waitLayer(t, ctx, sv, 1, 20)

	// the publisher stops its top layer: the full subscriber moves down
	stops[2]()
	waitLayer(t, ctx, fv, 1, 20)
	full.wait(ctx, "layerChanged 1", func() bool { return full.layerEvent(trackID, 1, "best") })

	// pausing stops the flow; resuming restarts it
	yes, no := true, false
	if err := small.c.SetTrackSettings(trackID, nil, &yes); err != nil {
		t.Fatal(err)
	}
	small.wait(ctx, "layerChanged -1", func() bool { return small.layerEvent(trackID, -1, "paused") })
	if err := small.c.SetTrackSettings(trackID, nil, &no); err != nil {
		t.Fatal(err)
	}
	n := sv.Count()
	if err := sv.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > n+10 }); err != nil {
		t.Fatal("no media after resuming")
	}

	// both subscribers saw one continuous stream across all switches
	for name, sk := range map[string]*mediatest.Sink{"full": fv, "small": sv} {
		seqs, tss := sk.Seqs(), sk.Timestamps()
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("%s: sequence jumps from %d to %d at %d", name, seqs[i-1], seqs[i], i)
			}
		}
		for i := 1; i < len(tss); i++ {
			// the timestamp advances with wall-clock time across a switch,
			// which follows a pause of up to a second when a layer stops
			if d := tss[i] - tss[i-1]; d == 0 || d > 2*90000 {
				t.Fatalf("%s: timestamp step %d at %d", name, d, i)
			}
		}
		t.Logf("%s: %d media packets, %d padding packets", name, len(tss), sk.Padding())
	}
	if err := small.c.SetTrackSettings("no-such-track", &zero, nil); err != nil {
		t.Fatal(err)
	}
	small.wait(ctx, "error for an unknown track", func() bool {
		for _, e := range small.c.Errors() {
			if e.Code == signaling.CodeBadRequest {
				return true
			}
		}
		return false
	})
}

// When no subscriber wants the upper layers, the publisher is asked to stop
// sending them, and to resume as soon as one does.
func TestPublisherAskedToPauseUnusedLayers(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	pub.publishSimulcast(ctx, 600, [3]time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond})
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	waitLayer(t, ctx, v, 2, 10)
	layersEvent := func(want []bool) func() bool {
		return func() bool {
			return pub.hasEvent(signaling.TypePublisherLayers, func(m signaling.Message) bool {
				if len(m.Active) != len(want) || m.Track == nil || m.Track.PublisherTrackID != "cam" {
					return false
				}
				for i := range want {
					if m.Active[i] != want[i] {
						return false
					}
				}
				return true
			})
		}
	}
	zero, two := 0, 2
	asked := time.Now()
	if err := sub.c.SetTrackSettings(v.Track.ID(), &zero, nil); err != nil {
		t.Fatal(err)
	}
	pub.wait(ctx, "publisherLayers [q]", layersEvent([]bool{true, false, false}))
	t.Logf("upper layers paused at the publisher %v after the last subscriber asked for the lowest", time.Since(asked).Round(time.Millisecond))
	asked = time.Now()
	if err := sub.c.SetTrackSettings(v.Track.ID(), &two, nil); err != nil {
		t.Fatal(err)
	}
	pub.wait(ctx, "publisherLayers [q h f]", layersEvent([]bool{true, true, true}))
	t.Logf("resumed %v after a subscriber asked for the top layer", time.Since(asked).Round(time.Millisecond))
}

// A subscriber can limit a track by frame height: the server picks the
// highest layer whose keyframes are at most that high.
func TestSimulcastMaxHeight(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	pub.publishSimulcast(ctx, 600, [3]time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond})
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	trackID := v.Track.ID()
	waitLayer(t, ctx, v, 2, 20) // 1280x720
	for _, c := range []struct{ height, layer int }{{360, 1}, {359, 0}, {100, 0}, {720, 2}, {500, 1}, {0, 2}} {
		if err := sub.c.SetMaxHeight(trackID, c.height); err != nil {
			t.Fatal(err)
		}
		waitLayer(t, ctx, v, c.layer, 20)
	}
	// the lower of maxLayer and maxHeight wins
	zero := 0
	if err := sub.c.SetTrackSettings(trackID, &zero, nil); err != nil {
		t.Fatal(err)
	}
	if err := sub.c.SetMaxHeight(trackID, 720); err != nil {
		t.Fatal(err)
	}
	waitLayer(t, ctx, v, 0, 20)
}

// A subscriber can pause an audio track too: nothing of it flows while
// paused, and it resumes when asked.
func TestAudioPause(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	sub := newPeer(t, s, "room", "sub", nil)
	pub := newPeer(t, s, "room", "pub", nil)
	audio := audioSource(t, "pub")
	pub.publish(ctx, audio)
	stop := pump(t, audio, 5*time.Millisecond)
	a := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	waitFrame(t, ctx, a, 20)
	stop()
	trackID := a.Track.ID()
	yes, no := true, false
	if err := sub.c.SetTrackSettings(trackID, nil, &yes); err != nil {
		t.Fatal(err)
	}
	sub.wait(ctx, "layerChanged -1 paused", func() bool { return sub.layerEvent(trackID, -1, "paused") })
	first := writeN(t, audio, 50, 2*time.Millisecond)
	if err := sub.c.SetTrackSettings(trackID, nil, &no); err != nil {
		t.Fatal(err)
	}
	// resumed: frames written from now on arrive
	resumed := audio.Next()
	pump(t, audio, 5*time.Millisecond)
	waitFrame(t, ctx, a, resumed+20)
	// the last few frames of the pause may still have been on their way to
	// the server when the resume reached it
	for i := first; i < first+40; i++ {
		if a.Has(i) {
			t.Fatalf("frame %d, written while the track was paused, arrived", i)
		}
	}
}
