// Package bwe estimates each subscriber connection's bandwidth from
// transport-wide congestion control feedback (TWCC), and allocates it across
// the subscriber's tracks by priority. Time is always passed in, so that
// every decision can be tested deterministically.
package bwe

import (
	"time"

	"github.com/pion/rtcp"
)

// Config tunes an Estimator. Zero values take the defaults.
type Config struct {
	Initial int // bits per second at start (default 1 Mbit/s)
	Min     int // floor (default 100 kbit/s)
	Max     int // ceiling (default 20 Mbit/s)
	// IncreasePerSecond is the multiplicative growth per second while the
	// path shows neither queuing nor loss (default 0.4: +40 %/s).
	IncreasePerSecond float64
	// Headroom caps the estimate at this multiple of the rate actually
	// delivered, so that an idle connection does not claim a capacity it
	// never tested (default 1.5). Larger steps need a probe.
	Headroom float64
}

func (c *Config) defaults() {
	if c.Initial == 0 {
		c.Initial = 1_000_000
	}
	if c.Min == 0 {
		c.Min = 100_000
	}
	if c.Max == 0 {
		c.Max = 20_000_000
	}
	if c.IncreasePerSecond == 0 {
		c.IncreasePerSecond = 0.4
	}
	if c.Headroom == 0 {
		c.Headroom = 1.5
	}
}

const (
	historySize = 1 << 13 // packets remembered for feedback
	// overuseDelay: queuing delay above this means the path is congested.
	overuseDelay = 40 * time.Millisecond
	// overuseTime: the queuing delay must stay above overuseDelay this long,
	// over at least two reports, before the estimate is lowered: a receiver
	// whose CPU stalls for a moment stamps a few packets late, and that is
	// not a queue on the path.
	overuseTime = 100 * time.Millisecond
	// underuseDelay: queuing delay below this allows increasing.
	underuseDelay = 15 * time.Millisecond
	// baseWindow is how long the minimum one-way delay is remembered;
	// collapseBaseWindow instead for baseWindow after a collapse (by then
	// the queue that caused it has drained)
	baseWindow         = 10 * time.Second
	collapseBaseWindow = 2 * time.Second
	// decreaseGap: decreases closer than this are merged (one reaction per
	// congestion episode, not one per feedback packet).
	decreaseGap = 300 * time.Millisecond
	highLoss    = 0.10
	lowLoss     = 0.02
	// lossEpisodeJudge: how long after a loss-driven decrease the loss is
	// checked again to tell congestion from a lossy path
	lossEpisodeJudge = time.Second
	// lossBaseDecay: how fast (per second) the inherent loss may move
	lossBaseDecay = 0.05
	// lossLongWindow: the time constant of the long-run loss average
	lossLongWindow = 1500 * time.Millisecond
	// ceilingMargin: the estimate may grow this much above what a failed
	// probe delivered
	ceilingMargin = 1.1
	// ceilingHold: how long a ceiling holds without a probe confirming it
	ceilingHold = 30 * time.Second
	// feedbackTimeout: feedback missing this long lowers the estimate
	feedbackTimeout = time.Second
	// lossWindowPackets: loss is judged over at least this many packets
	lossWindowPackets = 40
	// probeLossMargin: a probe fails when its packets lose this much more
	// than the path did before it (random loss varies from probe to probe)
	probeLossMargin = 0.08
	// probeDuration is how long a probe sends at its rate.
	probeDuration = 500 * time.Millisecond
	// probeSettle is how long after a probe its feedback is awaited at
	// least; maxProbeSettle at most, for its last packet's.
	probeSettle     = 200 * time.Millisecond
	maxProbeSettle  = time.Second
	minProbeBackoff = time.Second
	// maxProbeBackoff bounds the wait between failed probes: probing does not
	// move layers, and a short wait finds returning capacity quickly.
	maxProbeBackoff = 2 * time.Second
	// probeAfterCollapse: no probe this soon after the estimate fell by more
	// than a third at once (the link collapsed): the bottleneck has just
	// drained, and the switch to a lower layer (a keyframe) is under way
	// through it
	probeAfterCollapse = 2 * time.Second
	// sentWindow is the span SentRate averages over.
	sentWindow = 500 * time.Millisecond
	// probeShortfall: a probe whose packets went out below this share of its
	// rate tested less than it was meant to (the media was lighter than
	// thought): what it showed counts, but it is no failure
	probeShortfall = 0.9
)

