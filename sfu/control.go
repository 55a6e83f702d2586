package sfu

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/bwe"
	"github.com/chorus-sfu/chorus/red"
	"github.com/chorus-sfu/chorus/simulcast"
)

const (
	// controlInterval is how often a subscriber's layer choices are revisited.
	controlInterval = 100 * time.Millisecond
	// rttInterval: how often the publisher connection's round trip is read
	rttInterval = time.Second
	// layerActiveWindow: a layer that sent nothing for this long is
	// considered stopped by the publisher.
	layerActiveWindow = 500 * time.Millisecond
)

// TrackSettings are a subscriber's wishes for one track. Nil fields are left
// unchanged.
type TrackSettings struct {
	MaxLayer *int // highest simulcast layer wanted (0 lowest)
	// MaxHeight: the highest layer whose frames are at most this many
	// pixels high (0: no limit). Combined with MaxLayer, the lower wins.
	MaxHeight *int
	Paused    *bool // receive nothing
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
		if s.MaxHeight != nil {
			sub.maxHeight = max(0, *s.MaxHeight)
		}
		if s.Paused != nil {
			sub.paused = *s.Paused
		}
		sub.storePrefLocked()
	}
	raised := ok && sub.hasGrant && (sub.limitLocked() > sub.grantLimit || (sub.grantPaused && !sub.paused))
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrTrackNotFound, trackID)
	}
	p.decide(time.Now(), sub)
	if raised {
		// the allocator prices the new wish against the estimate at once
		p.kickAllocation()
	}
	return nil
}

// kickAllocation makes the control loop allocate now rather than at its
// next tick (a wish rose, or the estimate fell). It does not block.
func (p *Participant) kickAllocation() {
	select {
	case p.allocKick <- struct{}{}:
	default:
	}
}

// limitLocked is the highest layer the subscriber accepts: its maximum
// layer, lowered to what its maximum height allows; p.mu is held.
func (s *subscription) limitLocked() int {
	l := s.maxLayer
	if s.maxHeight > 0 {
		l = min(l, s.down.src.layerForHeight(s.maxHeight))
	}
	return l
}

// storePrefLocked publishes the subscriber's limit to the down track (read
// by the publisher-side layer savings); p.mu is held.
func (s *subscription) storePrefLocked() {
	pref := int32(s.limitLocked())
	if s.paused {
		pref = -1
	}
	s.down.pref.Store(pref)
}

// controlLoop revisits the layer of every video subscription periodically:
// it splits the connection's estimated bandwidth across the tracks, leaves
// layers the publisher stops sending and takes them again when they resume,
// and probes for capacity when a track gets less than it wants. It is the
// one goroutine making this participant's layer decisions besides direct
// setting changes.
func (p *Participant) controlLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(controlInterval)
	defer tick.Stop()
	var rttAt time.Time
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			if now.Sub(rttAt) >= rttInterval {
				rttAt = now
				p.measurePublisherRTT()
			}
			if p.canSubscribe {
				p.allocate(now)
			}
			p.savePublisherLayers(now)
		case <-p.layerKick:
			p.tellLayers()
		case <-p.allocKick:
			if p.canSubscribe {
				p.allocate(time.Now())
			}
		}
	}
}

// allocate runs the bandwidth allocation for all subscriptions at now.
func (p *Participant) allocate(now time.Time) {
	p.mu.Lock()
	subs := make([]*subscription, 0, len(p.subs))
	for _, s := range p.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	var estimate int
	var estimated bool
	var inherent, pathLoss float64
	var congested bool
	p.bw.with(func(e *bwe.Estimator) {
		e.CheckFeedback(now)
		estimate, estimated = e.Estimate(), e.HasFeedback()
		st := e.Stats()
		inherent, congested, pathLoss = st.InherentLoss, st.Congested, st.Loss
	})
	if estimated {
		// redundancy covers what the subscriber reports or the connection
		// loses, but on a congested path no more than the loss that is not
		// congestion's
		limit := 1.0
		if congested {
			limit = inherent
		}
		for _, s := range subs {
			s.down.SetInherentLoss(limit)
			s.down.SetPathLoss(pathLoss)
		}
	}
	if estimated {
		p.rtxBudget.SetEstimate(estimate, inherent)
	} else {
		p.rtxBudget.SetEstimate(0, 0)
	}
	estimated = estimated && !p.sfu.cfg.NoBandwidthAllocation

	// the subscriber's settings, read under the lock
	type wish struct {
		maxLayer int
		paused   bool
	}
	wishes := make([]wish, len(subs))
	p.mu.Lock()
	for i, s := range subs {
		wishes[i] = wish{s.limitLocked(), s.paused}
		s.storePrefLocked() // a layer's size may have become known
	}
	p.mu.Unlock()
	demands := make([]bwe.Demand, len(subs))
	for i, s := range subs {
		demands[i] = demandOf(s.down, wishes[i].maxLayer, wishes[i].paused, now)
	}
	var grants []bwe.Grant
	if estimated {
		grants = bwe.Allocate(estimate, demands)
		p.log.Debug("bandwidth allocation", "estimate", estimate, "demands", demands, "grants", grants)
	}
	p.mu.Lock()
	for i, s := range subs {
		s.hasGrant = estimated
		if estimated {
			s.grant = grants[i]
			s.grantLimit, s.grantPaused = wishes[i].maxLayer, wishes[i].paused
		}
	}
	p.mu.Unlock()
	for _, s := range subs {
		p.decide(now, s)
	}
	if estimated {
		p.probe(now, subs, demands, grants)
	}
}

