package sfu

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/simulcast"
)

const (
	// controlInterval is how often a subscriber's layer choices are revisited.
	controlInterval = 100 * time.Millisecond
	// layerActiveWindow: a layer that sent nothing for this long is
	// considered stopped by the publisher.
	layerActiveWindow = 500 * time.Millisecond
)

// TrackSettings are a subscriber's wishes for one track. Nil fields are left
// unchanged.
type TrackSettings struct {
	MaxLayer *int  // highest simulcast layer wanted (0 lowest)
	Paused   *bool // receive nothing
}

// SetTrackSettings applies a subscriber's settings for one of its
// subscriptions and re-evaluates the layer at once.
func (p *Participant) SetTrackSettings(trackID string, s TrackSettings) error {
	p.mu.Lock()
	sub, ok := p.subs[trackID]
	if ok {
		if s.MaxLayer != nil {
			sub.maxLayer = max(0, min(*s.MaxLayer, MaxLayers-1))
		}
		if s.Paused != nil {
			sub.paused = *s.Paused
		}
	}
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrTrackNotFound, trackID)
	}
	p.decide(time.Now(), sub)
	return nil
}

// controlLoop revisits the layer of every video subscription periodically:
// layers the publisher stops sending are left, and layers it resumes are
// taken again. It is the one goroutine making this participant's layer
// decisions besides direct setting changes.
func (p *Participant) controlLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(controlInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			p.mu.Lock()
			subs := make([]*subscription, 0, len(p.subs))
			for _, s := range p.subs {
				subs = append(subs, s)
			}
			p.mu.Unlock()
			for _, s := range subs {
				p.decide(now, s)
			}
		}
	}
}

// decide applies simulcast.Choose to one subscription.
func (p *Participant) decide(now time.Time, s *subscription) {
	d := s.down
	if d.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	p.mu.Lock()
	maxLayer, paused := s.maxLayer, s.paused
	p.mu.Unlock()
	active := d.src.ActiveLayers(now, layerActiveWindow)
	c := simulcast.Choose(active[:], maxLayer, simulcast.ReasonPreference, paused, d.CurrentLayer())
	if c.Reason == simulcast.ReasonNoMedia {
		return
	}
	if c.Layer != d.TargetLayer() || (c.Layer < 0) != d.paused.Load() || c.Reason != d.Reason() {
		d.SetTargetLayer(c.Layer, c.Reason)
	}
}