type sentPacket struct {
	seq   uint16
	size  int
	at    time.Time
	valid bool
}

type delaySample struct {
	at  time.Time
	owd time.Duration
}

// State is what the estimator concluded from the last feedback.
type State int

// Estimator states.
const (
	StateHold State = iota
	StateIncrease
	StateDecrease
)

func (s State) String() string {
	switch s {
	case StateIncrease:
		return "increase"
	case StateDecrease:
		return "decrease"
	}
	return "hold"
}

// Estimator is a send-side bandwidth estimator for one connection: it is
// told of every packet sent with its transport-wide sequence number, reads
// TWCC feedback, and combines the queuing delay trend and the loss rate into
// an estimate. It is not safe for concurrent use.
type Estimator struct {
	cfg      Config
	estimate float64
	sent     [historySize]sentPacket

	mins       []delaySample // increasing-owd deque over baseWindow
	queueDelay time.Duration
	prevDelay  time.Duration
	// overuseSince: the first report of the current run above overuseDelay
	// (zero: none); overuseReports counts the run's reports
	overuseSince   time.Time
	overuseReports int
	reportLoss     float64 // loss fraction of the last 40 or more packets reported
	lossLost       int     // packets of reports not yet pooled into reportLoss
	lossTotal      int
	// lossBase is the loss that does not go away when the sender slows
	// down (a lossy radio link, not congestion): only loss above it counts
	lossBase    float64
	lossLong    float64   // loss averaged over lossLongWindow
	lastTimeout time.Time // last decrease for missing feedback
	lastSent    time.Time // newest packet sent
	lastSeq     uint16    // its transport-wide sequence number
	// a loss episode: the estimate was lowered for loss at start; if the
	// loss persists a second later at the lower rate, it was not congestion
	episodeStart    time.Time
	episodeLoss     float64
	episodeEstimate float64
	loss            float64
	receiveRate     float64
	lastUpdate      time.Time
	lastDecrease    time.Time
	lastCollapse    time.Time // last decrease by more than a third
	lastFeedback    time.Time
	state           State

	// probing: the sender pads its flow up to probeRate to test capacity
	probeRate    float64
	preProbe     float64   // the estimate when the probe started
	preProbeOK   bool      // the path was clean when the probe started
	quietUntil   time.Time // after a failed probe: its queue drains, no delay reactions
	probeStart   time.Time
	probeFailed  bool      // congestion seen during the probe
	nextProbe    time.Time // no probe before this (backoff after a failure)
	probeBackoff time.Duration
	lastFailed   float64 // rate of the last failed probe
	preProbeLoss float64 // smoothed loss when the probe started
	// what became of the packets sent during the probe
	probeAcked, probeLost, probeBytes int
	probeFirstArr, probeLastArr       time.Time
	// how the probe's packets went out (bytes after the first)
	probeSentBytes                  int
	probeFirstSent, probeLastSentAt time.Time

	probeGot float64 // rate the probe's packets arrived at (0: unknown)
	// the last packet sent during the probe, and whether feedback covered it
	probeLastSeq               uint16
	probeSentAny, probeCovered bool
	// ceiling caps increases after a failed probe (0: none)
	ceiling      float64
	ceilingUntil time.Time

	ackBuf []ack // reused by parse
}

// NewEstimator returns an estimator starting at cfg.Initial.
func NewEstimator(cfg Config) *Estimator {
	cfg.defaults()
	return &Estimator{cfg: cfg, estimate: float64(cfg.Initial)}
}

// Estimate is the current estimate in bits per second.
func (e *Estimator) Estimate() int { return int(e.estimate) }

