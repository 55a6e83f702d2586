package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Random loss on a browser publisher's uplink: the publisher's Chromium is
// in the network namespace, and an nftables rule on the host's veth end
// drops a share of the UDP packets it sends (media, RTCP, retransmissions).
// A subscriber on the host watches.

// pubStatsJS reads the publisher connection's outbound audio and video
// counters (video by rid): what it sent, and what it resent on NACKs.
const pubStatsJS = `(async () => {
  const c = window.chorus || null;
  const pc = c && c.pcs && c.pcs.publisher;
  const out = {audio: null, video: {}, audioNack: false, videoFEC: false, outgoingBitrate: 0};
  if (!pc) return out;
  const sdp = pc.remoteDescription ? pc.remoteDescription.sdp : '';
  out.audioNack = /a=rtcp-fb:\d+ nack\r\n/.test(sdp.split('m=video')[0]);
  out.videoFEC = /a=rtpmap:\d+ ulpfec\/90000/.test(sdp.split('m=video')[1] || '');
  const stats = await pc.getStats();
  const keys = ['packetsSent', 'retransmittedPacketsSent', 'nackCount', 'framesEncoded', 'bytesSent'];
  const pick = (s) => { const o = {timestamp: s.timestamp}; for (const k of keys) if (typeof s[k] === 'number') o[k] = s[k]; return o; };
  let pairId = '';
  stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  stats.forEach(s => {
    if (s.type === 'candidate-pair' && s.id === pairId && typeof s.availableOutgoingBitrate === 'number')
      out.outgoingBitrate = s.availableOutgoingBitrate;
    if (s.type !== 'outbound-rtp') return;
    if (s.kind === 'audio' && !out.audio) out.audio = pick(s);
    if (s.kind === 'video') out.video[s.rid || ''] = pick(s);
  });
  return out;
})()`

type pubLossState struct {
	Audio     rtpCounters            `json:"audio"`
	Video     map[string]rtpCounters `json:"video"`
	AudioNack bool                   `json:"audioNack"`
	VideoFEC  bool                   `json:"videoFEC"`
	// OutgoingBitrate is the publisher's own bandwidth estimate (bit/s):
	// libwebrtc caps its retransmissions to it
	OutgoingBitrate float64 `json:"outgoingBitrate"`
}

// publisherFEC sums, over the video streams published in room, the FEC
// packets the server received and the media packets they rebuilt, and the
// retransmissions handed to the streams as they arrived.
func publisherFEC(s *testServer, room string) (fecPackets, rebuilt, repairs uint64) {
	r, ok := s.SFU().Rooms().Get(room)
	if !ok {
		return 0, 0, 0
	}
	for _, info := range r.Participants() {
		p, ok := r.FindParticipant(info.Name)
		if !ok {
			continue
		}
		for _, t := range p.Published() {
			for _, u := range t.Layers() {
				st := u.Stats()
				fecPackets += st.FECPackets
				rebuilt += st.FECRecovered
				repairs += st.Repairs
			}
		}
	}
	return fecPackets, rebuilt, repairs
}

// videoDelta is the change of a video counter between two samples: the
// largest over the layers for framesEncoded (every active layer encodes
// every frame; the browser pauses the upper ones when its uplink degrades),
// the sum for the others.
func (b pubLossState) videoDelta(a pubLossState, k string) float64 {
	var sum, most float64
	for rid, c := range b.Video {
		d := c.get(k) - a.Video[rid].get(k)
		sum += d
		most = max(most, d)
	}
	if k == "framesEncoded" {
		return most
	}
	return sum
}

