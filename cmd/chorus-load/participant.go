package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/chat"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// counters are the run's totals, shared by every participant.
type counters struct {
	joined      atomic.Int64
	joinFailed  atomic.Int64
	disconnects atomic.Int64

	sent       atomic.Int64 // chat messages sent
	deliveries atomic.Int64 // chat messages of this run received (pushed or pulled)
	pushes     atomic.Int64 // chat frames pushed to clients
	notifies   atomic.Int64 // chatNotify frames after the join's
	pulls      atomic.Int64 // chatHistory requests
	missed     atomic.Int64 // messages gone from the history before a client pulled them
	offers     atomic.Int64 // subscriber offers received

	audioPackets, videoPackets atomic.Int64
	mediaBytes                 atomic.Int64
	mediaReady                 atomic.Int64 // clients that receive every expected track

	errMu  sync.Mutex
	errors map[string]int64 // server error messages by code
}

func (c *counters) addError(code string) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.errors == nil {
		c.errors = map[string]int64{}
	}
	c.errors[code]++
}

func (c *counters) errorCounts() map[string]int64 {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	out := make(map[string]int64, len(c.errors))
	for k, v := range c.errors {
		out[k] = v
	}
	return out
}

// shared is what every participant of a run sees.
type shared struct {
	cfg     config
	run     string    // run id embedded in chat texts
	base    time.Time // the clock's zero: chat stamps are nanoseconds since base
	hist    histogram
	count   counters
	closing atomic.Bool
	// progress receives a value (without blocking) after each delivery
	// and each client that starts receiving all its media.
	progress chan struct{}
}

func newShared(cfg config, run string) *shared {
	return &shared{cfg: cfg, run: run, base: time.Now(), progress: make(chan struct{}, 1)}
}

// now is the shared monotonic clock in nanoseconds.
func (sh *shared) now() int64 { return int64(time.Since(sh.base)) }

func (sh *shared) signal() {
	select {
	case sh.progress <- struct{}{}:
	default:
	}
}

// participant is one simulated client.
type participant struct {
	idx int
	sh  *shared
	cl  atomic.Pointer[client.Client] // set once dialled; nil after a failed join

	// chat state, used on the client's read loop only
	joinNotified bool
	seen         uint64 // highest seq received
	latest       uint64 // highest seq announced by chatNotify
	pulling      bool

	// media
	wantTracks int // tracks this client should receive
	mu         sync.Mutex
	gotTracks  int
}

// conn is the participant's client (nil before it dialled or after its join failed).
func (p *participant) conn() *client.Client { return p.cl.Load() }

// connect dials and joins; publishers also publish. ctx bounds the
// connection's whole life (publishers' pumps stop with it).
func (p *participant) connect(ctx context.Context, api *webrtc.API, publisher bool) error {
	cfg := p.sh.cfg
	opts := client.Options{API: api, Token: cfg.token, Events: p.onEvent}
	if cfg.media {
		opts.OnTrack = p.onTrack
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.joinTimeout)
	defer cancel()
	c, err := client.Dial(dctx, cfg.url, opts)
	if err != nil {
		return fmt.Errorf("client %d: %w", p.idx, err)
	}
	p.cl.Store(c)
	if _, err := c.Join(dctx, cfg.room, fmt.Sprintf("load-%d", p.idx)); err != nil {
		return fmt.Errorf("client %d: join: %w", p.idx, err)
	}
	if publisher {
		if err := p.publish(ctx, dctx); err != nil {
			return fmt.Errorf("client %d: publish: %w", p.idx, err)
		}
	}
	return nil
}