// Stats describe the estimator's view of the path.
type Stats struct {
	Estimate    int           // bits per second
	ReceiveRate int           // bits per second delivered, per the last feedback
	QueueDelay  time.Duration // over the path's minimum one-way delay
	Loss        float64       // smoothed fraction of packets lost
	// InherentLoss is the loss that stays when the sender slows down (a
	// lossy path rather than congestion): what redundancy should cover
	InherentLoss float64
	// Congested: the path shows congestion now or did recently (a decrease,
	// a queue): loss beyond InherentLoss is then congestion's
	Congested bool
	State     State
}

// Stats returns the estimator's state.
func (e *Estimator) Stats() Stats {
	return Stats{Estimate: int(e.estimate), ReceiveRate: int(e.receiveRate), QueueDelay: e.queueDelay,
		Loss: e.loss, InherentLoss: e.inherentLoss(), State: e.state,
		Congested: e.state == StateDecrease || e.queueDelay >= underuseDelay ||
			(!e.lastDecrease.IsZero() && e.lastUpdate.Sub(e.lastDecrease) < 2*lossLongWindow && e.lossBase == 0)}
}

// HasFeedback reports whether the receiver has ever sent feedback: until
// then the estimate means nothing (the receiver may not support TWCC).
func (e *Estimator) HasFeedback() bool { return !e.lastFeedback.IsZero() }

// CheckFeedback halves the estimate for every second without feedback once
// feedback has been flowing: the path (or the receiver) may be gone, and
// the media sent meanwhile must not assume it is still there.
func (e *Estimator) CheckFeedback(now time.Time) {
	// only when packets went out since the last feedback: a sender with
	// nothing to send (every track paused) gets no feedback either
	// on a lossy path feedback is lost too: a second's gap is a run of
	// lost reports, not a path gone (wait longer the more is lost)
	timeout := time.Duration(float64(feedbackTimeout) / (1 - min(e.loss, 0.8)))
	if e.lastFeedback.IsZero() || !e.lastSent.After(e.lastFeedback) ||
		now.Sub(e.lastFeedback) < timeout || now.Sub(e.lastTimeout) < timeout {
		return
	}
	e.lastTimeout = now
	e.estimate = max(float64(e.cfg.Min), e.estimate/2)
	e.state = StateDecrease
}

// CanProbe reports whether a probe at rate may start now: the path is not
// congested, no probe is running, and the backoff after a failed probe at
// a similar rate has passed.
func (e *Estimator) CanProbe(rate int, now time.Time) bool {
	if e.probeRate > 0 || e.state == StateDecrease || float64(rate) <= e.estimate ||
		e.queueDelay >= underuseDelay {
		return false // a queue still draining would fail the probe
	}
	if !e.lastCollapse.IsZero() && now.Sub(e.lastCollapse) < probeAfterCollapse {
		return false
	}
	return !now.Before(e.nextProbe) || float64(rate) < 0.8*e.lastFailed
}

// StartProbe starts a probe towards rate (bits per second): the sender pads
// its flow up to ProbeRate for ProbeDuration. A probe never more than
// doubles the estimate, so reaching a far rate takes several probes. It returns the probe's rate.
func (e *Estimator) StartProbe(rate int, now time.Time) int {
	// from what the path carries now, if the estimate is below it (the
	// sender cannot always go as low as the estimate)
	r := min(float64(rate), 2*max(e.estimate, e.receiveRate))
	e.probeRate, e.probeStart, e.probeFailed = r, now, false
	e.preProbe = e.estimate
	e.preProbeOK = e.loss < lowLoss && e.queueDelay < underuseDelay
	e.preProbeLoss = e.loss
	e.probeAcked, e.probeLost, e.probeBytes = 0, 0, 0
	e.probeSentAny, e.probeCovered = false, false
	e.probeFirstArr, e.probeLastArr = time.Time{}, time.Time{}
	e.probeSentBytes, e.probeFirstSent, e.probeLastSentAt = 0, time.Time{}, time.Time{}
	return int(r)
}

