package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/sfu"
)

// The limited subscriber's link, shaped on the server's side of its veth.
// With Chromium's default simulcast rates, the lowest layer (320x180, up to
// about 220 kbit/s with RTP overhead) and the audio fit with room for
// keyframes; the middle one (640x360, about 350-500 kbit/s) does not. (At
// 300 kbit/s the lowest layer and audio alone keep the queue standing.) The small burst makes the
// bucket a rate limit rather than a credit that lets a probe through; the
// queue (about 0.5 s at capRate) is that of a real access link.
const (
	capRate  = "360kbit"
	capBurst = "4kb"
	capQueue = 19000 // bytes
)

const (
	// downDeadline bounds the time from applying the limit until the limited
	// subscriber decodes the lowest layer; upDeadline the time from lifting
	// it until it decodes the full layer again.
	downDeadline = 10 * time.Second
	upDeadline   = 20 * time.Second
	// holdTime: how long the limited subscriber must stay on the lowest layer
	// under the limit, without a freeze, while the server probes for more.
	holdTime = 10 * time.Second
	// settleFrames: frames decoded after a switch before its freezeCount is
	// read (a freeze is counted when the late frame is rendered).
	settleFrames = 20
	// The downgrade's freeze budget. When the link falls from about
	// 1 Mbit/s to capRate at once, full-layer packets already in the
	// bottleneck's half-second queue are late or lost before the server can
	// react, and the lowest layer's keyframe waits behind them: one freeze
	// of under a second is the link's doing. The hold and the return allow
	// none. (Measured over runs: see docs/benchmarks.md.)
	downFreezes    = 1
	downFreezeTime = 1.0 // seconds of totalFreezesDuration
)

// startServerOn is startServer with the HTTP listener and the media bound to
// the given addresses.
func startServerOn(t *testing.T, w *testWriter, listen, udpIP string) *testServer {
	t.Helper()
	return startServerWith(t, w, server.Config{Listen: listen, UDPIP: udpIP})
}

// estimateLog samples a participant's bandwidth estimate (the server's view
// of its subscriber connection) in the background, with marks of the
// test's phases in between.
type estimateLog struct {
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	lines []string
}

// watchEstimate samples participant name's subscriber connection and the
// limit of n every 500 ms until the test ends or log is called.
func watchEstimate(t *testing.T, s *testServer, n *netns, room, name string, start time.Time) *estimateLog {
	l := &estimateLog{start: start, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			r, ok := s.SFU().Rooms().Get(room)
			if !ok {
				continue
			}
			p, ok := r.FindParticipant(name)
			if !ok {
				continue
			}
			st := p.BandwidthStats()
			var video sfu.DownTrackStats
			for _, d := range p.Subscriptions() {
				if d.Kind() == webrtc.RTPCodecTypeVideo {
					video = d.Stats()
				}
			}
			l.add(fmt.Sprintf("estimate %5d kbit/s, received %5d kbit/s, queue %4v, loss %.2f, %-8v | video: %d resent, "+
				"%d NACKs over budget, %d stale, %d PLIs, %d padding | %s",
				st.Estimate/1000, st.ReceiveRate/1000, st.QueueDelay.Round(time.Millisecond), st.Loss, st.State,
				video.Retransmissions, video.NACKsOverBudget, video.NACKsStale, video.KeyframeAsks, video.PaddingPackets,
				n.queueCounters()))
		}
	}()
	t.Cleanup(l.close)
	return l
}

func (l *estimateLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%6.1fs %s", time.Since(l.start).Seconds(), line))
}

// close stops the sampling and waits for it.
func (l *estimateLog) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// log stops the sampling and logs what it saw.
func (l *estimateLog) log(t *testing.T) {
	l.close()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("limited subscriber's connection as the server saw it:\n  %s", strings.Join(l.lines, "\n  "))
}

