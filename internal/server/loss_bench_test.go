package server_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/sfu"
)

// Timing of one row of BenchmarkLossResilience.
const (
	// lrWarmup runs with the loss before measuring: receiver reports
	// (every second) tell the SFU the loss, which sizes the redundancy.
	lrWarmup = 3 * time.Second
	// lrMeasure: the frames sent in this window are the ones measured.
	lrMeasure = 15 * time.Second
	// lrTail: media keeps flowing this long after the window, so that the
	// window's last frames get their repairs and deadlines.
	lrTail = time.Second
)

// lrUplinkREDDistance is the redundancy of the RED publisher of the uplink
// rows: one previous frame per packet, what Chrome sends when it negotiates
// RED (its encoder's fixed default since M96).
const lrUplinkREDDistance = 1

// lrRow is one row of the benchmark's table.
type lrRow struct {
	uplink       bool
	loss         int     // configured, percent
	measuredLoss float64 // RTP packets dropped on the lossy leg in the window
	audioLegLoss float64 // of them, audio packets

	audioConceal, audioResidual, audioOverhead float64
	video                                      lrVideoStats
	videoOverhead                              float64
	window                                     time.Duration

	// mechanisms
	keyframes, modelPLIs                int
	estMin, estMedian                   int // subscriber estimate in the window, bit/s
	audioDT, videoDT                    sfu.DownTrackStats
	fecRecovered                        int
	nacks                               int // sequence numbers the subscriber NACKed (retries included)
	pubRTX, upLost                      int // uplink rows: publisher retransmissions, video packets lost upstream
	pubFEC, pubFECRebuilt               int // uplink rows: the publisher's FEC packets the SFU got, and what they rebuilt
	subDups, subPkts, refDups, refPkts  int // video packets to the subscribers that repeat a sequence number
	stalls                              int
	stallTime                           time.Duration
	refAudioConceal, refVideoIncomplete float64
	failures                            string // the first incomplete frames
}

func (r lrRow) leg() string {
	if r.uplink {
		return "publisher uplink"
	}
	return "subscriber downlink"
}

func pct(x float64) float64 { return 100 * x }