// SentRate is the rate at which packets went out over the last half second
// (bits per second; 0 before any): a probe pads the flow from this rate up
// to its own.
func (e *Estimator) SentRate(now time.Time) int {
	if e.lastSent.IsZero() {
		return 0
	}
	from := now.Add(-sentWindow)
	bytes := 0
	seq := e.lastSeq
	for range historySize {
		p := e.sent[seq%historySize]
		if !p.valid || p.seq != seq || !p.at.After(from) {
			break
		}
		bytes += p.size
		seq--
	}
	return int(float64(bytes*8) / sentWindow.Seconds())
}

// ProbeRate is the rate the sender must pad up to now (0: no probe).
func (e *Estimator) ProbeRate(now time.Time) int {
	if e.probeRate > 0 && now.Sub(e.probeStart) < probeDuration {
		return int(e.probeRate)
	}
	return 0
}

// ProbeDuration is how long a probe pads the flow.
func ProbeDuration() time.Duration { return probeDuration }

// endProbe concludes a probe once its feedback has arrived.
func (e *Estimator) endProbe(now time.Time) {
	if e.probeRate == 0 {
		return
	}
	if e.state == StateDecrease {
		e.probeFailed = true
	}
	if !e.probeFailed {
		// judge once feedback has covered the probe's last packet (a
		// queue may hold it long after the probe), within a limit
		wait := now.Sub(e.probeStart) - probeDuration
		if wait < probeSettle || (wait < maxProbeSettle && (!e.probeSentAny || !e.probeCovered)) {
			return
		}
	}
	e.probeGot = e.probeGotRate()
	if shown := e.probeShown(); !e.probeFailed && shown > 0 {
		// the path carried what the probe sent; a probe that sent less
		// than its rate (its media was lighter than priced) showed less
		e.estimate = max(e.estimate, min(e.probeRate, shown))
		if shown >= probeShortfall*e.probeRate {
			e.ceiling = 0
		} else if e.ceiling > 0 {
			e.ceiling = max(e.ceiling, shown*ceilingMargin)
		}
		e.probeBackoff = 0
		e.lastFailed = 0
		e.nextProbe = now
	} else {
		// the congestion was the probe's own doing: the media rate before
		// it was fine, and the queue it built drains for a while
		if e.preProbeOK {
			e.estimate = max(e.estimate, e.preProbe)
			e.quietUntil = now.Add(time.Second)
		}
		if e.probeGot > 0 {
			// what the path delivered when pushed is its capacity: the
			// estimate does not creep above it until a probe succeeds
			// (a send rate: what arrived plus what the path loses anyway)
			e.ceiling = max(e.probeGot/(1-min(e.lossBase, 0.9))*ceilingMargin, float64(e.cfg.Min))
			e.ceilingUntil = now.Add(ceilingHold)
		}
		e.probeBackoff = min(maxProbeBackoff, max(minProbeBackoff, 2*e.probeBackoff))
		e.nextProbe = now.Add(e.probeBackoff)
		e.lastFailed = e.probeRate
	}
	e.probeRate = 0
}

// probeGotRate is the rate the probe's packets arrived at (0: not enough
// of them to tell).
func (e *Estimator) probeGotRate() float64 {
	span := e.probeLastArr.Sub(e.probeFirstArr)
	if e.probeAcked < 5 || span < probeDuration/2 {
		return 0
	}
	return float64(e.probeBytes*8) / span.Seconds()
}

// probeShown is the rate a probe showed the path can carry, 0 when it
// failed. The packets sent during the probe must have got through at the
// rate they were sent: at least 95 % of it measured at the receiver (less
// the path's inherent loss), with not much more loss than before the probe.
// A bottleneck that polices rather than queues shows up here, not in the
// delay. The rate shown is the lower of the two: sent and delivered. A probe
// that sent less than it meant to (its media lighter than priced) shows
// what it sent, and tells nothing about the rest.
func (e *Estimator) probeShown() float64 {
	n := e.probeAcked + e.probeLost
	sent := e.probeSentRate()
	if e.probeGot == 0 || n == 0 || sent == 0 {
		return 0
	}
	if float64(e.probeLost)/float64(n) > max(e.preProbeLoss, e.lossBase)+probeLossMargin {
		return 0
	}
	// on a lossy path what arrives is the sent rate less the inherent loss
	want := min(sent, e.probeRate) * (1 - e.lossBase)
	if e.probeGot < 0.95*want {
		return 0
	}
	return min(sent, e.probeGot/(1-min(e.lossBase, 0.9)))
}

