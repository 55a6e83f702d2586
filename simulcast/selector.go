package simulcast

// Reasons a subscriber receives the layer it does.
const (
	ReasonBest       = "best"       // the best layer the publisher sends
	ReasonPreference = "preference" // limited by the subscriber's maximum
	ReasonPaused     = "paused"     // the subscriber paused the track
	ReasonBandwidth  = "bandwidth"  // limited by the subscriber's bandwidth
	ReasonNoMedia    = "no_media"   // the publisher sends no layer
)

// Choice is a layer decision for one down track.
type Choice struct {
	Layer  int // -1: forward nothing
	Reason string
}

// Choose picks the layer to forward. active[l] says layer l is being
// received now; maxLayer is the subscriber's limit (also the bandwidth
// limit, reported as limitReason when it binds). It prefers the highest
// active layer not above maxLayer; if none is that low, the lowest active
// layer; if no layer is active, it keeps current.
func Choose(active []bool, maxLayer int, limitReason string, paused bool, current int) Choice {
	if paused {
		return Choice{Layer: -1, Reason: ReasonPaused}
	}
	best, lowest := -1, -1
	for l, ok := range active {
		if !ok {
			continue
		}
		if lowest < 0 {
			lowest = l
		}
		best = l
	}
	if best < 0 {
		return Choice{Layer: current, Reason: ReasonNoMedia}
	}
	for l := min(maxLayer, len(active)-1); l >= 0; l-- {
		if active[l] {
			if l < best {
				return Choice{Layer: l, Reason: limitReason}
			}
			return Choice{Layer: l, Reason: ReasonBest}
		}
	}
	return Choice{Layer: lowest, Reason: limitReason}
}