// BenchmarkLossResilience measures what a subscriber gets through random
// packet loss on its downlink, and separately on the publisher's uplink, at
// 0, 10, 20, 40, 60 and 80 %, over a 50 ms round trip on each leg.
//
//	go test ./internal/server -run '^$' -bench LossResilience -benchtime 1x -v
//
// Each row is a fresh server and three pion peers on a vnet (lrNet, every
// hop 25 ms one way): a publisher sending 20 ms Opus frames (plain Opus for
// the downlink rows, so that the SFU builds RED; RED with
// lrUplinkREDDistance for the uplink rows) and VP8 at 30 fps, ~500 kbit/s:
// two 1,040-byte packets per inter frame, eight per keyframe, keyframes at
// the start and on PLI only, NACKs answered by pion's responder (RTX); the
// subscriber under test, which accepts audio RED and video RED+ULPFEC (as a
// browser does), NACKs as a browser does (lrNacker) and decodes video as
// lrVideoModel says; and a reference subscriber on a lossless link that
// accepts neither, whose received bytes are the media bytes the overhead is
// measured against. The loss is drawn per packet from a seeded generator,
// RTP and RTCP alike (STUN and DTLS pass), in the router. Measured: the
// frames sent during lrMeasure, after lrWarmup.
//
//   - audio concealed: frames not received (directly or from redundancy)
//     within 400 ms of being sent, over frames sent; residual: never;
//   - video complete: frames whose every packet arrived within 400 ms;
//     decoded: complete, and every frame back to a keyframe decoded too;
//   - freezes: Chrome's definition over the frames rendered (lrVideoModel);
//   - video residual: packets never received at all (FEC and NACK failed);
//   - overhead: RTP bytes (SRTP packets) sent on the lossy leg, per kind
//     (the SFU's to the subscriber, or the publisher's to the SFU), over the
//     bytes the reference subscriber received, minus one: RED copies, FEC,
//     retransmissions and their headers.
//
// Environment: CHORUS_LOSS_TEMPORAL=1 gives the publisher's VP8 three
// temporal layers, as Chrome encodes each simulcast stream, and the model
// skips late frames nothing needs (loss_temporal_test.go);
// CHORUS_LOSS_PUB_FEC=1 has the uplink publisher send FEC as Chrome sizes
// it (and the server accept it); CHORUS_LOSS_PION_NACK=1 lets the subscriber NACK with pion's
// generator instead (and leaves RTX out); CHORUS_LOSS_NO_RTX=1 leaves RTX
// out (retransmissions then show in the trace); CHORUS_LOSS_WINDOW=60s
// measures a longer window than lrMeasure; CHORUS_LOSS_TIMELINE=1 logs the estimate and the video
// down track's counters every 250 ms; CHORUS_LOSS_TRACE=1 logs, for the
// incomplete frames, when each packet was sent on the lossy leg, dropped,
// NACKed and received.
func BenchmarkLossResilience(b *testing.B) {
	var rows []lrRow
	for _, uplink := range []bool{false, true} {
		name := "down"
		if uplink {
			name = "up"
		}
		b.Run(name, func(b *testing.B) {
			for _, loss := range []int{0, 10, 20, 40, 60, 80} {
				b.Run(fmt.Sprintf("loss=%d", loss), func(b *testing.B) {
					r := runLossRow(b, uplink, loss)
					b.ReportMetric(pct(r.measuredLoss), "loss-%")
					b.ReportMetric(pct(r.audioConceal), "audio-concealed-%")
					b.ReportMetric(pct(r.audioOverhead), "audio-overhead-%")
					b.ReportMetric(pct(float64(r.video.decoded)/float64(r.video.frames)), "video-decoded-%")
					b.ReportMetric(float64(r.video.freezes)/r.window.Minutes(), "freezes/min")
					b.ReportMetric(r.video.freezeTime.Seconds(), "freeze-s")
					b.ReportMetric(pct(float64(r.video.packetsLost)/float64(r.video.packets)), "video-residual-%")
					b.ReportMetric(pct(r.videoOverhead), "video-overhead-%")
					b.ReportMetric(0, "ns/op") // the time per op means nothing here
					b.Log(r.detail())
					if r.failures != "" {
						b.Log("incomplete frames: " + r.failures)
					}
					rows = append(rows, r)
				})
			}
		})
	}
	if len(rows) > 0 {
		b.Log("\n" + lrTable(rows))
	}
}

// lrWindow is lrMeasure, or CHORUS_LOSS_WINDOW (a Go duration, such as
// 60s) for rows measured longer than the table's.
func lrWindow(b *testing.B) time.Duration {
	v := os.Getenv("CHORUS_LOSS_WINDOW")
	if v == "" {
		return lrMeasure
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("CHORUS_LOSS_WINDOW=%q: want a positive duration", v)
	}
	return d
}