// probeSentRate is the rate the probe's packets went out at (0: not enough
// of them to tell).
func (e *Estimator) probeSentRate() float64 {
	span := e.probeLastSentAt.Sub(e.probeFirstSent)
	if span < probeDuration/2 {
		return 0
	}
	return float64(e.probeSentBytes*8) / span.Seconds()
}

// inProbe reports whether a packet sent at at belongs to the running probe.
func (e *Estimator) inProbe(at time.Time) bool {
	return e.probeRate > 0 && !at.Before(e.probeStart) && at.Sub(e.probeStart) < probeDuration
}

// OnPacketSent records a packet carrying transport-wide sequence number seq.
func (e *Estimator) OnPacketSent(seq uint16, size int, at time.Time) {
	e.sent[seq%historySize] = sentPacket{seq: seq, size: size, at: at, valid: true}
	if !at.Before(e.lastSent) {
		e.lastSent, e.lastSeq = at, seq
	}
	if e.inProbe(at) {
		e.probeLastSeq, e.probeSentAny, e.probeCovered = seq, true, false
		if e.probeFirstSent.IsZero() {
			e.probeFirstSent = at
		} else {
			e.probeSentBytes += size
		}
		e.probeLastSentAt = at
	}
}

// ack is one packet of a feedback report.
type ack struct {
	sent    sentPacket
	arrival time.Time
}

// OnFeedback processes one TWCC feedback packet received at now.
func (e *Estimator) OnFeedback(fb *rtcp.TransportLayerCC, now time.Time) {
	acks, lost := e.parse(fb)
	if len(acks)+lost == 0 {
		return
	}
	first := e.lastFeedback.IsZero()
	prevFeedback := e.lastFeedback
	e.lastFeedback = now
	// loss: this report's fraction decides when it covers enough packets (a
	// smoothed value would keep reacting after the sender has already
	// slowed down); the smoothed one is for the statistics
	frac := float64(lost) / float64(len(acks)+lost)
	e.loss = 0.7*e.loss + 0.3*frac
	if !first {
		// the long-run loss: a time-weighted average over lossLongWindow
		a := min(1, now.Sub(prevFeedback).Seconds()/lossLongWindow.Seconds())
		e.lossLong += a * (frac - e.lossLong)
	}
	// small reports are pooled until they say something (40 packets)
	e.lossLost += lost
	e.lossTotal += len(acks) + lost
	if e.lossTotal >= lossWindowPackets {
		e.reportLoss = float64(e.lossLost) / float64(e.lossTotal)
		e.lossLost, e.lossTotal = 0, 0
	}

	if len(acks) >= 2 {
		first, last := acks[0], acks[len(acks)-1]
		bytes := 0
		for _, a := range acks[1:] {
			bytes += a.sent.size
		}
		if span := last.arrival.Sub(first.arrival); span >= 5*time.Millisecond {
			e.receiveRate = float64(bytes*8) / span.Seconds()
		} else if span := last.sent.at.Sub(first.sent.at); span >= 5*time.Millisecond {
			e.receiveRate = float64(bytes*8) / span.Seconds()
		}
	}
	if first && e.receiveRate > e.estimate {
		e.estimate = e.receiveRate // what already flows is the first evidence
	}
	// One-way delays include an unknown (possibly huge) clock offset: only
	// their excess over the minimum is meaningful.
	for _, a := range acks {
		e.pushDelay(delaySample{at: now, owd: a.arrival.Sub(a.sent.at)})
	}
	if len(acks) > 0 {
		var excess time.Duration
		for _, a := range acks {
			excess += a.arrival.Sub(a.sent.at) - e.mins[0].owd
		}
		e.queueDelay = excess / time.Duration(len(acks))
	}
	e.update(now)
	e.endProbe(now)
}

