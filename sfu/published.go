package sfu

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// MaxLayers is the number of simulcast layers a track may have.
const MaxLayers = 3

// Layer names as the web client sends them (rid), lowest quality first.
var layerNames = [MaxLayers]string{"q", "h", "f"}

// LayerName is the conventional name of a layer index.
func LayerName(l int) string {
	if l < 0 || l >= MaxLayers {
		return ""
	}
	return layerNames[l]
}

// layerIndex maps a simulcast rid to a quality index (0 lowest). Unknown
// rids and non-simulcast tracks are layer 0 unless they come after others.
func layerIndex(rid string) int {
	switch rid {
	case "q", "l", "low", "0":
		return 0
	case "h", "m", "mid", "medium", "1":
		return 1
	case "f", "hi", "high", "2":
		return 2
	}
	return -1
}

// PublishedTrack is one track of a publisher: one stream, or several
// simulcast layers of the same source (one UpTrack per layer). Down tracks
// subscribe to the published track and forward one layer at a time.
type PublishedTrack struct {
	info  TrackInfo
	codec webrtc.RTPCodecParameters
	muted atomic.Bool
	// blocked: an operator muted the track; nothing of it is forwarded
	// until unblocked, whatever the publisher says
	blocked atomic.Bool

	mu     sync.Mutex // guards layers and downs changes
	layers [MaxLayers]atomic.Pointer[UpTrack]
	downs  []*DownTrack

	// publisher-side savings, owned by the publisher's control loop
	sentTop      int       // highest layer the publisher was asked to send
	unneededFrom time.Time // since when fewer layers would do
	publishedAt  time.Time
}

func newPublishedTrack(info TrackInfo, codec webrtc.RTPCodecParameters) *PublishedTrack {
	return &PublishedTrack{info: info, codec: codec, sentTop: MaxLayers - 1, publishedAt: time.Now()}
}

// neededTop is the highest layer any subscriber may want (its maximum, or
// -1 when it paused the track); -1 without subscribers.
func (t *PublishedTrack) neededTop() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	top := -1
	for _, d := range t.downs {
		top = max(top, int(d.pref.Load()))
	}
	return top
}

// layerForHeight is the highest layer whose keyframes are at most h pixels
// high: layers whose size is not known yet are skipped, and when no size
// is known at all there is no limit (the top layer). When every known
// layer is higher than h, the lowest layer.
func (t *PublishedTrack) layerForHeight(h int) int {
	known := false
	for l := MaxLayers - 1; l >= 0; l-- {
		u := t.Layer(l)
		if u == nil {
			continue
		}
		if _, lh := u.Size(); lh > 0 {
			known = true
			if lh <= h {
				return l
			}
		}
	}
	if !known {
		return MaxLayers - 1
	}
	return 0
}

// layerCount is the number of layers the publisher sends.
func (t *PublishedTrack) layerCount() int {
	n := 0
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			n++
		}
	}
	return n
}

// Info describes the track.
func (t *PublishedTrack) Info() TrackInfo {
	i := t.info
	i.Muted = t.muted.Load()
	return i
}

// Codec is the publisher's codec (the same for every layer).
func (t *PublishedTrack) Codec() webrtc.RTPCodecParameters { return t.codec }

// Layer returns the up track of layer l, or nil.
func (t *PublishedTrack) Layer(l int) *UpTrack {
	if l < 0 || l >= MaxLayers {
		return nil
	}
	return t.layers[l].Load()
}

// Layers returns the up tracks present, lowest first.
func (t *PublishedTrack) Layers() []*UpTrack {
	var out []*UpTrack
	for i := range t.layers {
		if u := t.layers[i].Load(); u != nil {
			out = append(out, u)
		}
	}
	return out
}

// addLayer attaches an up track as layer l and subscribes every existing
// down track to it. It returns false if the slot is taken.
func (t *PublishedTrack) addLayer(l int, u *UpTrack) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.layers[l].Load() != nil {
		return false
	}
	u.layer = l
	t.layers[l].Store(u)
	for _, d := range t.downs {
		u.AddDownTrack(d)
	}
	return true
}

// removeLayer detaches layer l if it is u; it reports whether layers remain.
func (t *PublishedTrack) removeLayer(u *UpTrack) (remaining bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.layers {
		if t.layers[i].Load() == u {
			t.layers[i].Store(nil)
		} else if t.layers[i].Load() != nil {
			remaining = true
		}
	}
	return remaining
}

// freeLayer returns the index for a new layer with this rid.
func (t *PublishedTrack) freeLayer(rid string) int {
	if l := layerIndex(rid); l >= 0 && t.layers[l].Load() == nil {
		return l
	}
	for i := range t.layers {
		if t.layers[i].Load() == nil {
			return i
		}
	}
	return -1
}

// attach subscribes d to every layer.
func (t *PublishedTrack) attach(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.downs = append(t.downs, d)
	for i := range t.layers {
		if u := t.layers[i].Load(); u != nil {
			u.AddDownTrack(d)
		}
	}
}

// detach unsubscribes d from every layer.
func (t *PublishedTrack) detach(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.downs {
		if x == d {
			// a fresh slice: t.downs[:i:i] would keep the old array, and with
			// it the removed down track (a stopped recorder's buffers), alive
			t.downs = slices.Delete(slices.Clone(t.downs), i, i+1)
			break
		}
	}
	for i := range t.layers {
		if u := t.layers[i].Load(); u != nil {
			u.RemoveDownTrack(d)
		}
	}
}

// ActiveLayers reports which layers received a packet within window of now.
func (t *PublishedTrack) ActiveLayers(now time.Time, window time.Duration) [MaxLayers]bool {
	var out [MaxLayers]bool
	for i := range t.layers {
		if u := t.layers[i].Load(); u != nil {
			out[i] = u.activeSince(now.Add(-window))
		}
	}
	return out
}
