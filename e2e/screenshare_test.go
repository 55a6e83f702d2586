package e2e

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chorus-sfu/chorus/signaling"
)

// screenCaptureJS runs before the page's scripts. Chromium started with
// --use-fake-ui-for-media-stream and --use-fake-device-for-media-stream
// answers getDisplayMedia with a fake "Entire screen" of its own, headless
// too; this wrapper keeps that and records it. Builds where display capture
// is unavailable headless reject it (or never answer): then the wrapper
// returns canvas.captureStream(15) of an animated canvas instead, so that
// the test still exercises the client and the server, and says so in
// window.__screenCapture (logged by the test).
const screenCaptureJS = `(() => {
  const md = navigator.mediaDevices;
  if (!md) return;
  const native = md.getDisplayMedia ? md.getDisplayMedia.bind(md) : null;
  const canvasScreen = () => {
    const canvas = document.createElement('canvas');
    canvas.width = 1280; canvas.height = 720;
    const ctx = canvas.getContext('2d');
    let frame = 0;
    const draw = () => {
      frame++;
      ctx.fillStyle = '#123'; ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.fillStyle = '#fc3'; ctx.fillRect((frame * 8) % canvas.width, 200, 160, 160);
      ctx.fillStyle = '#fff'; ctx.font = '48px sans-serif'; ctx.fillText('fake screen ' + frame, 40, 80);
    };
    draw();
    setInterval(draw, 66);
    return canvas.captureStream(15);
  };
  const replacement = async (constraints) => {
    if (native) {
      let timer;
      try {
        const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no answer in 5 s')), 5000); });
        const stream = await Promise.race([native(constraints), timeout]);
        window.__screenCapture = 'native: ' + stream.getVideoTracks().map(t => t.label).join(', ');
        return stream;
      } catch (err) {
        window.__screenCapture = 'canvas (getDisplayMedia failed: ' + (err && (err.name + ': ' + err.message)) + ')';
      } finally {
        clearTimeout(timer);
      }
    } else {
      window.__screenCapture = 'canvas (no getDisplayMedia)';
    }
    return canvasScreen();
  };
  Object.defineProperty(MediaDevices.prototype, 'getDisplayMedia', {value: replacement, configurable: true, writable: true});
})();`

// recordOffersJS keeps the "sources" of every publisher offer the page
// sends, in window.__publisherOffers.
const recordOffersJS = `(() => {
  window.__publisherOffers = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const m = JSON.parse(data);
      if (m && m.type === 'offer' && m.target === 'publisher') window.__publisherOffers.push({id: m.id || '', sources: m.sources || null});
    } catch { /* not ours */ }
    return send.call(this, data);
  };
})();`

// screenJS reads what the screen-sharing test needs from a page: the share
// button, every tile with the track it shows, what the page knows about the
// others' tracks, and inbound video statistics per track.
const screenJS = `(async () => {
  const c = window.chorus || null;
  const btn = document.getElementById('share-button');
  const out = {
    state: c ? c.state : '', participantId: (c && c.participantId) || '', banner: (c && c.banner) || '',
    sharing: !!(c && c.screenSharing), capture: window.__screenCapture || '',
    shareLabel: btn ? btn.querySelector('.ctl-label').textContent : '', shareDisabled: btn ? btn.disabled : true,
    tiles: [], tracks: {}, inbound: {}, offers: window.__publisherOffers || [],
  };
  for (const el of document.querySelectorAll('#grid .tile')) {
    const v = el.querySelector('video');
    const r = el.getBoundingClientRect();
    const vt = v.srcObject ? v.srcObject.getVideoTracks() : [];
    out.tiles.push({id: el.dataset.participantId || '', source: el.dataset.source || '', trackId: el.dataset.trackId || '',
      local: el.classList.contains('local'), name: el.querySelector('.tile-name').textContent, noVideo: el.classList.contains('no-video'),
      videoWidth: v.videoWidth, width: r.width, height: r.height, videoTracks: vt.map(t => t.id)});
  }
  for (const p of Object.values((c && c.participants) || {})) {
    for (const t of Object.values(p.tracks)) out.tracks[t.id] = {participantId: p.id, kind: t.kind, source: t.source || ''};
  }
  const pc = c && c.pcs && c.pcs.subscriber;
  if (pc) (await pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.trackIdentifier) {
      out.inbound[s.trackIdentifier] = {framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0};
    }
  });
  return out;
})()`