// runLossRow runs one configuration and measures it.
func runLossRow(b *testing.B, uplink bool, lossPct int) lrRow {
	leg := lrLeg{lrSFUIP, lrSubIP}
	seed := uint64(100 + lossPct)
	if uplink {
		leg, seed = lrLeg{lrPubIP, lrSFUIP}, uint64(200+lossPct)
	}
	n := newLRNet(b, leg, float64(lossPct)/100, seed)
	// CHORUS_LOSS_PUB_FEC=1: the server accepts publisher FEC (off by
	// default) and the uplink rows' publisher sends it as Chrome sizes it
	pubFEC := uplink && os.Getenv("CHORUS_LOSS_PUB_FEC") != ""
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: lrSFUIP, Net: n.nets[lrSFUIP], Logger: testLogger(),
		PublisherFEC: pubFEC})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := deadline(b, 75*time.Second+lrWindow(b)) // 90 s for the table's rows
	stalls := startLRStalls(b)

	// the subscriber NACKs as a browser does, unless asked to use pion's
	// generator (to compare)
	var nacker *lrNacker
	var first []interceptor.Factory
	trace := os.Getenv("CHORUS_LOSS_TRACE") != ""
	if os.Getenv("CHORUS_LOSS_PION_NACK") == "" {
		nacker = newLRNacker(b, trace)
		first = append(first, nacker)
	}
	subRTX := nacker != nil && os.Getenv("CHORUS_LOSS_NO_RTX") == ""
	sub := newPeer(b, s, "room", "sub", n.api(b, lrSubIP, lrBrowserSubscriberCodecs(subRTX), first...))
	ref := newPeer(b, s, "room", "ref", n.api(b, lrRefIP, lrPlainCodecs))
	pubCodecs := lrPlainCodecs
	if uplink {
		pubCodecs = lrREDPublisherCodecs
		if pubFEC {
			pubCodecs = lrFECPublisherCodecs
		}
	}
	pub := newPeer(b, s, "room", "pub", n.api(b, lrPubIP, pubCodecs))
	var audio *mediatest.Source
	if uplink {
		audio, err = mediatest.NewREDSource("audio-pub", "stream-pub", lrUplinkREDDistance)
	} else {
		audio, err = mediatest.NewAudioSource("audio-pub", "stream-pub")
	}
	if err != nil {
		b.Fatal(err)
	}
	// CHORUS_LOSS_TEMPORAL=1: the publisher's VP8 has three temporal
	// layers, as Chrome sends each simulcast stream (loss_temporal_test.go)
	temporal := os.Getenv("CHORUS_LOSS_TEMPORAL") != ""
	video := newLRVideoSource(b, "video-pub", "stream-pub", pubFEC, temporal)
	senders, err := pub.c.Publish(ctx, audio.Track, video.Track)
	if err != nil {
		b.Fatal(err)
	}
	go audio.ReadRTCP(senders[0])
	go video.readRTCP(senders[1])
	pubAudioSSRC := uint32(senders[0].GetParameters().Encodings[0].SSRC)
	pubVideo := senders[1].GetParameters().Encodings[0]
	pubVideoSSRC, pubRTXSSRC := uint32(pubVideo.SSRC), uint32(pubVideo.RTX.SSRC)
	if uplink {
		n.seedStream(pubAudioSSRC, 1)
		n.seedStream(pubVideoSSRC, 2)
		n.seedStream(pubRTXSSRC, 3)
	}
	ap := startLRAudio(b, audio)
	lrEvery(b, lrFrameInterval, video.writeFrame)

	sa := sub.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	sv := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	ra := ref.sink(ctx, webrtc.RTPCodecTypeAudio, "")
	rv := ref.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	if !sa.RED() || ra.RED() {
		b.Fatalf("audio: the subscriber receives %s, the reference %s", sa.Track.Codec().MimeType, ra.Track.Codec().MimeType)
	}
	videoSSRC := uint32(sv.Track.SSRC())
	if !uplink {
		n.seedStream(uint32(sa.Track.SSRC()), 1)
		n.seedStream(videoSSRC, 2)
		n.seedStream(uint32(sv.Track.RtxSSRC()), 3)
	}
	if nacker != nil {
		nacker.setSink(sv)
	}
	model := startLRVideoModel(b, video, sv, nacker, func() error {
		pc := sub.c.Subscriber()
		if pc == nil {
			return nil
		}
		return pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: videoSSRC}})
	})
	room, ok := s.SFU().Rooms().Get("room")
	if !ok {
		b.Fatal("no room")
	}
	sp, ok := room.FindParticipant("sub")
	if !ok {
		b.Fatal("no subscriber")
	}
	type estSample struct {
		at       time.Time
		estimate int
	}
	var estMu sync.Mutex
	var ests []estSample
	var timeline []string
	t0 := time.Now()
	var lastA, lastV sfu.DownTrackStats
	lrEvery(b, 250*time.Millisecond, func() error {
		st := sp.BandwidthStats()
		a, v := lrDownTrackStats(sp)
		da, dv := lrStatsDiff(a, lastA), lrStatsDiff(v, lastV)
		lastA, lastV = a, v
		estMu.Lock()
		defer estMu.Unlock()
		ests = append(ests, estSample{time.Now(), st.Estimate})
		timeline = append(timeline, fmt.Sprintf("%5.2fs estimate %5d kbit/s loss %.2f %-8s | audio %3d pkts | video %3d pkts %3d FEC %3d rtx %3d over budget %3d stale %3d missed",
			time.Since(t0).Seconds(), st.Estimate/1000, st.Loss, st.State, da.Packets, dv.Packets, dv.FECPackets,
			dv.Retransmissions, dv.NACKsOverBudget, dv.NACKsStale, dv.NACKsMissed))
		return nil
	})
	if os.Getenv("CHORUS_LOSS_TIMELINE") != "" {
		b.Cleanup(func() {
			estMu.Lock()
			defer estMu.Unlock()
			b.Log("every 250 ms (counts per interval):\n" + strings.Join(timeline, "\n"))
		})
	}

	upVideo := func() (st sfu.UpTrackStats) {
		if pp, ok := room.FindParticipant("pub"); ok {
			for _, t := range pp.Published() {
				if t.Info().Kind == webrtc.RTPCodecTypeVideo {
					for _, u := range t.Layers() {
						st = u.Stats()
					}
				}
			}
		}
		return st
	}
	lrWait(b, ctx, lrWarmup)
	up0 := upVideo()
	w0, a0, v0 := time.Now(), audio.Next(), video.next()
	audioDT0, videoDT0 := lrDownTrackStats(sp)
	_, _, rebuilt0 := sv.FECStats()
	nacks0 := nacker.nacked()
	lrWait(b, ctx, lrWindow(b))
	w1, a1, v1 := time.Now(), audio.Next(), video.next()
	up1 := upVideo()
	audioDT1, videoDT1 := lrDownTrackStats(sp)
	_, _, rebuilt1 := sv.FECStats()
	nacks1 := nacker.nacked()
	lrWait(b, ctx, lrTail)
	model.step(time.Now())

	r := lrRow{uplink: uplink, loss: lossPct, window: w1.Sub(w0)}
	r.pubFEC, r.pubFECRebuilt = int(up1.FECPackets-up0.FECPackets), int(up1.FECRecovered-up0.FECRecovered)
	r.audioConceal, r.audioResidual = audioLoss(ap, sa, a0, a1)
	r.refAudioConceal, _ = audioLoss(ap, ra, a0, a1)
	r.video = model.stats(v0, v1)
	r.refVideoIncomplete = incompleteFrames(video, rv, v0, v1)
	r.keyframes = video.keyframes(v0, v1)
	r.modelPLIs = model.keyRequests(w0, w1)
	r.failures = model.failures(v0, v1, 12)
	if trace {
		n.mu.Lock()
		wire := append([]lrChunk(nil), n.log[lrKey{leg, videoSSRC}]...)
		if uplink {
			wire = append([]lrChunk(nil), n.log[lrKey{leg, pubVideoSSRC}]...)
		}
		n.mu.Unlock()
		b.Log("packets of the incomplete frames (ms after the frame was sent):\n" + model.trace(nacker, wire, uplink, v0, v1, 20))
	}
	r.stalls, r.stallTime = stalls.in(w0, w1.Add(lrTail))
	r.audioDT, r.videoDT = lrStatsDiff(audioDT1, audioDT0), lrStatsDiff(videoDT1, videoDT0)
	r.fecRecovered = rebuilt1 - rebuilt0
	r.nacks = nacks1 - nacks0

	// bytes on the lossy leg against the reference subscriber's
	toRef := lrLeg{lrSFUIP, lrRefIP}
	_, refAudio, _ := n.count(toRef, w0, w1, uint32(ra.Track.SSRC()))
	_, refVideo, _ := n.count(toRef, w0, w1, uint32(rv.Track.SSRC()), uint32(rv.Track.RtxSSRC()))
	subRTXSSRC := uint32(sv.Track.RtxSSRC())
	var legAudio, legVideo, pkts, dropped int
	if uplink {
		aSSRC, vSSRC, rtxSSRC := pubAudioSSRC, pubVideoSSRC, pubRTXSSRC
		_, legAudio, _ = n.count(leg, w0, w1, aSSRC)
		_, legVideo, _ = n.count(leg, w0, w1, vSSRC, rtxSSRC)
		pkts, _, dropped = n.count(leg, w0, w1, aSSRC, vSSRC, rtxSSRC)
		aPkts, _, aDropped := n.count(leg, w0, w1, aSSRC)
		r.audioLegLoss = float64(aDropped) / float64(max(aPkts, 1))
		r.pubRTX, _, _ = n.count(leg, w0, w1, rtxSSRC)
		_, _, r.upLost = n.count(leg, w0, w1, vSSRC)
	} else {
		_, legAudio, _ = n.count(leg, w0, w1, uint32(sa.Track.SSRC()))
		_, legVideo, _ = n.count(leg, w0, w1, videoSSRC, subRTXSSRC)
		pkts, _, dropped = n.count(leg, w0, w1, uint32(sa.Track.SSRC()), videoSSRC, subRTXSSRC)
		aPkts, _, aDropped := n.count(leg, w0, w1, uint32(sa.Track.SSRC()))
		r.audioLegLoss = float64(aDropped) / float64(max(aPkts, 1))
	}
	r.subDups, r.subPkts = n.duplicates(lrLeg{lrSFUIP, lrSubIP}, videoSSRC, w0, w1)
	r.refDups, r.refPkts = n.duplicates(toRef, uint32(rv.Track.SSRC()), w0, w1)
	if pkts > 0 {
		r.measuredLoss = float64(dropped) / float64(pkts)
	}
	if refAudio > 0 {
		r.audioOverhead = float64(legAudio)/float64(refAudio) - 1
	}
	if refVideo > 0 {
		r.videoOverhead = float64(legVideo)/float64(refVideo) - 1
	}

	estMu.Lock()
	var inWindow []int
	for _, e := range ests {
		if !e.at.Before(w0) && e.at.Before(w1) {
			inWindow = append(inWindow, e.estimate)
		}
	}
	estMu.Unlock()
	if len(inWindow) > 0 {
		slices.Sort(inWindow)
		r.estMin, r.estMedian = inWindow[0], inWindow[len(inWindow)/2]
	}
	return r
}