// publish publishes synthetic audio (and video unless -audio-only) and
// starts pumping it until ctx ends.
func (p *participant) publish(ctx, dctx context.Context) error {
	cfg := p.sh.cfg
	stream := fmt.Sprintf("load-%d", p.idx)
	var srcs []*mediaSource
	a, err := newAudioSource(stream)
	if err != nil {
		return err
	}
	srcs = append(srcs, a)
	if !cfg.audioOnly {
		v, err := newVideoSource(stream, cfg.videoKbps)
		if err != nil {
			return err
		}
		srcs = append(srcs, v)
	}
	tracks := make([]webrtc.TrackLocal, len(srcs))
	for i, s := range srcs {
		tracks[i] = s.track
	}
	senders, err := p.conn().Publish(dctx, tracks...)
	if err != nil {
		return fmt.Errorf("negotiate: %w", err)
	}
	for i, s := range srcs {
		go s.readRTCP(senders[i])
		go func() {
			if err := s.pump(ctx); err != nil && ctx.Err() == nil && !p.sh.closing.Load() {
				p.sh.count.addError("client_media_write")
			}
		}()
	}
	return nil
}

// onTrack reads one received track until it ends, counting its packets.
func (p *participant) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	go func() { // RTCP from the server: the interceptors process it when read
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	go func() {
		cnt := &p.sh.count.audioPackets
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			cnt = &p.sh.count.videoPackets
		}
		buf := make([]byte, 1600)
		first := true
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			cnt.Add(1)
			p.sh.count.mediaBytes.Add(int64(n))
			if first {
				first = false
				p.trackStarted()
			}
		}
	}()
}

func (p *participant) trackStarted() {
	p.mu.Lock()
	p.gotTracks++
	ready := p.gotTracks == p.wantTracks
	p.mu.Unlock()
	if ready {
		p.sh.count.mediaReady.Add(1)
		p.sh.signal()
	}
}

// onEvent handles a server message on the client's read loop.
func (p *participant) onEvent(m signaling.Message) {
	sh := p.sh
	switch m.Type {
	case signaling.TypeChatNotify:
		if m.Chat == nil {
			return
		}
		if !p.joinNotified { // the first one follows joined: the history that exists
			p.joinNotified = true
			p.seen, p.latest = m.Chat.Latest, m.Chat.Latest
			return
		}
		sh.count.notifies.Add(1)
		p.latest = max(p.latest, m.Chat.Latest)
		p.pull()
	case signaling.TypeChat:
		sh.count.pushes.Add(1)
		p.receive(m.Messages)
	case signaling.TypeChatHistory:
		p.pulling = false
		if m.Chat != nil {
			p.latest = max(p.latest, m.Chat.Latest)
		}
		p.receive(m.Messages)
		p.pull()
	case signaling.TypeOffer:
		sh.count.offers.Add(1)
	case signaling.TypeError:
		sh.count.addError(m.Code)
	}
}

// pull asks for the messages after the last seen one, one request at a time.
func (p *participant) pull() {
	if p.pulling || p.latest <= p.seen {
		return
	}
	p.pulling = true
	after := p.seen
	p.sh.count.pulls.Add(1)
	if err := p.conn().Send(signaling.Message{Type: signaling.TypeChatHistory, After: &after, Limit: 100}); err != nil {
		p.pulling = false
	}
}

// receive records the latency of each new message of this run.
func (p *participant) receive(ms []chat.Message) {
	now := p.sh.now()
	for _, cm := range ms {
		if cm.Seq != 0 {
			if cm.Seq <= p.seen {
				continue
			}
			if p.joinNotified && cm.Seq > p.seen+1 {
				p.sh.count.missed.Add(int64(cm.Seq - p.seen - 1))
			}
			p.seen = cm.Seq
		}
		sent, ok := parseStamp(cm.Text, p.sh.run)
		if !ok {
			continue
		}
		p.sh.hist.record(time.Duration(now - sent))
		p.sh.count.deliveries.Add(1)
	}
	p.sh.signal()
}

// sendChat sends one stamped chat message to the room.
func (p *participant) sendChat(k int) error {
	text := formatStamp(p.sh.run, p.sh.now(), p.idx, k)
	if err := p.conn().Send(signaling.Message{Type: signaling.TypeChat, Text: text}); err != nil {
		return fmt.Errorf("client %d: chat: %w", p.idx, err)
	}
	p.sh.count.sent.Add(1)
	return nil
}

// watch counts the connection's end unless the run is closing.
func (p *participant) watch() {
	<-p.conn().Done()
	if !p.sh.closing.Load() {
		p.sh.count.disconnects.Add(1)
	}
}