// waitThreeLayers waits until the publisher encodes three simulcast layers and
// returns its state and the rids' widths.
func waitThreeLayers(t *testing.T, pub *tab, deadline time.Time) (simState, outboundVideo, outboundVideo) {
	t.Helper()
	ps := pub.waitSim(deadline, "the publisher to encode three simulcast layers", func(s simState) bool {
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
	return ps, full, low
}

// recoveryJS reads the counters that explain a freeze: on a subscriber,
// its inbound video (losses, NACKs and keyframe requests it sent, frames it
// dropped) and the round trip of its transport; on a publisher, the
// keyframe requests each rid received and the keyframes it encoded.
const recoveryJS = `(async () => {
  const pcs = (window.chorus && window.chorus.pcs) || {};
  const out = {in: [], out: [], rtt: 0};
  if (pcs.subscriber) (await pcs.subscriber.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.in.push({lost: s.packetsLost || 0, nacks: s.nackCount || 0,
      plis: s.pliCount || 0, firs: s.firCount || 0, dropped: s.framesDropped || 0, received: s.packetsReceived || 0});
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out.rtt = s.currentRoundTripTime || 0;
  });
  if (pcs.publisher) (await pcs.publisher.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out.out.push({rid: s.rid || '', plis: s.pliCount || 0,
      firs: s.firCount || 0, nacks: s.nackCount || 0, keyFrames: s.keyFramesEncoded || 0});
  });
  return out;
})()`

type recoveryStats struct {
	In []struct {
		Lost     float64 `json:"lost"`
		NACKs    float64 `json:"nacks"`
		PLIs     float64 `json:"plis"`
		FIRs     float64 `json:"firs"`
		Dropped  float64 `json:"dropped"`
		Received float64 `json:"received"`
	} `json:"in"`
	Out []struct {
		RID       string  `json:"rid"`
		PLIs      float64 `json:"plis"`
		FIRs      float64 `json:"firs"`
		NACKs     float64 `json:"nacks"`
		KeyFrames float64 `json:"keyFrames"`
	} `json:"out"`
	RTT float64 `json:"rtt"`
}

// recoveryOf summarises recoveryJS on a tab.
func recoveryOf(tb *tab) string {
	r, err := evaluate[recoveryStats](tb, recoveryJS)
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, v := range r.In {
		parts = append(parts, fmt.Sprintf("received %v packets, lost %v, sent %v NACKs, %v PLIs, %v FIRs; %v frames dropped",
			v.Received, v.Lost, v.NACKs, v.PLIs, v.FIRs, v.Dropped))
	}
	for _, v := range r.Out {
		parts = append(parts, fmt.Sprintf("%s: %v PLIs, %v FIRs received, %v keyframes encoded", v.RID, v.PLIs, v.FIRs, v.KeyFrames))
	}
	if r.RTT > 0 {
		parts = append(parts, fmt.Sprintf("RTT %.0f ms", r.RTT*1000))
	}
	return strings.Join(parts, "; ")
}

// layerWatch follows one track on a tab: it logs every change of the layer
// the server reports and of the decoded size, and every stall (no frame
// decoded between two samples further apart than stallLog).
type layerWatch struct {
	t     *testing.T
	tab   *tab
	track string
	start time.Time
	last  string

	frames   float64
	progress time.Time // when framesDecoded last went up

	seen map[layerInfo]time.Time // when each layer report was first seen
}

const stallLog = 300 * time.Millisecond

func (lw *layerWatch) see(s simState) {
	now := time.Now()
	v, _ := s.video(lw.track)
	l := s.Layers[lw.track]
	if _, ok := lw.seen[l]; !ok {
		if lw.seen == nil {
			lw.seen = map[layerInfo]time.Time{}
		}
		lw.seen[l] = now
	}
	line := fmt.Sprintf("layer %d (%s), decoding %dx%d, freezeCount %v", l.Layer, l.Reason, v.FrameWidth, v.FrameHeight, v.FreezeCount)
	if line != lw.last {
		lw.t.Logf("%6.1fs %s: %s", now.Sub(lw.start).Seconds(), lw.tab.name, line)
		lw.last = line
	}
	if v.FramesDecoded > lw.frames {
		if !lw.progress.IsZero() && now.Sub(lw.progress) > stallLog {
			lw.t.Logf("%6.1fs %s: no frame decoded for %v before this sample",
				now.Sub(lw.start).Seconds(), lw.tab.name, now.Sub(lw.progress).Round(10*time.Millisecond))
		}
		lw.frames, lw.progress = v.FramesDecoded, now
	}
}

// reported waits until the server's latest report for the track is layer
// for reason, and returns when that report was first seen.
func (lw *layerWatch) reported(deadline time.Time, layer int, reason string) (time.Time, simState) {
	lw.t.Helper()
	s := lw.wait(deadline, fmt.Sprintf("layerChanged %d (%s)", layer, reason), func(s simState) bool {
		l, ok := s.Layers[lw.track]
		return ok && l.Layer == layer && l.Reason == reason
	})
	return lw.seen[s.Layers[lw.track]], s
}

// snapshot samples the tab.
func (lw *layerWatch) snapshot() (simState, error) {
	s, err := lw.tab.simSnapshot()
	if err == nil {
		lw.see(s)
	}
	return s, err
}

// wait polls the tab until cond holds.
func (lw *layerWatch) wait(deadline time.Time, what string, cond func(simState) bool) simState {
	lw.t.Helper()
	return poll(lw.tab, deadline, what, lw.snapshot, cond)
}

// waitWidth polls the tab until it decodes the track at the wanted width in
// two samples in a row with framesDecoded going up; it returns the time
// since since.
func (lw *layerWatch) waitWidth(deadline time.Time, since time.Time, width func() int) (time.Duration, simState) {
	lw.t.Helper()
	var prev *inboundVideo
	s := lw.wait(deadline, fmt.Sprintf("decoding %s at the wanted width", lw.track), func(s simState) bool {
		v, ok := s.video(lw.track)
		if !ok || v.FrameWidth != width() {
			prev = nil
			return false
		}
		if prev != nil && v.FramesDecoded > prev.FramesDecoded {
			return true
		}
		prev = &v
		return false
	})
	return time.Since(since), s
}

// settled polls the tab until it decoded n more frames of the track than in
// s, and returns the state then.
func (lw *layerWatch) settled(s simState, n float64) simState {
	lw.t.Helper()
	v0, _ := s.video(lw.track)
	return lw.wait(time.Now().Add(uiDeadline), fmt.Sprintf("%v more decoded frames", n), func(s simState) bool {
		v, _ := s.video(lw.track)
		return v.FramesDecoded >= v0.FramesDecoded+n
	})
}

// TestBrowserRateLimitedSimulcast: a Chromium publisher sends three
// simulcast layers to two Chromium subscribers. One of them runs in a
// network namespace behind a real rate limit (tc HTB on its veth): once the
// limit is on, the server's bandwidth estimate moves it to the lowest layer
// while the unconstrained subscriber keeps decoding the full layer; when the
// limit is lifted it returns to the full layer. freezeCount does not rise
// on the lowest layer nor at the return, and at the downgrade no more than
// the link itself makes unavoidable (see downFreezes).
//
// The timings it logs are those of docs/benchmarks.md: time to downgrade,
// time back to the full layer, freezes, and the server's estimate.
//
// It runs only with CHORUS_SHAPED=1 (scripts/shaped.sh): three Chromium
// instances encoding and decoding 720p on a 2-core machine make its
// freeze counts depend on CPU load as much as on the server, so it is a
// measurement run several times, not part of the default suite.
func TestBrowserRateLimitedSimulcast(t *testing.T) {
	if os.Getenv("CHORUS_SHAPED") != "1" {
		t.Skip("shaped-link browser test: set CHORUS_SHAPED=1 (see scripts/shaped.sh)")
	}
	w := newTestWriter(t)
	chromiumPath(t)
	n := newNetns(t)
	// The publisher and the free subscriber reach the server's veth address
	// over local routing, the limited subscriber over the veth. Media is
	// bound to that address only.
	s := startServerOn(t, w, n.hostIP+":0", n.hostIP)
	// The page is not on localhost: let it use the camera and the
	// secure-context APIs as if it were.
	secure := chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.TrimSuffix(s.URL(), "/"))
	// Windows large enough for a remote tile that asks for the full layer
	// (as in TestBrowserSimulcast).
	hostB := newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure)
	nsB := n.newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure)
	start := time.Now()
	t.Logf("namespace %s: server %s (media on %s), limited subscriber at %s", n.name, s.URL(), n.hostIP, n.nsIP)

	const room = "ratelimit"
	pub := hostB.newTab("pub")
	pub.navigate(roomURL(s, room, "pub"))
	ps, full, low := waitThreeLayers(t, pub, start.Add(mediaDeadline))
	t.Logf("%6.1fs publisher encodes %s", time.Since(start).Seconds(), encodings(ps.Outbound))
	if full.FrameWidth != 1280 || low.FrameWidth != 320 {
		t.Logf("note: the layers are %d and %d wide, not 1280 and 320", full.FrameWidth, low.FrameWidth)
	}
	fullWidth := layerWidth(pub, "f", full.FrameWidth)
	lowWidth := layerWidth(pub, "q", low.FrameWidth)

	est := watchEstimate(t, s, n, room, "limited", start)
	free := hostB.newTab("free", denyMediaJS)
	limited := nsB.newTab("limited", denyMediaJS)
	viewStart := time.Now()
	free.navigate(roomURL(s, room, "free"))
	limited.navigate(roomURL(s, room, "limited"))
	dFree := &decodingAt{tab: free, width: fullWidth, since: viewStart}
	dLim := &decodingAt{tab: limited, width: fullWidth, since: viewStart}
	waitDecoding(t, viewStart.Add(mediaDeadline), dFree, dLim)
	t.Logf("%6.1fs both subscribers decode the full layer: free after %v, limited after %v",
		time.Since(start).Seconds(), dFree.took.Round(time.Millisecond), dLim.took.Round(time.Millisecond))
	if len(dLim.state.Inbound) != 1 {
		t.Fatalf("limited: %d inbound video streams, want 1: %s", len(dLim.state.Inbound), dLim.state)
	}
	track := dLim.state.Inbound[0].Track
	lw := &layerWatch{t: t, tab: limited, track: track, start: start}
	_, before := lw.reported(time.Now().Add(uiDeadline), 2, "best")
	before = lw.settled(before, settleFrames)

	// The free subscriber is the control: a freeze there as well means the
	// machine, not the link, fell short (every decoder runs in software).
	snap := func(tb *tab) simState {
		t.Helper()
		st, err := tb.simSnapshot()
		if err != nil {
			t.Fatalf("%s: %v", tb.name, err)
		}
		return st
	}
	phase := func(what string) simState {
		t.Helper()
		t.Logf("%6.1fs %s: limited %s | publisher %s", time.Since(start).Seconds(), what, recoveryOf(limited), recoveryOf(pub))
		return snap(free)
	}
	freeBefore := phase("before the limit")

	// Limit the link.
	est.add("limit " + capRate + " on")
	capped := time.Now()
	n.limit(t, capRate, capBurst, capQueue)
	t.Logf("%6.1fs limit %s, burst %s, queue %d bytes on (%s UTC)", capped.Sub(start).Seconds(), capRate, capBurst, capQueue,
		capped.UTC().Format("15:04:05.000"))
	down, _ := lw.waitWidth(capped.Add(downDeadline), capped, lowWidth)
	downSeen, low1 := lw.reported(time.Now().Add(uiDeadline), 0, "bandwidth")
	low1 = lw.settled(low1, settleFrames)
	freeLow1 := phase("on the lowest layer")

	// Hold: the limited subscriber stays on the lowest layer while the free
	// one keeps the full layer.
	for holdEnd := time.Now().Add(holdTime); time.Now().Before(holdEnd); time.Sleep(pollInterval) {
		ls, err := lw.snapshot()
		if err != nil {
			t.Fatalf("limited: %v", err)
		}
		if v, _ := ls.video(track); v.FrameWidth != lowWidth() {
			t.Errorf("%6.1fs limited left the lowest layer under the limit: %s", time.Since(start).Seconds(), ls)
			break
		}
		fs := snap(free)
		if v, _ := fs.video(track); v.FrameWidth != fullWidth() {
			t.Errorf("%6.1fs free does not decode the full layer while limited is limited: %s", time.Since(start).Seconds(), fs)
			break
		}
	}
	low2, err := lw.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	freeLow2 := phase("end of the hold")
	tcStats := n.qdiscStats()

	// Lift the limit.
	est.add("limit off")
	lifted := time.Now()
	n.unlimit(t)
	t.Logf("%6.1fs limit off (%s UTC)", lifted.Sub(start).Seconds(), lifted.UTC().Format("15:04:05.000"))
	up, _ := lw.waitWidth(lifted.Add(upDeadline), lifted, fullWidth)
	upSeen, after := lw.reported(time.Now().Add(uiDeadline), 2, "best")
	after = lw.settled(after, settleFrames)
	freeAfter := phase("back on the full layer")
	est.log(t)

	// The numbers for docs/benchmarks.md.
	v := func(s simState) inboundVideo { vi, _ := s.video(track); return vi }
	t.Logf("tc at the end of the hold: %s", tcStats)
	t.Logf("downgrade: layerChanged 0 (bandwidth) seen %v after the limit went on, %dx%d decoded after %v; "+
		"freezeCount %v -> %v, totalFreezesDuration %.3f -> %.3f s, keyFramesDecoded %v -> %v",
		downSeen.Sub(capped).Round(time.Millisecond), v(low1).FrameWidth, v(low1).FrameHeight, down.Round(time.Millisecond),
		v(before).FreezeCount, v(low1).FreezeCount, v(before).TotalFreezesDuration, v(low1).TotalFreezesDuration,
		v(before).KeyFramesDecoded, v(low1).KeyFramesDecoded)
	t.Logf("hold on the lowest layer (%v): freezeCount %v -> %v, totalFreezesDuration %.3f -> %.3f s",
		holdTime, v(low1).FreezeCount, v(low2).FreezeCount, v(low1).TotalFreezesDuration, v(low2).TotalFreezesDuration)
	t.Logf("return: layerChanged 2 (best) seen %v after the limit was lifted, %dx%d decoded after %v; "+
		"freezeCount %v -> %v, totalFreezesDuration %.3f -> %.3f s, keyFramesDecoded %v -> %v",
		upSeen.Sub(lifted).Round(time.Millisecond), v(after).FrameWidth, v(after).FrameHeight, up.Round(time.Millisecond),
		v(low2).FreezeCount, v(after).FreezeCount, v(low2).TotalFreezesDuration, v(after).TotalFreezesDuration,
		v(low2).KeyFramesDecoded, v(after).KeyFramesDecoded)
	t.Logf("free (the control) freezeCount over the same phases: %v -> %v -> %v -> %v; publisher: %s",
		v(freeBefore).FreezeCount, v(freeLow1).FreezeCount, v(freeLow2).FreezeCount, v(freeAfter).FreezeCount,
		encodings(snap(pub).Outbound))

	control := func(from, to simState) string {
		return fmt.Sprintf("(free, the control: freezeCount %v -> %v)", v(from).FreezeCount, v(to).FreezeCount)
	}
	if d, dt := v(low1).FreezeCount-v(before).FreezeCount, v(low1).TotalFreezesDuration-v(before).TotalFreezesDuration; d > downFreezes || dt > downFreezeTime {
		t.Errorf("limited: %v freezes lasting %.3f s in all at the downgrade, want at most %v and %v s %s",
			d, dt, downFreezes, downFreezeTime, control(freeBefore, freeLow1))
	}
	if a, b := v(low1).FreezeCount, v(low2).FreezeCount; b > a {
		t.Errorf("limited: freezeCount went from %v to %v on the lowest layer under the limit %s", a, b, control(freeLow1, freeLow2))
	}
	if a, b := v(low2).FreezeCount, v(after).FreezeCount; b > a {
		t.Errorf("limited: freezeCount went from %v to %v across the return to the full layer %s", a, b, control(freeLow2, freeAfter))
	}
	if v(freeAfter).FrameWidth != fullWidth() {
		t.Errorf("free does not decode the full layer at the end: %s", freeAfter)
	}
	for _, st := range []simState{freeAfter, after} {
		if st.Banner != "" {
			t.Errorf("error banner %q", st.Banner)
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
