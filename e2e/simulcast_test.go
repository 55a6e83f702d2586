package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// simulcastJS reads what the simulcast test needs from a page: the layers
// the server reported, the settings the page asked for, its remote tiles,
// and the video statistics of both connections (outbound per rid on the
// publisher connection, inbound per track on the subscriber connection).
const simulcastJS = `(async () => {
  const c = window.chorus || null;
  const out = {
    state: c ? c.state : '', participantId: (c && c.participantId) || '', banner: (c && c.banner) || '', visibility: document.visibilityState, dpr: window.devicePixelRatio,
    override: c ? c.maxLayerOverride : null, layers: (c && c.layers) || {}, settings: (c && c.trackSettings) || {},
    tiles: [], inbound: [], outbound: [], kinds: {},
  };
  for (const p of Object.values((c && c.participants) || {})) for (const tr of Object.values(p.tracks)) out.kinds[tr.id] = tr.kind;
  for (const el of document.querySelectorAll('#grid .tile.remote:not(.screen)')) {
    const b = el.querySelector('.layer-badge');
    out.tiles.push({id: el.dataset.participantId || '', height: el.getBoundingClientRect().height,
      badge: b && !b.hidden ? b.textContent : ''});
  }
  const pcs = (c && c.pcs) || {};
  if (pcs.subscriber) (await pcs.subscriber.getStats()).forEach(s => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    out.inbound.push({track: s.trackIdentifier || '', frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
      framesDecoded: s.framesDecoded || 0, keyFramesDecoded: s.keyFramesDecoded || 0, freezeCount: s.freezeCount || 0,
      totalFreezesDuration: s.totalFreezesDuration || 0, packetsReceived: s.packetsReceived || 0});
  });
  if (pcs.publisher) (await pcs.publisher.getStats()).forEach(s => {
    if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
    out.outbound.push({rid: s.rid || '', frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
      framesEncoded: s.framesEncoded || 0, qualityLimitationReason: s.qualityLimitationReason || '',
      scalabilityMode: s.scalabilityMode || ''});
  });
  return out;
})()`

type simState struct {
	State         string               `json:"state"`
	ParticipantID string               `json:"participantId"`
	Banner        string               `json:"banner"`
	Visibility    string               `json:"visibility"`
	DPR           float64              `json:"dpr"`
	Override      *int                 `json:"override"`
	Layers        map[string]layerInfo `json:"layers"`
	Settings      map[string]trackWish `json:"settings"`
	Tiles         []simTile            `json:"tiles"`
	Inbound       []inboundVideo       `json:"inbound"`
	Kinds         map[string]string    `json:"kinds"` // kind of each received track
	Outbound      []outboundVideo      `json:"outbound"`
}

type simTile struct {
	ID     string  `json:"id"`
	Height float64 `json:"height"`
	Badge  string  `json:"badge"`
}

type layerInfo struct {
	Layer  int     `json:"layer"`
	Reason string  `json:"reason"`
	At     float64 `json:"at"`
}

type trackWish struct {
	MaxLayer int  `json:"maxLayer"`
	Paused   bool `json:"paused"`
}

type inboundVideo struct {
	Track                string  `json:"track"`
	FrameWidth           int     `json:"frameWidth"`
	FrameHeight          int     `json:"frameHeight"`
	FramesDecoded        float64 `json:"framesDecoded"`
	KeyFramesDecoded     float64 `json:"keyFramesDecoded"`
	FreezeCount          float64 `json:"freezeCount"`
	TotalFreezesDuration float64 `json:"totalFreezesDuration"`
	PacketsReceived      float64 `json:"packetsReceived"`
}

type outboundVideo struct {
	RID                     string  `json:"rid"`
	FrameWidth              int     `json:"frameWidth"`
	FrameHeight             int     `json:"frameHeight"`
	FramesEncoded           float64 `json:"framesEncoded"`
	QualityLimitationReason string  `json:"qualityLimitationReason"`
	ScalabilityMode         string  `json:"scalabilityMode"` // e.g. L1T3: three temporal layers
}