// nominalRates stand in for layers not measured yet (bits per second):
// pricing them at zero would grant any of them for free.
var nominalRates = [MaxLayers]int{150_000, 500_000, 1_500_000}

// demandOf describes a subscription to the allocator.
func demandOf(d *DownTrack, maxLayer int, paused bool, now time.Time) bwe.Demand {
	dm := bwe.Demand{ID: d.id, Audio: d.Kind() == webrtc.RTPCodecTypeAudio, Paused: paused, MaxLayer: maxLayer,
		Current: d.CurrentLayer()}
	if d.src.info.Source == SourceScreen {
		dm.Priority = 1 // screen share before camera
	}
	if dm.Audio {
		rate := 0
		if u := d.src.Layer(0); u != nil {
			rate = u.Bitrate(now)
		}
		if a := d.audio.Load(); a != nil && (a.mode == audioREDEncode || a.mode == audioREDReencode) {
			if a.mode == audioREDReencode {
				rate /= 2 // the publisher's RED carries one copy (what browsers send): the Opus rate is half
			}
			// the copies cost bandwidth too, as many as fit beside a 20 ms
			// frame of this rate
			copies := red.DistanceForLoss(redundancyLoss(d.lossRate()))
			rate *= 1 + red.FitDistance(copies, rate/8/50)
		}
		dm.Layers = []int{rate}
		return dm
	}
	active := d.src.ActiveLayers(now, layerActiveWindow)
	fecOverhead := d.fecOverhead()
	dm.Layers = make([]int, MaxLayers)
	for l, ok := range active {
		if ok {
			dm.Layers[l] = d.src.Layer(l).Bitrate(now)
			if dm.Layers[l] == 0 {
				dm.Layers[l] = nominalRates[l]
			}
			dm.Layers[l] = int(float64(dm.Layers[l]) * (1 + fecOverhead)) // FEC costs bandwidth too
		}
	}
	return dm
}

// probe starts a bandwidth probe when a track is held back and the
// estimator allows one: the busiest video down track pads its flow.
func (p *Participant) probe(now time.Time, subs []*subscription, demands []bwe.Demand, grants []bwe.Grant) {
	var running *DownTrack
	probing := 0
	p.bw.with(func(e *bwe.Estimator) { probing = e.ProbeRate(now) })
	p.bw.mu.Lock()
	if probing == 0 && p.bw.prober != nil {
		// the probe's time is up: stop its padding
		running, p.bw.prober = p.bw.prober, nil
	}
	p.bw.mu.Unlock()
	if running != nil {
		running.Probe(0, 0)
	}
	if probing > 0 {
		return
	}
	next, used := bwe.NextStep(demands, grants)
	if next == 0 {
		return
	}
	var busiest *DownTrack
	best := -1
	for i, s := range subs {
		if g := grants[i]; !demands[i].Audio && g.Layer >= 0 && g.Layer < len(demands[i].Layers) && demands[i].Layers[g.Layer] > best {
			best, busiest = demands[i].Layers[g.Layer], s.down
		}
	}
	if busiest == nil {
		return // no video flows to carry the padding
	}
	extra := 0
	p.bw.with(func(e *bwe.Estimator) {
		if e.CanProbe(next, now) {
			// pad from what actually goes out (layers' measured rates are
			// the publisher's, and media often runs below them), a little
			// over, so that the probe's packets reach its rate
			from := used
			if sent := e.SentRate(now); sent > 0 {
				from = sent
			}
			rate := e.StartProbe(next, now)
			extra = rate + rate/20 - from
		}
	})
	if extra > 0 {
		p.log.Debug("bandwidth probe", "track", busiest.src.info.ID, "padding", extra, "step", next)
		busiest.Probe(extra, bwe.ProbeDuration())
		p.bw.mu.Lock()
		p.bw.prober = busiest
		p.bw.mu.Unlock()
	}
}