// lrDownTrackStats returns the counters of the participant's audio and
// video down tracks.
func lrDownTrackStats(p *sfu.Participant) (audio, video sfu.DownTrackStats) {
	for _, d := range p.Subscriptions() {
		if d.Kind() == webrtc.RTPCodecTypeVideo {
			video = d.Stats()
		} else {
			audio = d.Stats()
		}
	}
	return audio, video
}

// lrStatsDiff is the counters' growth from a to b.
func lrStatsDiff(b, a sfu.DownTrackStats) sfu.DownTrackStats {
	return sfu.DownTrackStats{
		Packets: b.Packets - a.Packets, Dropped: b.Dropped - a.Dropped, Retransmissions: b.Retransmissions - a.Retransmissions,
		RTXPackets: b.RTXPackets - a.RTXPackets, NACKsMissed: b.NACKsMissed - a.NACKsMissed, NACKsStale: b.NACKsStale - a.NACKsStale,
		NACKsOverBudget: b.NACKsOverBudget - a.NACKsOverBudget, KeyframeAsks: b.KeyframeAsks - a.KeyframeAsks,
		LayerSwitches: b.LayerSwitches - a.LayerSwitches, PaddingPackets: b.PaddingPackets - a.PaddingPackets,
		FECPackets: b.FECPackets - a.FECPackets,
	}
}

