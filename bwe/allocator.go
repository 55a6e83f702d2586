package bwe

import "sort"

// Demand is one track a subscriber receives, as the allocator sees it.
type Demand struct {
	ID    string
	Audio bool // audio is never cut
	// Priority orders video tracks: higher first (screen share above camera).
	Priority int
	// Layers are the bitrates of the layers the publisher sends, lowest
	// first; 0 marks a layer that is not being sent. Audio has one entry.
	Layers []int
	// MaxLayer is the subscriber's limit (its requested size), Paused its wish
	// to receive nothing.
	MaxLayer int
	Paused   bool
	// Current is the layer forwarded now (-1: none). Moving above it needs
	// UpgradeMargin of headroom, staying does not: a layer right at the
	// link's capacity is not taken and dropped over and over.
	Current int
}

// UpgradeMargin is the extra fraction of a layer's rate an upgrade to it
// needs beyond its rate.
const UpgradeMargin = 0.15

// cost is what granting layer l of d takes from the budget on top of the
// layer from, margin included when l is above the current layer.
func cost(d Demand, from, l int) int {
	c := d.Layers[l]
	if from >= 0 {
		c -= d.Layers[from]
	}
	if l > d.Current {
		c += int(float64(d.Layers[l]) * UpgradeMargin)
	}
	return max(0, c)
}

// Grant is the allocator's decision for one track.
type Grant struct {
	ID    string
	Layer int // -1: paused
	// Limited says the track got less than it asked for because of bandwidth.
	Limited bool
}

// Allocate splits budget (bits per second) across a subscriber's tracks:
// audio first and never cut; then every video track's lowest layer, by
// priority, before any track's higher layer; then higher layers one step at
// a time, by priority, never above a track's MaxLayer. Video tracks whose
// lowest layer does not fit are paused (Limited), except that the most
// important one keeps its lowest layer when nothing else would flow.
func Allocate(budget int, demands []Demand) []Grant {
	grants := make([]Grant, len(demands))
	order := make([]int, 0, len(demands))
	for i, d := range demands {
		grants[i] = Grant{ID: d.ID, Layer: -1}
		switch {
		case d.Audio:
			grants[i].Layer = 0
			if len(d.Layers) > 0 {
				budget -= d.Layers[0]
			}
		case !d.Paused:
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return demands[order[a]].Priority > demands[order[b]].Priority })

	want := func(d Demand) int { // the layer the subscriber would take without limits
		best := -1
		for l, r := range d.Layers {
			if r > 0 && l <= d.MaxLayer {
				best = l
			}
		}
		if best < 0 { // nothing at or below the limit: the lowest sent layer
			for l, r := range d.Layers {
				if r > 0 {
					return l
				}
			}
		}
		return best
	}
	// round 0: the lowest layer of every track
	for _, i := range order {
		d := demands[i]
		l := lowest(d.Layers)
		if l < 0 {
			continue
		}
		if c := cost(d, -1, l); c <= budget {
			grants[i].Layer = l
			budget -= d.Layers[l]
		}
		grants[i].Limited = grants[i].Layer != want(d)
	}
	// Keep the most important video track alive at its lowest layer even
	// when it does not fit: with no media at all the path could no longer
	// be measured, and nothing would ever come back.
	anyVideo := false
	for _, i := range order {
		anyVideo = anyVideo || grants[i].Layer >= 0
	}
	if !anyVideo {
		for _, i := range order {
			if l := lowest(demands[i].Layers); l >= 0 {
				grants[i].Layer = l
				budget -= demands[i].Layers[l]
				break
			}
		}
	}
	// later rounds: one step up per track per round, by priority
	for changed := true; changed; {
		changed = false
		for _, i := range order {
			d := demands[i]
			cur := grants[i].Layer
			if cur < 0 || cur >= want(d) {
				continue
			}
			next := cur + 1
			for next < len(d.Layers) && d.Layers[next] == 0 {
				next++
			}
			if next >= len(d.Layers) || next > want(d) {
				continue
			}
			if cost(d, cur, next) > budget {
				continue
			}
			budget -= d.Layers[next] - d.Layers[cur]
			grants[i].Layer = next
			changed = true
		}
	}
	for _, i := range order {
		grants[i].Limited = grants[i].Layer != want(demands[i])
	}
	return grants
}

func lowest(layers []int) int {
	for l, r := range layers {
		if r > 0 {
			return l
		}
	}
	return -1
}

// NextStep returns the total rate (bits per second) the subscriber would
// need for the next upgrade the allocation left out (the highest-priority
// limited track one step up), and the rate the allocation uses now; next is
// 0 when nothing is limited.
func NextStep(demands []Demand, grants []Grant) (next, used int) {
	step := 0
	for i, d := range demands {
		g := grants[i]
		if g.Layer >= 0 && g.Layer < len(d.Layers) {
			used += d.Layers[g.Layer]
		}
	}
	order := make([]int, 0, len(demands))
	for i, d := range demands {
		if !d.Audio && !d.Paused && grants[i].Limited {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return demands[order[a]].Priority > demands[order[b]].Priority })
	for _, i := range order {
		d, g := demands[i], grants[i]
		cur := 0
		if g.Layer >= 0 {
			cur = d.Layers[g.Layer]
		}
		for l := g.Layer + 1; l < len(d.Layers); l++ {
			if d.Layers[l] > 0 {
				step = d.Layers[l] - cur
				if l > d.Current {
					step += int(float64(d.Layers[l]) * UpgradeMargin)
				}
				return used + step, used
			}
		}
	}
	return 0, used
}