// pushDelay keeps a monotonic deque of one-way delays whose front is the
// minimum over baseWindow. For a while after a collapse the window is
// shorter: a slower link takes longer to serialize each packet, and the
// fast link's minimum would read that as a queue for baseWindow.
func (e *Estimator) pushDelay(s delaySample) {
	for len(e.mins) > 0 && e.mins[len(e.mins)-1].owd >= s.owd {
		e.mins = e.mins[:len(e.mins)-1]
	}
	e.mins = append(e.mins, s)
	window := baseWindow
	if !e.lastCollapse.IsZero() && s.at.Sub(e.lastCollapse) < baseWindow {
		window = collapseBaseWindow
	}
	for len(e.mins) > 1 && s.at.Sub(e.mins[0].at) > window {
		e.mins = e.mins[1:]
	}
}

// inherentLoss is the loss redundancy should cover: the learned base, or,
// below the level that triggers a decrease, the long-run loss while no
// queue says the path is congested.
func (e *Estimator) inherentLoss() float64 {
	if e.lossBase > 0 {
		return e.lossBase
	}
	// the long-run loss, unless it may still hold a congestion episode's
	// (a decrease in its window): redundancy would feed the congestion
	if e.queueDelay < underuseDelay && e.state != StateDecrease &&
		(e.lastDecrease.IsZero() || e.lastUpdate.Sub(e.lastDecrease) > 2*lossLongWindow) {
		return min(e.lossLong, highLoss)
	}
	return 0
}

// excessLoss is the last report's loss above the inherent loss, less a
// tolerance for how much a lossy path's loss varies from report to report.
func (e *Estimator) excessLoss() float64 {
	if e.lossBase == 0 {
		return e.reportLoss
	}
	return e.reportLoss - e.lossBase - 0.5*e.lossBase
}

// judgeLossEpisode decides, a second after a loss-driven decrease, whether
// the loss was congestion (it went away at the lower rate) or inherent to
// the path (it stayed): then it becomes the base and the estimate returns.
func (e *Estimator) judgeLossEpisode(now time.Time, dt float64) {
	switch {
	case e.lossLong < e.lossBase:
		// the path may have got better: let the base follow, slowly
		e.lossBase = max(e.lossLong, e.lossBase-lossBaseDecay*dt)
	case e.lossBase > 0 && e.queueDelay < underuseDelay && e.state != StateDecrease:
		// a path known to be lossy, not congested now: the base follows its
		// long-run loss up as well
		e.lossBase = min(e.lossLong, e.lossBase+lossBaseDecay*dt)
	}
	if e.episodeStart.IsZero() || now.Sub(e.episodeStart) < lossEpisodeJudge {
		return
	}
	// inherent: the loss stayed at the lower rate, and no queue says the
	// path is still full (a queued bottleneck drops until its queue drains)
	if e.loss-e.lossBase > 0.5*(e.episodeLoss-e.lossBase) && e.queueDelay < underuseDelay {
		e.lossBase = max(e.lossBase, min(max(e.loss, e.lossLong), e.episodeLoss))
		e.estimate = max(e.estimate, e.episodeEstimate)
	}
	e.episodeStart = time.Time{}
}