func (s simState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// video is the inbound video stream of one track ("" when there is only
// one and its id does not matter).
func (s simState) video(track string) (inboundVideo, bool) {
	for _, v := range s.Inbound {
		if track == "" || v.Track == track {
			return v, true
		}
	}
	return inboundVideo{}, false
}

// tile finds the remote tile of a participant.
func (s simState) tile(id string) (simTile, bool) {
	for _, t := range s.Tiles {
		if t.ID == id {
			return t, true
		}
	}
	return simTile{}, false
}

func (tb *tab) simSnapshot() (simState, error) {
	return evaluate[simState](tb, simulcastJS)
}

// waitSim polls the tab until cond holds, failing the test at the deadline.
func (tb *tab) waitSim(deadline time.Time, what string, cond func(simState) bool) simState {
	tb.t.Helper()
	return poll(tb, deadline, what, tb.simSnapshot, cond)
}

// steadyFrames is how many frames a viewer decodes before the test treats
// its stream as steady (two seconds at 30 frames per second).
const steadyFrames = 60

// decodingAt tracks one tab's inbound video until it has decoded at the
// wanted width in two samples in a row with framesDecoded going up.
type decodingAt struct {
	tab   *tab
	track string     // "" for the only inbound video stream
	width func() int // the wanted width, asked at every sample
	since time.Time
	prev  *inboundVideo
	took  time.Duration
	state simState
	last  string
}

func (d *decodingAt) poll() bool {
	if d.took != 0 {
		return true
	}
	s, err := d.tab.simSnapshot()
	if err != nil {
		d.last = "error: " + err.Error()
		return false
	}
	want := d.width()
	d.last = fmt.Sprintf("(want frameWidth %d) %s", want, s)
	v, ok := s.video(d.track)
	if !ok || v.FrameWidth != want {
		d.prev = nil
		return false
	}
	if d.prev != nil && v.FramesDecoded > d.prev.FramesDecoded {
		d.took, d.state = time.Since(d.since), s
		return true
	}
	d.prev = &v
	return false
}

// waitDecoding polls every d until each decodes at its width.
func waitDecoding(t *testing.T, deadline time.Time, ds ...*decodingAt) {
	t.Helper()
	for {
		done := true
		for _, d := range ds {
			if !d.poll() {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, d := range ds {
				if d.took == 0 {
					fmt.Fprintf(&b, "\n %s %s", d.tab.name, d.last)
				}
			}
			t.Fatalf("timed out waiting for decoded video at the wanted widths:%s", b.String())
		}
		time.Sleep(pollInterval)
	}
}

// layerWidth returns the width the publisher encodes a layer at now (the
// last one seen if its statistics cannot be read). Chromium may scale the
// layers down when the machine is busy.
func layerWidth(pub *tab, rid string, last int) func() int {
	return func() int {
		if s, err := pub.simSnapshot(); err == nil {
			for _, o := range s.Outbound {
				if o.RID == rid && o.FrameWidth > 0 {
					last = o.FrameWidth
				}
			}
		}
		return last
	}
}

// wish describes what a page asked the server for about a track.
func wish(s simState, track string) string {
	w, ok := s.Settings[track]
	if !ok {
		return "nothing (server default: maxLayer 2)"
	}
	return fmt.Sprintf("maxLayer %d, paused %v", w.MaxLayer, w.Paused)
}

// TestBrowserSimulcast: a Chromium publisher sends three simulcast layers;
// of two viewers, "big" (a large tile) receives the full layer and "small"
// (forced to maxLayer 0 by the URL test hook) the quarter one; switching
// "small" to maxLayer 2 at run time moves it to the full layer without a
// freeze. Moving small's tiles out of view pauses the track; back in view,
// it resumes.
//
// The viewers do not publish, but each shows the other as a tile too; the
// window is large enough for two tiles over 480 px high, which "big" sizes
// to the full layer.
func TestBrowserSimulcast(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w, chromedp.WindowSize(1920, 1080))
	start := time.Now()
	deadline := start.Add(mediaDeadline)

	// The publisher: wait until Chromium encodes its three layers.
	pub := b.newTab("pub")
	pub.navigate(roomURL(s, "sim", "pub"))
	lastSeen := ""
	ps := pub.waitSim(deadline, "the publisher to encode three simulcast layers", func(s simState) bool {
		if seen := encodings(s.Outbound); seen != lastSeen {
			t.Logf("%6v publisher: %s", time.Since(start).Round(time.Millisecond), seen)
			lastSeen = seen
		}
		encoding := 0
		for _, o := range s.Outbound {
			if o.FramesEncoded > 0 && o.FrameWidth > 0 {
				encoding++
			}
		}
		return s.State == "joined" && encoding >= 3
	})
	var full, low outboundVideo
	for _, o := range ps.Outbound {
		switch o.RID {
		case "f":
			full = o
		case "q":
			low = o
		}
	}
	if full.FrameWidth == 0 || low.FrameWidth == 0 || full.FrameWidth <= low.FrameWidth {
		t.Fatalf("publisher layers: %s; want q and f, f the larger", encodings(ps.Outbound))
	}
	t.Logf("publisher encodes three layers after %v; full layer %dx%d %s, lowest %dx%d %s",
		time.Since(start).Round(time.Millisecond), full.FrameWidth, full.FrameHeight, full.ScalabilityMode,
		low.FrameWidth, low.FrameHeight, low.ScalabilityMode)
	if full.FrameWidth != 1280 || low.FrameWidth != 320 {
		t.Logf("note: the layers are %d and %d wide, not 1280 and 320", full.FrameWidth, low.FrameWidth)
	}
	fullWidth := layerWidth(pub, "f", full.FrameWidth)
	lowWidth := layerWidth(pub, "q", low.FrameWidth)

	// Two viewers that do not publish.
	big := b.newTab("big", denyMediaJS)
	small := b.newTab("small", denyMediaJS)
	viewStart := time.Now()
	big.navigate(roomURL(s, "sim", "big"))
	small.navigate(roomURL(s, "sim", "small") + "&maxLayer=0")
	dBig := &decodingAt{tab: big, width: fullWidth, since: viewStart}
	dSmall := &decodingAt{tab: small, width: lowWidth, since: viewStart}
	waitDecoding(t, deadline, dBig, dSmall)
	bv, _ := dBig.state.video("")
	sv, _ := dSmall.state.video("")
	t.Logf("after the viewers opened the room: big decodes %dx%d after %v, small decodes %dx%d after %v",
		bv.FrameWidth, bv.FrameHeight, dBig.took.Round(time.Millisecond), sv.FrameWidth, sv.FrameHeight, dSmall.took.Round(time.Millisecond))

	pubID := ps.ParticipantID
	bs, ss := dBig.state, dSmall.state
	var bigTile, smallTile simTile
	for _, x := range []struct {
		name string
		st   simState
		tile *simTile
	}{{"big", bs, &bigTile}, {"small", ss, &smallTile}} {
		tl, ok := x.st.tile(pubID)
		if len(x.st.Inbound) != 1 || !ok {
			t.Fatalf("%s: %d inbound video streams, publisher's tile found %v; want 1 and a tile: %s", x.name, len(x.st.Inbound), ok, x.st)
		}
		*x.tile = tl
		if x.st.Banner != "" {
			t.Errorf("%s: error banner %q", x.name, x.st.Banner)
		}
	}
	trackID := bs.Inbound[0].Track
	if ss.Inbound[0].Track != trackID {
		t.Errorf("big and small receive different tracks: %q, %q", trackID, ss.Inbound[0].Track)
	}
	t.Logf("big: publisher's tile %.0f px high at devicePixelRatio %v (page %s), asked for %s; server: %+v",
		bigTile.Height, bs.DPR, bs.Visibility, wish(bs, trackID), bs.Layers[trackID])
	t.Logf("small: publisher's tile %.0f px high, asked for %s; server: %+v",
		smallTile.Height, wish(ss, trackID), ss.Layers[trackID])
	if w, asked := bs.Settings[trackID]; asked && (w.MaxLayer != 2 || w.Paused) {
		t.Errorf("big asked for %s, want maxLayer 2 (or nothing) for a %.0f px tile", wish(bs, trackID), bigTile.Height)
	}
	if w := ss.Settings[trackID]; w.MaxLayer != 0 || w.Paused {
		t.Errorf("small asked for %s, want maxLayer 0 (URL maxLayer=0)", wish(ss, trackID))
	}

	// The server's layerChanged reports, and the badges that show them.
	big.waitSim(time.Now().Add(uiDeadline), "big's layer report and badge", func(s simState) bool {
		l, ok := s.Layers[trackID]
		return ok && l.Layer == 2 && l.Reason == "best" && badge(s, pubID) == "HD"
	})
	small.waitSim(time.Now().Add(uiDeadline), "small's layer report and badge", func(s simState) bool {
		l, ok := s.Layers[trackID]
		return ok && l.Layer == 0 && l.Reason == "preference" && badge(s, pubID) == "LD"
	})

	for id, l := range bs.Layers {
		if k := bs.Kinds[id]; k != "video" {
			t.Logf("note: the server reported a layer for the %s track %s: %+v", k, id, l)
		}
	}

	// Switch small to the full layer at run time, once its low layer has
	// been decoding for a while: a freeze while the publisher's encoders
	// are still starting up is not one caused by the switch.
	before := small.waitSim(time.Now().Add(uiDeadline), "small decoding the low layer steadily", func(s simState) bool {
		v, ok := s.video(trackID)
		return ok && v.FramesDecoded >= steadyFrames
	})
	bigBefore, err := big.simSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	vBefore, _ := before.video(trackID)
	switchStart := time.Now()
	askedAt, err := evaluate[float64](small, `(() => { window.chorus.setMaxLayer(2); return performance.now(); })()`)
	if err != nil {
		t.Fatalf("setMaxLayer: %v", err)
	}
	dSwitch := &decodingAt{tab: small, track: trackID, width: fullWidth, since: switchStart}
	waitDecoding(t, time.Now().Add(uiDeadline), dSwitch)
	// A freeze is counted when the late frame is rendered: read the count
	// only after a second's worth of frames has been decoded at the new size.
	vSwitch, _ := dSwitch.state.video(trackID)
	after := small.waitSim(time.Now().Add(uiDeadline), "small's layer report after the switch", func(s simState) bool {
		l, ok := s.Layers[trackID]
		v, _ := s.video(trackID)
		return ok && l.Layer == 2 && l.Reason == "best" && badge(s, pubID) == "HD" &&
			v.FramesDecoded >= vSwitch.FramesDecoded+steadyFrames/2
	})
	vAfter, _ := after.video(trackID)
	t.Logf("small switched from %dx%d to %dx%d in %v (layerChanged 2 arrived %.0f ms after setMaxLayer); "+
		"freezeCount %v -> %v, totalFreezesDuration %.3f -> %.3f s, keyFramesDecoded %v -> %v, framesDecoded %v -> %v",
		vBefore.FrameWidth, vBefore.FrameHeight, vAfter.FrameWidth, vAfter.FrameHeight, dSwitch.took.Round(time.Millisecond),
		after.Layers[trackID].At-askedAt,
		vBefore.FreezeCount, vAfter.FreezeCount, vBefore.TotalFreezesDuration, vAfter.TotalFreezesDuration,
		vBefore.KeyFramesDecoded, vAfter.KeyFramesDecoded, vBefore.FramesDecoded, vAfter.FramesDecoded)
	if bigAfter, err := big.simSnapshot(); err == nil {
		v0, _ := bigBefore.video(trackID)
		v1, _ := bigAfter.video(trackID)
		t.Logf("big (on the full layer throughout) decoded %v keyframes during small's switch", v1.KeyFramesDecoded-v0.KeyFramesDecoded)
	}
	if vAfter.FreezeCount > vBefore.FreezeCount {
		t.Errorf("small: freezeCount went from %v to %v across the layer switch", vBefore.FreezeCount, vAfter.FreezeCount)
	}
	if w := after.Settings[trackID]; w.MaxLayer != 2 || w.Paused {
		t.Errorf("small asked for %s after setMaxLayer(2)", wish(after, trackID))
	}
	if after.Banner != "" {
		t.Errorf("small: error banner %q", after.Banner)
	}
	if bv, err := big.simSnapshot(); err == nil {
		if v, ok := bv.video(trackID); !ok || v.FrameWidth != fullWidth() {
			t.Errorf("big no longer decodes the full layer after small switched: %s", bv)
		}
	}

	// Tiles out of view pause their video; back in view, it resumes.
	pauseStart := time.Now()
	small.exec(`document.getElementById('grid').style.transform = 'translateY(-5000px)'`)
	paused := small.waitSim(time.Now().Add(uiDeadline), "small's track paused while its tiles are out of view", func(s simState) bool {
		l, ok := s.Layers[trackID]
		return ok && l.Layer == -1 && l.Reason == "paused" && s.Settings[trackID].Paused
	})
	tPaused := time.Since(pauseStart)
	resumeStart := time.Now()
	small.exec(`document.getElementById('grid').style.transform = ''`)
	pv, _ := paused.video(trackID)
	resumed := small.waitSim(time.Now().Add(uiDeadline), "small's track resumed", func(s simState) bool {
		l, ok := s.Layers[trackID]
		v, _ := s.video(trackID)
		return ok && l.Layer == 2 && !s.Settings[trackID].Paused && v.FramesDecoded > pv.FramesDecoded+1
	})
	rv, _ := resumed.video(trackID)
	t.Logf("small: paused %v after its tiles left the viewport, decoding %dx%d again %v after they came back",
		tPaused.Round(time.Millisecond), rv.FrameWidth, rv.FrameHeight, time.Since(resumeStart).Round(time.Millisecond))
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func badge(s simState, participant string) string {
	tl, _ := s.tile(participant)
	return tl.Badge
}

// encodings summarises outbound video: rid, size, whether it encodes, and
// what limits its quality.
func encodings(out []outboundVideo) string {
	out = append([]outboundVideo(nil), out...)
	sort.Slice(out, func(i, j int) bool { return out[i].RID < out[j].RID })
	var parts []string
	for _, o := range out {
		state := "idle"
		if o.FramesEncoded > 0 {
			state = "encoding"
		}
		parts = append(parts, fmt.Sprintf("%s %dx%d %s (limit %s)", o.RID, o.FrameWidth, o.FrameHeight, state, o.QualityLimitationReason))
	}
	return strings.Join(parts, ", ")
}