type screenState struct {
	State         string       `json:"state"`
	ParticipantID string       `json:"participantId"`
	Banner        string       `json:"banner"`
	Sharing       bool         `json:"sharing"`
	Capture       string       `json:"capture"`
	ShareLabel    string       `json:"shareLabel"`
	ShareDisabled bool         `json:"shareDisabled"`
	Tiles         []screenTile `json:"tiles"`
	Tracks        map[string]struct {
		ParticipantID string `json:"participantId"`
		Kind          string `json:"kind"`
		Source        string `json:"source"`
	} `json:"tracks"`
	Inbound map[string]struct {
		FramesDecoded float64 `json:"framesDecoded"`
		FrameWidth    int     `json:"frameWidth"`
	} `json:"inbound"`
	Offers []struct {
		ID      string            `json:"id"`
		Sources map[string]string `json:"sources"`
	} `json:"offers"`
}

// lastSources is what the page's last publisher offer said its tracks
// show, as a sorted list of sources (e.g. [camera microphone screen]).
func (s screenState) lastSources() []string {
	if len(s.Offers) == 0 {
		return nil
	}
	out := []string{}
	for _, src := range s.Offers[len(s.Offers)-1].Sources {
		out = append(out, src)
	}
	sort.Strings(out)
	return out
}

type screenTile struct {
	ID          string   `json:"id"`
	Source      string   `json:"source"`
	TrackID     string   `json:"trackId"`
	Local       bool     `json:"local"`
	Name        string   `json:"name"`
	NoVideo     bool     `json:"noVideo"`
	VideoWidth  int      `json:"videoWidth"`
	Width       float64  `json:"width"`
	Height      float64  `json:"height"`
	VideoTracks []string `json:"videoTracks"`
}