// TestBrowserLossyPublisher: a Chromium publisher in a network namespace
// whose packets to the server are dropped at random (0%, 20%, 40% or
// lossLevels, lossWindow each), watched by a Chromium subscriber on the host. At 0%
// and 20% the subscriber keeps decoding video (no gap over maxDecodeGap),
// decodes at least minFrameShare of the frames the publisher encoded, and
// conceals at most maxConcealed of its audio samples; at 20% the publisher
// has answered audio NACKs (the web client offers them, the server asks).
// 40% is measured only. CHORUS_SHAPED=1 only, like the other
// lossy-link tests.
func TestBrowserLossyPublisher(t *testing.T) {
	if os.Getenv("CHORUS_SHAPED") != "1" {
		t.Skip("lossy-link browser test: set CHORUS_SHAPED=1 (it also needs root, ip and nft)")
	}
	w := newTestWriter(t)
	chromiumPath(t)
	nft := nftTool(t)
	n := newPathNetns(t)
	loss := n.newLossRuleOn(t, nft, true)
	s := startServerOn(t, w, n.hostIP+":0", n.hostIP)
	secure := chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.TrimSuffix(s.URL(), "/"))
	autoplay := chromedp.Flag("autoplay-policy", "no-user-gesture-required")
	nsB := n.newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure, autoplay)
	hostB := newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure, autoplay)
	start := time.Now()

	const room = "uploss"
	pub := nsB.newTab("pub")
	pub.navigate(roomURL(s, room, "pub"))
	ps, full, _ := waitThreeLayers(t, pub, start.Add(mediaDeadline))
	t.Logf("%6.1fs publisher encodes %s", time.Since(start).Seconds(), encodings(ps.Outbound))
	fullWidth := layerWidth(pub, "f", full.FrameWidth)

	sub := hostB.newTab("sub", denyMediaJS)
	viewStart := time.Now()
	sub.navigate(roomURL(s, room, "sub"))
	d := &decodingAt{tab: sub, width: fullWidth, since: viewStart}
	waitDecoding(t, viewStart.Add(mediaDeadline), d)
	poll(sub, time.Now().Add(uiDeadline), "audio samples played out", sub.lossSnapshot, func(s lossState) bool {
		return s.Audio.get("packetsReceived") > 0 && s.Audio.get("totalSamplesReceived") > 0
	})
	pubSnap := func() pubLossState {
		t.Helper()
		st, err := evaluate[pubLossState](pub, pubStatsJS)
		if err != nil {
			t.Fatalf("publisher stats: %v", err)
		}
		return st
	}
	subSnap := func() lossState {
		t.Helper()
		st, err := sub.lossSnapshot()
		if err != nil || st.Video == nil || st.Audio == nil {
			t.Fatalf("subscriber stats: %v %s", err, st)
		}
		return st
	}
	if st := pubSnap(); !st.AudioNack || st.VideoFEC != s.pubFEC {
		t.Errorf("the server's answer: audio NACKs %v (want true), video ULPFEC %v (want %v)", st.AudioNack, st.VideoFEC, s.pubFEC)
	}

	type row struct {
		percent                    int
		concealed, frames, encoded float64
		samples                    float64
		gap                        time.Duration
		audioNacks, audioResent    float64
		videoNacks, videoResent    float64
		freezes, freezeTime        float64
		arrived, dropped           uint64
		fec, rebuilt, repairs      uint64
		estimate                   float64 // the publisher's, at the end of the level
	}
	var rows []row
	for _, lv := range lossLevels(t) {
		loss.set(t, lv.percent)
		phaseStart := time.Now()
		s0, p0 := subSnap(), pubSnap()
		fec0, rebuilt0, rep0 := publisherFEC(s, room)
		vp := newProgress("framesDecoded", s0.Video)
		var s1 lossState
		for time.Since(phaseStart) < lossWindow {
			time.Sleep(pollInterval)
			s1 = subSnap()
			vp.see(s1.Video)
		}
		p1 := pubSnap()
		fec1, rebuilt1, rep1 := publisherFEC(s, room)
		r := row{percent: lv.percent, gap: vp.stall(), fec: fec1 - fec0, rebuilt: rebuilt1 - rebuilt0, repairs: rep1 - rep0,
			estimate: p1.OutgoingBitrate}
		delta := func(a, b rtpCounters, k string) float64 { return b.get(k) - a.get(k) }
		r.concealed = delta(s0.Audio, s1.Audio, "concealedSamples")
		r.samples = delta(s0.Audio, s1.Audio, "totalSamplesReceived")
		r.frames = delta(s0.Video, s1.Video, "framesDecoded")
		r.encoded = p1.videoDelta(p0, "framesEncoded")
		r.freezes = delta(s0.Video, s1.Video, "freezeCount")
		r.freezeTime = delta(s0.Video, s1.Video, "totalFreezesDuration")
		r.audioNacks, r.audioResent = delta(p0.Audio, p1.Audio, "nackCount"), delta(p0.Audio, p1.Audio, "retransmittedPacketsSent")
		r.videoNacks, r.videoResent = p1.videoDelta(p0, "nackCount"), p1.videoDelta(p0, "retransmittedPacketsSent")
		var err error
		if r.arrived, r.dropped, err = loss.counters(); err != nil {
			t.Errorf("loss %d%%: %v", lv.percent, err)
		}
		rows = append(rows, r)
		conceal := 0.0
		if r.samples > 0 {
			conceal = r.concealed / r.samples
		}
		t.Logf("%6.1fs uplink loss %d%% (nft dropped %d of %d): audio concealed %.2f%%, audio NACKs %v resent %v; "+
			"video decoded %v of %v encoded, longest gap %v, freezes %v (%.2f s), video NACKs %v resent %v, FEC packets %d rebuilt %d, retransmissions through the RTX tap %d; "+
			"publisher's estimate %.0f kbit/s",
			time.Since(start).Seconds(), lv.percent, r.dropped, r.arrived, 100*conceal, r.audioNacks, r.audioResent,
			r.frames, r.encoded, r.gap.Round(10*time.Millisecond), r.freezes, r.freezeTime, r.videoNacks, r.videoResent,
			r.fec, r.rebuilt, r.repairs, r.estimate/1000)
		if !lv.asserted {
			continue
		}
		if r.gap > maxDecodeGap {
			t.Errorf("uplink loss %d%%: no video frame decoded for %v, want at most %v", lv.percent, r.gap, maxDecodeGap)
		}
		if r.encoded <= 0 || r.frames < minFrameShare*r.encoded {
			t.Errorf("uplink loss %d%%: %v frames decoded of %v encoded, want at least %.0f%%", lv.percent, r.frames, r.encoded, 100*minFrameShare)
		}
		if r.samples <= 0 || conceal > maxConcealed {
			t.Errorf("uplink loss %d%%: %.2f%% of %v audio samples concealed, want at most %.0f%%", lv.percent, 100*conceal, r.samples, 100*maxConcealed)
		}
		if lv.percent > 0 && r.audioResent <= 0 {
			t.Errorf("uplink loss %d%%: the publisher resent no audio (%v audio NACKs received)", lv.percent, r.audioNacks)
		}
	}
	loss.set(t, 0)
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  %2d%%: audio concealed %.2f%% (publisher resent %v on %v NACKs) | video %v/%v frames, longest gap %v, %v freezes (%.2f s), FEC %d rebuilt %d | publisher's estimate %.0f kbit/s",
			r.percent, 100*r.concealed/max(r.samples, 1), r.audioResent, r.audioNacks, r.frames, r.encoded,
			r.gap.Round(10*time.Millisecond), r.freezes, r.freezeTime, r.fec, r.rebuilt, r.estimate/1000)
	}
	t.Logf("summary (publisher uplink, %v per level):%s", lossWindow, b.String())
}