func lrWait(b *testing.B, ctx context.Context, d time.Duration) {
	b.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		b.Fatal("the row ran out of time")
	}
}

// audioLoss returns the share of audio frames [from, to) not received within
// lrDeadline of being sent, and the share never received.
func audioLoss(ap *lrAudioPump, sk *mediatest.Sink, from, to uint32) (late, never float64) {
	arr := firstArrivals(sk)
	var n, nLate, nNever int
	for idx := from; idx < to; idx++ {
		sent, ok := ap.sentAt(idx)
		if !ok {
			continue
		}
		n++
		at, got := arr[idx]
		switch {
		case !got:
			nNever++
			nLate++
		case at.Sub(sent) > lrDeadline:
			nLate++
		}
	}
	if n == 0 {
		return 1, 1
	}
	return float64(nLate) / float64(n), float64(nNever) / float64(n)
}

// incompleteFrames is the share of video frames [from, to) a sink does not
// have every packet of (for the reference subscriber: what the SFU had).
func incompleteFrames(src *lrVideoSource, sk *mediatest.Sink, from, to uint32) float64 {
	arr := firstArrivals(sk)
	bad := 0
	for f := from; f < to; f++ {
		for part := 0; part < src.frame(f).parts; part++ {
			if _, ok := arr[f*lrMaxParts+uint32(part)]; !ok {
				bad++
				break
			}
		}
	}
	return float64(bad) / float64(to-from)
}