func (s screenState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// find returns the first tile of participant id ("local" for our own)
// with the source ("camera" or "screen").
func (s screenState) find(id, source string) (screenTile, bool) {
	for _, t := range s.Tiles {
		if t.ID == id && t.Source == source {
			return t, true
		}
	}
	return screenTile{}, false
}

func (s screenState) count(source string) int {
	n := 0
	for _, t := range s.Tiles {
		if t.Source == source {
			n++
		}
	}
	return n
}

func (s screenState) decoded(track string) float64 {
	return s.Inbound[track].FramesDecoded
}

func (tb *tab) screenSnapshot() (screenState, error) {
	return evaluate[screenState](tb, screenJS)
}

func (tb *tab) waitScreen(what string, cond func(screenState) bool) screenState {
	tb.t.Helper()
	return poll(tb, time.Now().Add(mediaDeadline), what, tb.screenSnapshot, cond)
}

// serverReportsSources: this build's signaling has the publisher offer's
// "sources" (and so reports each track's source to the others).
func serverReportsSources() bool {
	_, ok := reflect.TypeOf(signaling.Message{}).FieldByName("Sources")
	return ok
}

// TestBrowserScreenShare: a shares its screen; b shows it in a tile of its
// own, larger than the cameras, and decodes it; when a stops sharing (with
// the button, and the second time as the browser's own "Stop sharing"
// does, by ending the track), the tile goes and a's camera keeps flowing.
func TestBrowserScreenShare(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w,
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("auto-accept-this-tab-capture", true))
	ta, tb := b.newTab("a", screenCaptureJS, recordOffersJS), b.newTab("b", screenCaptureJS, recordOffersJS)
	ta.navigate(roomURL(s, "screen", "a"))
	tb.navigate(roomURL(s, "screen", "b"))

	// Both in the room, each decoding the other's camera.
	var aID string
	var camTrack string // a's camera track as b receives it
	sa := ta.waitScreen("a joined and decoding b's camera", func(s screenState) bool {
		for _, tl := range s.Tiles {
			if !tl.Local && tl.Source == "camera" && tl.VideoWidth > 0 {
				return s.State == "joined" && !s.ShareDisabled && s.ShareLabel == "Share screen"
			}
		}
		return false
	})
	aID = sa.ParticipantID
	sb := tb.waitScreen("b decoding a's camera", func(s screenState) bool {
		cam, ok := s.find(aID, "camera")
		if !ok || cam.VideoWidth == 0 || len(cam.VideoTracks) != 1 {
			return false
		}
		camTrack = cam.VideoTracks[0]
		return s.decoded(camTrack) > 0
	})
	if sb.count("screen") != 0 || sa.Sharing {
		t.Fatalf("a screen share before anyone shared: a %s\n b %s", sa, sb)
	}
	if got := sa.lastSources(); !slices.Equal(got, []string{"camera", "microphone"}) {
		t.Errorf("a's publisher offer sources = %v, want camera and microphone: %s", got, sa)
	}
	withSources := serverReportsSources()
	if withSources {
		if src := sb.Tracks[camTrack].Source; src != "camera" {
			t.Errorf("b: a's camera track %s has source %q, want camera", camTrack, src)
		}
		for id, tr := range sb.Tracks {
			if tr.Kind == "audio" && tr.Source != "microphone" {
				t.Errorf("b: a's audio track %s has source %q, want microphone", id, tr.Source)
			}
		}
	} else {
		t.Log("note: signaling.Message has no Sources field; not checking the sources the server reports")
	}

	for round, stop := range []string{"the Stop sharing button", "the browser ending the capture"} {
		// a shares.
		start := time.Now()
		ta.click("share-button")
		sa = ta.waitScreen("a sharing, with its own screen tile", func(s screenState) bool {
			tl, ok := s.find("local", "screen")
			return s.Sharing && s.ShareLabel == "Stop sharing" && ok && tl.Name == "You (screen)" && tl.VideoWidth > 0
		})
		if round == 0 {
			t.Logf("a's screen capture: %s", sa.Capture)
		}
		sa = ta.waitScreen("a's re-offer with the screen", func(s screenState) bool {
			return slices.Equal(s.lastSources(), []string{"camera", "microphone", "screen"})
		})
		var screenTrack string
		sb = tb.waitScreen("b decoding a's screen in a tile of its own", func(s screenState) bool {
			tl, ok := s.find(aID, "screen")
			if !ok || tl.TrackID == "" || tl.VideoWidth == 0 {
				return false
			}
			screenTrack = tl.TrackID
			return s.decoded(screenTrack) > 0
		})
		t.Logf("round %d: b decodes a's screen %v after a clicked Share screen", round+1, time.Since(start).Round(time.Millisecond))
		scr, _ := sb.find(aID, "screen")
		cam, ok := sb.find(aID, "camera")
		switch {
		case !ok:
			t.Errorf("b: a's camera tile is gone while a shares: %s", sb)
		case scr.Name != "a (screen)" || cam.Name != "a":
			t.Errorf("b: tiles named %q and %q, want \"a (screen)\" and \"a\"", scr.Name, cam.Name)
		case scr.TrackID == camTrack || len(cam.VideoTracks) != 1 || cam.VideoTracks[0] != camTrack:
			t.Errorf("b: camera tile shows %v, screen tile %s; want the camera %s and the screen apart", cam.VideoTracks, scr.TrackID, camTrack)
		case scr.Width <= cam.Width:
			t.Errorf("b: a's screen tile is %.0f px wide, its camera tile %.0f; want the screen larger", scr.Width, cam.Width)
		}
		if sb.count("screen") != 1 {
			t.Errorf("b shows %d screen tiles, want 1: %s", sb.count("screen"), sb)
		}
		if tr, ok := sb.Tracks[screenTrack]; !ok || tr.ParticipantID != aID || tr.Kind != "video" {
			t.Errorf("b: a's screen track %s not known as a's video: %+v", screenTrack, tr)
		} else if withSources && tr.Source != "screen" {
			t.Errorf("b: trackPublished for a's screen %s has source %q, want screen", screenTrack, tr.Source)
		}
		// a's camera still flows to b while the screen is shared.
		camBefore := sb.decoded(camTrack)
		tb.waitScreen("a's camera still decoded on b while a shares", func(s screenState) bool {
			return s.decoded(camTrack) > camBefore+5
		})

		// a stops.
		if round == 0 {
			ta.click("share-button")
		} else {
			ta.exec(`const tr = window.chorus.screenStream.getVideoTracks()[0]; tr.stop(); tr.dispatchEvent(new Event('ended'))`)
		}
		start = time.Now()
		offers := len(sa.Offers)
		sa = ta.waitScreen("a no longer sharing, re-offered without the screen", func(s screenState) bool {
			_, ok := s.find("local", "screen")
			return !s.Sharing && !ok && s.ShareLabel == "Share screen" && !s.ShareDisabled &&
				len(s.Offers) > offers && slices.Equal(s.lastSources(), []string{"camera", "microphone"})
		})
		sb = tb.waitScreen("a's screen tile to disappear from b", func(s screenState) bool {
			_, known := s.Tracks[screenTrack]
			return s.count("screen") == 0 && !known
		})
		t.Logf("round %d: a's screen tile left b %v after %s", round+1, time.Since(start).Round(time.Millisecond), stop)
		camBefore = sb.decoded(camTrack)
		sb = tb.waitScreen("a's camera still decoded on b after a stopped sharing", func(s screenState) bool {
			cam, ok := s.find(aID, "camera")
			return ok && cam.VideoWidth > 0 && s.decoded(camTrack) > camBefore+5
		})
		for _, x := range []struct {
			name string
			st   screenState
		}{{"a", sa}, {"b", sb}} {
			if x.st.Banner != "" {
				t.Errorf("%s: error banner %q", x.name, x.st.Banner)
			}
		}
	}
	if st, err := ta.screenSnapshot(); err == nil && st.Banner != "" {
		t.Errorf("a: error banner %q", st.Banner)
	}
}

