package sfu

import (
	"math"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/red"
)

// The loss a down track's redundancy covers: the larger of its receiver
// reports' and the connection's, capped on a congested connection at the
// inherent loss, except audio up to audioCongestedLoss.
func TestLossRateSources(t *testing.T) {
	video := NewDownTrack(published(NewUpTrack(UpTrackOptions{
		Info: TrackInfo{ID: "v", Kind: webrtc.RTPCodecTypeVideo}, Codec: vp8Codec})), DownTrackOptions{})
	defer video.Close()
	audio := NewDownTrack(published(NewUpTrack(UpTrackOptions{
		Info: TrackInfo{ID: "a", Kind: webrtc.RTPCodecTypeAudio}, Codec: vp8Codec})), DownTrackOptions{})
	defer audio.Close()
	report := func(d *DownTrack, frac float64) {
		d.binding.Store(&binding{ssrc: 7})
		d.noteReceiverReport(&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{
			{SSRC: 7, FractionLost: uint8(frac * 256)}}})
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.01 }
	for _, d := range []*DownTrack{video, audio} {
		if got := d.lossRate(); got != 0 {
			t.Fatalf("no reports yet: loss %v", got)
		}
		// transport-wide feedback tells the loss before any receiver report
		d.SetInherentLoss(1)
		d.SetPathLoss(0.4)
		if got := d.lossRate(); !near(got, 0.4) {
			t.Fatalf("%v: path loss 0.4, loss rate %v", d.Kind(), got)
		}
		// a receiver report that says more wins
		report(d, 0.6)
		if got := d.lossRate(); !near(got, 0.6) {
			t.Fatalf("%v: reported 0.6, loss rate %v", d.Kind(), got)
		}
	}
	// congested, inherent loss not known yet: video FEC covers nothing,
	// audio keeps two copies
	for _, d := range []*DownTrack{video, audio} {
		d.SetInherentLoss(0)
	}
	if got := video.lossRate(); got != 0 {
		t.Fatalf("video on a congested path: loss rate %v, want 0", got)
	}
	if got := audio.lossRate(); got != audioCongestedLoss {
		t.Fatalf("audio on a congested path: loss rate %v, want %v", got, audioCongestedLoss)
	}
	if d := red.DistanceForLoss(redundancyLoss(audio.lossRate())); d != 2 {
		t.Fatalf("audio on a congested path: RED distance %d, want 2", d)
	}
	// the inherent loss, once known, is covered in full
	audio.SetInherentLoss(0.5)
	if got := audio.lossRate(); !near(got, 0.5) {
		t.Fatalf("inherent loss 0.5: audio loss rate %v", got)
	}
	// out-of-range path losses are clamped, NaN taken as none
	video.SetInherentLoss(1)
	video.SetPathLoss(7)
	if got := video.lossRate(); got != 1 {
		t.Fatalf("path loss 7: loss rate %v", got)
	}
	audio.SetPathLoss(math.NaN())
	if got := audio.lossRate(); !near(got, 0.5) {
		t.Fatalf("path loss NaN: loss rate %v, want the reports' 0.5", got)
	}
}
