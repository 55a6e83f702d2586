package sfu

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Reasons a data message is refused; the sender is told (Listener.DataRejected).
var (
	ErrDataNotPermitted     = errors.New("sfu: data: no permission to send")
	ErrDataTooLarge         = errors.New("sfu: data: message too large")
	ErrDataRate             = errors.New("sfu: data: rate limit exceeded")
	ErrDataUnknownRecipient = errors.New("sfu: data: recipient not in the room or without data channels")
)

// DataLimits bound app data. Zero fields take the defaults.
type DataLimits struct {
	// MaxMessage is the largest message, header included (default 16 KiB,
	// at most MaxDataMessage: what every browser's SCTP accepts, less room
	// for the header of the message delivered).
	MaxMessage int
	// MessagesPerSecond and BytesPerSecond bound what one participant sends
	// (defaults 50 messages and 256 KiB per second, bursts of one second's
	// worth).
	MessagesPerSecond float64
	BytesPerSecond    float64
	// ReceiveBytesPerSecond bounds what one participant receives, from
	// everyone together (default 256 KiB per second, bursts of one second's
	// worth): many senders cannot flood a receiver's link, and the server
	// does no work for messages past it.
	ReceiveBytesPerSecond float64
	// MaxBuffered is how much may wait in one receiver's reliable channel;
	// past it messages to that receiver are dropped and counted (default
	// 1 MiB; the lossy channel gets a sixteenth of it).
	MaxBuffered uint64
}

// Defaults of DataLimits.
const (
	DefaultDataMaxMessage      = 16 << 10
	MaxDataMessage             = 64<<10 - 512
	DefaultDataRate            = 50
	DefaultDataByteRate        = 256 << 10
	DefaultDataReceiveByteRate = 256 << 10
	DefaultDataMaxBuffered     = 1 << 20
)

func (l DataLimits) withDefaults() DataLimits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultDataMaxMessage
	}
	l.MaxMessage = min(l.MaxMessage, MaxDataMessage)
	if l.MessagesPerSecond <= 0 {
		l.MessagesPerSecond = DefaultDataRate
	}
	if l.BytesPerSecond <= 0 {
		l.BytesPerSecond = DefaultDataByteRate
	}
	if l.ReceiveBytesPerSecond <= 0 {
		l.ReceiveBytesPerSecond = DefaultDataReceiveByteRate
	}
	if l.MaxBuffered == 0 {
		l.MaxBuffered = DefaultDataMaxBuffered
	}
	return l
}

// DataStats counts app data (of a participant, or of the whole SFU).
type DataStats struct {
	Sent      uint64 // messages sent that were forwarded
	Rejected  uint64 // messages sent that were refused
	Delivered uint64 // messages delivered
	// Dropped: messages not delivered to a receiver whose channel was full
	// or not open, or that was over its receive budget
	Dropped uint64
}

// dataCounters are DataStats kept with atomics.
type dataCounters struct {
	sent, rejected, delivered, dropped atomic.Uint64
}

func (c *dataCounters) stats() DataStats {
	return DataStats{Sent: c.sent.Load(), Rejected: c.rejected.Load(), Delivered: c.delivered.Load(), Dropped: c.dropped.Load()}
}

// dataRouter forwards a room's app data. Its peer list is copy on write:
// senders read it without a lock.
type dataRouter struct {
	mu    sync.Mutex
	peers atomic.Pointer[map[string]*dataPeer]
}

func (r *dataRouter) add(p *dataPeer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[string]*dataPeer{}
	if cur := r.peers.Load(); cur != nil {
		maps.Copy(next, *cur)
	}
	next[p.id] = p
	r.peers.Store(&next)
}

func (r *dataRouter) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.peers.Load()
	if cur == nil {
		return
	}
	if _, ok := (*cur)[id]; !ok {
		return
	}
	next := make(map[string]*dataPeer, len(*cur))
	for k, v := range *cur {
		if k != id {
			next[k] = v
		}
	}
	r.peers.Store(&next)
}

// forward checks one message from a peer and delivers it. It never blocks:
// a receiver whose channel is full loses the message. A peer not (or no
// longer) in the room sends nothing, silently: it is joining or leaving.
func (r *dataRouter) forward(from *dataPeer, reliable bool, msg []byte, now time.Time) error {
	peers := r.peers.Load()
	if peers == nil || (*peers)[from.id] != from {
		return nil
	}
	if !from.canSend {
		return ErrDataNotPermitted
	}
	if len(msg) > from.limits.MaxMessage {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrDataTooLarge, len(msg), from.limits.MaxMessage)
	}
	up, err := ParseDataUp(msg)
	if err != nil {
		return err
	}
	if !from.admit(now, len(msg)) {
		return fmt.Errorf("%w: at most %g messages and %g bytes per second", ErrDataRate,
			from.limits.MessagesPerSecond, from.limits.BytesPerSecond)
	}
	from.counters.sent.Add(1)
	from.total.sent.Add(1)
	out := AppendDataDown(make([]byte, 0, len(msg)+len(from.id)), from.id, up.Topic, up.Payload)
	if len(up.To) == 0 {
		for id, p := range *peers {
			if id != from.id {
				p.deliver(out, reliable, now)
			}
		}
		return nil
	}
	missing := 0
	for i, id := range up.To {
		p, ok := (*peers)[id]
		if !ok || id == from.id {
			missing++
			continue
		}
		if slices.Contains(up.To[:i], id) {
			continue
		}
		p.deliver(out, reliable, now)
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d of %d recipients", ErrDataUnknownRecipient, missing, len(up.To))
	}
	return nil
}