// TestBrowserScreenShareOnly: a participant without camera and microphone
// shares its screen (its first publisher offer); one who joins later gets
// the screen from "joined" and shows it apart from the (empty) camera tile;
// when the sharer leaves, both its tiles go.
func TestBrowserScreenShareOnly(t *testing.T) {
	if !serverReportsSources() {
		// Without sources, a lone video is taken for a camera.
		t.Skip("signaling.Message has no Sources field: the server does not report track sources")
	}
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	tc := b.newTab("c", denyMediaJS, screenCaptureJS, recordOffersJS)
	tc.navigate(roomURL(s, "screen-only", "c"))
	tc.waitScreen("c joined, able to share", func(s screenState) bool {
		return s.State == "joined" && !s.ShareDisabled
	})
	tc.click("share-button")
	sc := tc.waitScreen("c sharing", func(s screenState) bool {
		tl, ok := s.find("local", "screen")
		return s.Sharing && ok && tl.VideoWidth > 0 && len(s.Offers) > 0
	})
	if _, ok := sc.find("local", "camera"); ok {
		t.Errorf("c shows a camera preview without a camera: %s", sc)
	}
	if got := sc.lastSources(); !slices.Equal(got, []string{"screen"}) {
		t.Errorf("c's publisher offer sources = %v, want only screen", got)
	}
	cID := sc.ParticipantID

	ta := b.newTab("a", screenCaptureJS)
	ta.navigate(roomURL(s, "screen-only", "a"))
	sa := ta.waitScreen("a decoding c's screen", func(s screenState) bool {
		tl, ok := s.find(cID, "screen")
		return ok && tl.VideoWidth > 0 && s.decoded(tl.TrackID) > 0
	})
	scr, _ := sa.find(cID, "screen")
	if cam, ok := sa.find(cID, "camera"); !ok || !cam.NoVideo || len(cam.VideoTracks) != 0 {
		t.Errorf("a: c's camera tile = %+v (found %v), want one without video", cam, ok)
	}
	if scr.Name != "c (screen)" {
		t.Errorf("a: c's screen tile is named %q", scr.Name)
	}
	if src := sa.Tracks[scr.TrackID].Source; src != "screen" {
		t.Errorf("a: c's screen track %s has source %q in joined, want screen", scr.TrackID, src)
	}

	tc.click("leave-button")
	sa = ta.waitScreen("c's tiles to leave a", func(s screenState) bool {
		_, cam := s.find(cID, "camera")
		_, screen := s.find(cID, "screen")
		return !cam && !screen
	})
	if sa.Banner != "" {
		t.Errorf("a: error banner %q", sa.Banner)
	}
}