// detail is the row's mechanisms, for the log.
func (r lrRow) detail() string {
	v := r.video
	return fmt.Sprintf("%s %d%% (measured %.1f%%, audio packets %.1f%%): audio concealed %.2f%% (residual %.2f%%, reference %.2f%%), overhead %+.0f%%; "+
		"video %d frames, complete %.1f%% (%d after the playout delay; p95 %v, p99 %v), decoded %.1f%%, %d freezes %.2fs, longest gap %v, residual %.2f%%, overhead %+.0f%%, "+
		"reference incomplete %.1f%%; keyframes sent %d, PLIs from the subscriber %d; "+
		"video down track: %d packets, %d FEC, %d retransmissions, NACKs %d over budget %d stale %d missed, %d keyframe asks; "+
		"FEC-rebuilt packets %d; subscriber NACKed %d; estimate median %d min %d kbit/s; publisher RTX %d for %d video packets lost upstream, publisher FEC %d rebuilt %d; "+
		"repeated sequence numbers in the video sent to the subscriber %d of %d, to the reference %d of %d; "+
		"%d process stalls (%v)",
		r.leg(), r.loss, pct(r.measuredLoss), pct(r.audioLegLoss), pct(r.audioConceal), pct(r.audioResidual), pct(r.refAudioConceal), pct(r.audioOverhead),
		v.frames, pct(float64(v.complete)/float64(v.frames)), v.late, v.p95.Round(time.Millisecond), v.p99.Round(time.Millisecond),
		pct(float64(v.decoded)/float64(v.frames)), v.freezes,
		v.freezeTime.Seconds(), v.longestGap.Round(time.Millisecond), pct(float64(v.packetsLost)/float64(v.packets)), pct(r.videoOverhead),
		pct(r.refVideoIncomplete), r.keyframes, r.modelPLIs,
		r.videoDT.Packets, r.videoDT.FECPackets, r.videoDT.Retransmissions, r.videoDT.NACKsOverBudget, r.videoDT.NACKsStale,
		r.videoDT.NACKsMissed, r.videoDT.KeyframeAsks, r.fecRecovered, r.nacks, r.estMedian/1000, r.estMin/1000, r.pubRTX, r.upLost, r.pubFEC, r.pubFECRebuilt,
		r.subDups, r.subPkts, r.refDups, r.refPkts, r.stalls, r.stallTime.Round(time.Millisecond))
}

// lrTable renders the rows as markdown: the results, then the mechanisms.
func lrTable(rows []lrRow) string {
	var sb strings.Builder
	sb.WriteString("| lossy leg | loss (measured) | audio concealed | audio residual | audio overhead | video complete | video decoded | freezes/min | freeze time | video residual | video overhead |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		v := r.video
		fmt.Fprintf(&sb, "| %s | %d %% (%.1f) | %.2f %% | %.2f %% | %+.0f %% | %.1f %% | %.1f %% | %.1f | %.2f s (%.1f %%) | %.2f %% | %+.0f %% |\n",
			r.leg(), r.loss, pct(r.measuredLoss), pct(r.audioConceal), pct(r.audioResidual), pct(r.audioOverhead),
			pct(float64(v.complete)/float64(v.frames)), pct(float64(v.decoded)/float64(v.frames)),
			float64(v.freezes)/r.window.Minutes(), v.freezeTime.Seconds(), pct(v.freezeTime.Seconds()/r.window.Seconds()),
			pct(float64(v.packetsLost)/float64(v.packets)), pct(r.videoOverhead))
	}
	sb.WriteString("\n| lossy leg | loss | keyframes sent | PLIs (receiver) | FEC packets | FEC rebuilt | retransmissions | NACKs over budget / stale | estimate median (min) | publisher RTX / video lost upstream | publisher FEC / rebuilt | process stalls |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		up, upFEC := "-", "-"
		if r.uplink {
			up = fmt.Sprintf("%d / %d", r.pubRTX, r.upLost)
			upFEC = fmt.Sprintf("%d / %d", r.pubFEC, r.pubFECRebuilt)
		}
		fmt.Fprintf(&sb, "| %s | %d %% | %d | %d | %d | %d | %d | %d / %d | %d (%d) kbit/s | %s | %s | %d (%v) |\n",
			r.leg(), r.loss, r.keyframes, r.modelPLIs, r.videoDT.FECPackets, r.fecRecovered, r.videoDT.Retransmissions,
			r.videoDT.NACKsOverBudget, r.videoDT.NACKsStale, r.estMedian/1000, r.estMin/1000, up, upFEC, r.stalls,
			r.stallTime.Round(time.Millisecond))
	}
	return sb.String()
}