// dataPeer is one participant's end of the room's data routing.
type dataPeer struct {
	id       string
	canSend  bool
	limits   DataLimits
	reliable atomic.Pointer[webrtc.DataChannel] // until closed
	lossy    atomic.Pointer[webrtc.DataChannel]
	reject   func(error) // tells the participant, at most once a second per reason

	mu       sync.Mutex // the sender side: both channels' read loops
	msgs     tokenBucket
	bytes    tokenBucket
	lastTold map[error]time.Time

	inMu    sync.Mutex // the receiver side: every sender's goroutine
	inBytes tokenBucket

	counters dataCounters
	total    *dataCounters // the SFU's
}

func newDataPeer(id string, canSend bool, limits DataLimits, reject func(error), total *dataCounters) *dataPeer {
	if total == nil {
		total = &dataCounters{}
	}
	return &dataPeer{id: id, canSend: canSend, limits: limits.withDefaults(), reject: reject, lastTold: map[error]time.Time{}, total: total}
}

// admit takes one message of n bytes from the sender's budget.
func (p *dataPeer) admit(now time.Time, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limits
	if !p.msgs.ready(now, l.MessagesPerSecond, max(l.MessagesPerSecond, 1), 1) ||
		!p.bytes.ready(now, l.BytesPerSecond, max(l.BytesPerSecond, float64(l.MaxMessage)), float64(n)) {
		return false
	}
	p.msgs.take(1)
	p.bytes.take(float64(n))
	return true
}

func (p *dataPeer) deliver(msg []byte, reliable bool, now time.Time) {
	ch, limit := p.reliable.Load(), p.limits.MaxBuffered
	if !reliable {
		ch, limit = p.lossy.Load(), max(p.limits.MaxBuffered/16, uint64(MaxDataMessage))
	}
	if ch == nil || ch.ReadyState() != webrtc.DataChannelStateOpen || ch.BufferedAmount()+uint64(len(msg)) > limit ||
		!p.admitIn(now, len(msg)) || ch.Send(msg) != nil {
		p.counters.dropped.Add(1)
		p.total.dropped.Add(1)
		return
	}
	p.counters.delivered.Add(1)
	p.total.delivered.Add(1)
}

// admitIn takes n bytes from the receiver's budget.
func (p *dataPeer) admitIn(now time.Time, n int) bool {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	rate := p.limits.ReceiveBytesPerSecond
	if !p.inBytes.ready(now, rate, max(rate, float64(MaxDataMessage)), float64(n)) {
		return false
	}
	p.inBytes.take(float64(n))
	return true
}

// refused counts a refused message and tells the sender unless it was told
// the same reason less than a second ago.
func (p *dataPeer) refused(err error, now time.Time) {
	p.counters.rejected.Add(1)
	p.total.rejected.Add(1)
	kind := err
	for _, s := range []error{ErrDataNotPermitted, ErrDataTooLarge, ErrDataRate, ErrDataUnknownRecipient, ErrDataMalformed} {
		if errors.Is(err, s) {
			kind = s
			break
		}
	}
	p.mu.Lock()
	last, told := p.lastTold[kind]
	tell := !told || now.Sub(last) >= time.Second
	if tell {
		p.lastTold[kind] = now
	}
	p.mu.Unlock()
	if tell && p.reject != nil {
		p.reject(err)
	}
}

func (p *dataPeer) stats() DataStats { return p.counters.stats() }

// tokenBucket is a rate limiter with injected time.
type tokenBucket struct {
	tokens float64
	last   time.Time
	primed bool
}

// ready refills the bucket to now and reports whether n tokens are there.
func (b *tokenBucket) ready(now time.Time, rate, burst, n float64) bool {
	if !b.primed {
		b.tokens, b.last, b.primed = burst, now, true
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
		b.last = now
	}
	return b.tokens >= n
}

func (b *tokenBucket) take(n float64) { b.tokens -= n }

// prepareData opens the participant's two data channels on its subscriber
// connection before it joins the room (addParticipant adds it to the
// room's data routing with everything else). The channels are negotiated
// with the first subscriber offer.
func (p *Participant) prepareData(canSend bool, limits DataLimits) error {
	pc, err := p.subscriberPC()
	if err != nil {
		return err
	}
	peer := newDataPeer(p.id, canSend, limits, func(err error) { p.listener.DataRejected(err) }, &p.sfu.data)
	p.mu.Lock()
	p.data = peer
	p.mu.Unlock()
	unordered, none := false, uint16(0)
	for _, c := range []struct {
		label    string
		init     *webrtc.DataChannelInit
		slot     *atomic.Pointer[webrtc.DataChannel]
		reliable bool
	}{
		{DataLabelReliable, nil, &peer.reliable, true},
		{DataLabelLossy, &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &none}, &peer.lossy, false},
	} {
		dc, err := pc.CreateDataChannel(c.label, c.init)
		if err != nil {
			return fmt.Errorf("data channel %s: %w", c.label, err)
		}
		// Usable from the moment it opens on our side, which precedes the
		// client's open (OnOpen would wait for the client's acknowledgement).
		slot, reliable := c.slot, c.reliable
		slot.Store(dc)
		dc.OnClose(func() { slot.CompareAndSwap(dc, nil) })
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			now := time.Now()
			if err := p.room.data.forward(peer, reliable, m.Data, now); err != nil {
				peer.refused(err, now)
			}
		})
	}
	return nil
}

// DataStats returns the participant's app data counters (zero without data
// channels).
func (p *Participant) DataStats() DataStats {
	p.mu.Lock()
	d := p.data
	p.mu.Unlock()
	if d == nil {
		return DataStats{}
	}
	return d.stats()
}