// decide applies simulcast.Choose to one subscription, within the last
// bandwidth grant.
func (p *Participant) decide(now time.Time, s *subscription) {
	d := s.down
	p.mu.Lock()
	maxLayer, paused, grant, hasGrant := s.limitLocked(), s.paused, s.grant, s.hasGrant
	if hasGrant && !paused && (maxLayer > s.grantLimit || s.grantPaused) {
		// The wish rose since the last allocation, whose grant did not
		// price it: no higher than that grant (or the lowest layer after a
		// pause) until the allocator, kicked by the change, has run.
		held := 0
		if !s.grantPaused {
			held = max(grant.Layer, 0)
		}
		maxLayer = min(maxLayer, held)
	}
	p.mu.Unlock()
	if d.Kind() != webrtc.RTPCodecTypeVideo { // audio: only the subscriber's pause
		if paused != d.paused.Load() {
			if paused {
				d.SetTargetLayer(-1, simulcast.ReasonPaused)
			} else {
				d.SetTargetLayer(0, simulcast.ReasonBest)
			}
		}
		return
	}
	reason := simulcast.ReasonPreference
	if hasGrant && grant.Limited && !paused {
		if grant.Layer < 0 {
			if !d.paused.Load() || d.Reason() != simulcast.ReasonBandwidth {
				d.SetTargetLayer(-1, simulcast.ReasonBandwidth)
			}
			return
		}
		if grant.Layer < maxLayer {
			maxLayer, reason = grant.Layer, simulcast.ReasonBandwidth
		}
	}
	active := d.src.ActiveLayers(now, layerActiveWindow)
	c := simulcast.Choose(active[:], maxLayer, reason, paused, d.CurrentLayer())
	if c.Reason == simulcast.ReasonNoMedia {
		return
	}
	if c.Layer != d.TargetLayer() || (c.Layer < 0) != d.paused.Load() || c.Reason != d.Reason() {
		d.SetTargetLayer(c.Layer, c.Reason)
	}
}

// layerHoldoff: a layer nobody needs is paused at the publisher only after
// this long, so that resizing a window does not toggle encoders.
const layerHoldoff = 3 * time.Second

// aloneGrace: a track nobody receives keeps all its layers this long after
// it was published.
const aloneGrace = 10 * time.Second

// savePublisherLayers asks this participant to stop sending simulcast
// layers above the highest one any subscriber may want, and to resume them
// as soon as someone wants them. The lowest layer is always sent.
func (p *Participant) savePublisherLayers(now time.Time) {
	for _, t := range p.Published() {
		n := t.layerCount()
		if n < 2 {
			continue
		}
		needed := t.neededTop()
		top := max(lowestLayer(t), min(needed, MaxLayers-1))
		if needed < 0 && now.Sub(t.publishedAt) < aloneGrace {
			// nobody receives a track just published: viewers are likely
			// on their way, and the publisher's own bandwidth estimate is
			// still ramping up its layers; no pausing yet
			t.unneededFrom = time.Time{}
			continue
		}
		switch {
		case top > t.sentTop: // someone wants more: at once
			t.unneededFrom = time.Time{}
		case top < t.sentTop:
			if t.unneededFrom.IsZero() {
				t.unneededFrom = now
			}
			if now.Sub(t.unneededFrom) < layerHoldoff {
				continue
			}
			t.unneededFrom = time.Time{}
		default:
			t.unneededFrom = time.Time{}
			continue
		}
		t.sentTop = top
		active := make([]bool, MaxLayers)
		for l := range active {
			active[l] = l <= top
		}
		p.log.Info("publisher layers", "track", t.info.ID, "top", top)
		p.listener.PublisherLayers(t.Info(), active)
	}
}

// BandwidthStats is the subscriber connection's bandwidth estimate.
func (p *Participant) BandwidthStats() bwe.Stats {
	var st bwe.Stats
	p.bw.with(func(e *bwe.Estimator) { st = e.Stats() })
	return st
}

// lowestLayer is the lowest layer the publisher sends (0 if none).
func lowestLayer(t *PublishedTrack) int {
	for l := range t.layers {
		if t.layers[l].Load() != nil {
			return l
		}
	}
	return 0
}

// layerNote is the latest layer change of one track.
type layerNote struct {
	layer  int
	reason string
}

// postLayer records a layer change for the control loop to report; it is
// called from media goroutines and never blocks. Changes of one track
// coalesce: the subscriber hears the latest.
func (p *Participant) postLayer(trackID string, layer int, reason string) {
	p.layerMu.Lock()
	if p.layerPending == nil {
		p.layerPending = map[string]layerNote{}
	}
	p.layerPending[trackID] = layerNote{layer, reason}
	p.layerMu.Unlock()
	select {
	case p.layerKick <- struct{}{}:
	default:
	}
}

// tellLayers reports the posted layer changes to the listener.
func (p *Participant) tellLayers() {
	p.layerMu.Lock()
	pending := p.layerPending
	p.layerPending = nil
	p.layerMu.Unlock()
	for id, n := range pending {
		p.listener.LayerChanged(id, n.layer, n.reason)
	}
}