func (e *Estimator) update(now time.Time) {
	dt := 0.0
	if !e.lastUpdate.IsZero() {
		dt = now.Sub(e.lastUpdate).Seconds()
	}
	e.judgeLossEpisode(now, dt)
	e.lastUpdate = now
	// queuing delay that is high but already falling is a queue draining
	// after a reaction: hold instead of reacting again
	rising := e.queueDelay >= e.prevDelay-2*time.Millisecond
	e.prevDelay = e.queueDelay
	if e.queueDelay > overuseDelay {
		if e.overuseSince.IsZero() {
			e.overuseSince = now
		}
		e.overuseReports++
	} else {
		e.overuseSince, e.overuseReports = time.Time{}, 0
	}
	sustained := e.overuseReports >= 2 && now.Sub(e.overuseSince) >= overuseTime
	probing := e.probeRate > 0
	switch {
	case (sustained && rising) || e.excessLoss() > highLoss:
		e.state = StateDecrease
		if probing || now.Sub(e.lastDecrease) < decreaseGap || now.Before(e.quietUntil) {
			// a probe's congestion (its queue, or what overflowed) ends the
			// probe, not the media rate, which was fine before it
			break
		}
		e.lastDecrease = now
		// to a share of what the path delivers now (it is full), and never
		// up: an estimate already below that stays (the sender may be
		// unable to go lower, audio and the lowest video layer, and
		// lowering further would only make the way back longer)
		factor := 0.85
		if x := e.excessLoss(); x > highLoss {
			// what got through is the capacity: do not fall far below it
			factor = max(0.5, min(factor, 1-0.5*x))
			if e.episodeStart.IsZero() {
				e.episodeStart, e.episodeLoss, e.episodeEstimate = now, e.reportLoss, e.estimate
			}
		}
		before := e.estimate
		if e.receiveRate > 0 {
			e.estimate = min(e.estimate, e.receiveRate*factor)
			// the path was full at this rate: no creeping above it until
			// a probe shows more
			e.ceiling = max(min(e.receiveRate, e.estimate/factor)*ceilingMargin, float64(e.cfg.Min))
			e.ceilingUntil = now.Add(ceilingHold)
		} else {
			e.estimate *= factor
		}
		if e.estimate < before*2/3 {
			e.lastCollapse = now
		}
	case e.queueDelay > overuseDelay:
		e.state = StateHold
	case e.queueDelay < underuseDelay && e.excessLoss() < lowLoss:
		e.state = StateIncrease
		grown := e.estimate * (1 + e.cfg.IncreasePerSecond*min(dt, 0.5))
		if e.receiveRate > 0 {
			// grow only up to the headroom over what flows; a small flow
			// (app-limited) does not lower an estimate either
			grown = min(grown, max(e.cfg.Headroom*e.receiveRate, float64(e.cfg.Min)))
		}
		if e.ceiling > 0 && now.Before(e.ceilingUntil) {
			grown = min(grown, e.ceiling)
		}
		e.estimate = max(e.estimate, grown)
	default:
		e.state = StateHold
	}
	e.estimate = max(float64(e.cfg.Min), min(float64(e.cfg.Max), e.estimate))
}

// parse turns a feedback packet into acknowledged packets (in sequence
// order, with arrival times) and the number of packets reported lost.
func (e *Estimator) parse(fb *rtcp.TransportLayerCC) ([]ack, int) {
	acks := e.ackBuf[:0]
	defer func() { e.ackBuf = acks[:0] }()
	lost := 0
	arrival := time.Duration(fb.ReferenceTime) * 64 * time.Millisecond
	base := time.Unix(0, 0)
	deltas := fb.RecvDeltas
	seq := fb.BaseSequenceNumber
	remaining := int(fb.PacketStatusCount)
	handle := func(status uint16) {
		if remaining <= 0 {
			return
		}
		remaining--
		s := seq
		seq++
		switch status {
		case rtcp.TypeTCCPacketNotReceived:
			if p := e.sent[s%historySize]; p.valid && p.seq == s {
				lost++
				if e.inProbe(p.at) {
					e.probeLost++
					e.probeCovered = e.probeCovered || s == e.probeLastSeq
				}
			}
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) == 0 {
				return
			}
			arrival += time.Duration(deltas[0].Delta) * time.Microsecond
			deltas = deltas[1:]
			if p := e.sent[s%historySize]; p.valid && p.seq == s {
				at := base.Add(arrival)
				acks = append(acks, ack{sent: p, arrival: at})
				if e.inProbe(p.at) {
					e.probeCovered = e.probeCovered || s == e.probeLastSeq
					if e.probeAcked > 0 {
						e.probeBytes += p.size // bytes after the first arrival
					}
					e.probeAcked++
					if e.probeFirstArr.IsZero() || at.Before(e.probeFirstArr) {
						e.probeFirstArr = at
					}
					if at.After(e.probeLastArr) {
						e.probeLastArr = at
					}
				}
			}
		}
	}
	for _, c := range fb.PacketChunks {
		switch chunk := c.(type) {
		case *rtcp.RunLengthChunk:
			for i := 0; i < int(chunk.RunLength); i++ {
				handle(chunk.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range chunk.SymbolList {
				handle(sym)
			}
		}
	}
	return acks, lost
}
