package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/signaling/client"
)

// config is one run's settings (the command's flags).
type config struct {
	url         string
	room        string
	token       string
	clients     int
	joinRate    float64 // joins per second
	joinTimeout time.Duration

	media      bool
	publishers int
	audioOnly  bool
	videoKbps  int
	settle     time.Duration // longest wait for every client to receive its media

	chatSenders int
	chatRate    float64 // messages per second per sender
	duration    time.Duration
	drain       time.Duration // longest wait for deliveries after the last message

	serverPID int // 0: no server CPU and memory
}

func (c config) validate() error {
	var errs []error
	if c.url == "" || c.room == "" {
		errs = append(errs, errors.New("-url and -room are required"))
	}
	if c.clients < 1 {
		errs = append(errs, errors.New("-clients must be at least 1"))
	}
	if c.joinRate <= 0 {
		errs = append(errs, errors.New("-join-rate must be positive"))
	}
	if c.publishers < 0 || c.publishers > c.clients {
		errs = append(errs, errors.New("-publishers must be between 0 and -clients"))
	}
	if c.publishers > 0 && !c.media {
		errs = append(errs, errors.New("-publishers needs -media"))
	}
	if c.chatSenders < 0 || c.chatSenders > c.clients {
		errs = append(errs, errors.New("-chat-senders must be between 0 and -clients"))
	}
	if c.chatSenders > 0 && c.chatRate <= 0 {
		errs = append(errs, errors.New("-chat-rate must be positive"))
	}
	if c.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	return errors.Join(errs...)
}

// tracksPerPublisher is the number of tracks each publisher sends.
func (c config) tracksPerPublisher() int {
	if c.audioOnly {
		return 1
	}
	return 2
}

// result is what a run measured. Rates are over the measured interval
// (the chat send window); latencies over every delivery of the run.
type result struct {
	Clients     int     `json:"clients"`
	Joined      int64   `json:"joined"`
	JoinFailed  int64   `json:"joinFailed"`
	JoinSeconds float64 `json:"joinSeconds"`
	Media       bool    `json:"media"`
	Publishers  int     `json:"publishers"`
	AudioOnly   bool    `json:"audioOnly"`
	VideoKbps   int     `json:"videoKbps,omitempty"`
	// MediaReady counts clients receiving every track they should, after
	// SettleSeconds.
	MediaReady    int64   `json:"mediaReady"`
	MediaWanted   int64   `json:"mediaWanted"`
	SettleSeconds float64 `json:"settleSeconds"`

	ChatSenders int     `json:"chatSenders"`
	ChatRate    float64 `json:"chatRate"`
	Seconds     float64 `json:"seconds"`  // measured interval
	Delivery    string  `json:"delivery"` // push, pull (notify then chatHistory), mixed or none

	Sent          int64   `json:"sent"`
	Rejected      int64   `json:"rejected"`  // rate_limited and limit_exceeded errors
	Expected      int64   `json:"expected"`  // accepted messages x connected clients
	Delivered     int64   `json:"delivered"` // after the drain
	DeliveriesSec float64 `json:"deliveriesPerSec"`
	Missed        int64   `json:"missed"` // gone from the history before a pull
	Pushes        int64   `json:"pushes"`
	Notifies      int64   `json:"notifies"`
	Pulls         int64   `json:"pulls"`
	Offers        int64   `json:"offers"` // subscriber offers received by all clients

	P50ms float64 `json:"p50ms"`
	P90ms float64 `json:"p90ms"`
	P99ms float64 `json:"p99ms"`
	MaxMs float64 `json:"maxMs"`

	AudioPktsSec float64          `json:"audioPacketsPerSec"`
	VideoPktsSec float64          `json:"videoPacketsPerSec"`
	MediaMbitSec float64          `json:"mediaMbitPerSec"`
	ServerCPU    float64          `json:"serverCPUPercent"` // % of one core; -1: not measured
	LoadCPU      float64          `json:"loadCPUPercent"`
	ServerRSSMB  float64          `json:"serverRSSMB"` // -1: not measured
	Disconnects  int64            `json:"disconnects"`
	Errors       map[string]int64 `json:"errors,omitempty"`
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runLoad runs one load test against a running server and returns what it
// measured. Publishers are the first clients, chat senders the last ones.
func runLoad(ctx context.Context, cfg config, log *slog.Logger) (result, error) {
	if err := cfg.validate(); err != nil {
		return result{}, err
	}
	sh := newShared(cfg, newRunID())
	res := result{Clients: cfg.clients, Media: cfg.media, Publishers: cfg.publishers, AudioOnly: cfg.audioOnly,
		ChatSenders: cfg.chatSenders, ChatRate: cfg.chatRate, ServerCPU: -1, ServerRSSMB: -1}
	if cfg.media && !cfg.audioOnly {
		res.VideoKbps = cfg.videoKbps
	}
	api, err := client.NewAPI(nil) // loopback only; shared by every PeerConnection
	if err != nil {
		return res, fmt.Errorf("webrtc api: %w", err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	parts := make([]*participant, cfg.clients)
	for i := range parts {
		parts[i] = &participant{idx: i, sh: sh}
		if cfg.media {
			others := cfg.publishers
			if i < cfg.publishers {
				others--
			}
			parts[i].wantTracks = others * cfg.tracksPerPublisher()
		}
	}
	defer closeAll(parts, sh)

	// joins, paced at the join rate
	joinStart := time.Now()
	if err := joinAll(runCtx, cfg, api, parts, log); err != nil {
		return res, err
	}
	res.JoinSeconds = time.Since(joinStart).Seconds()
	res.Joined, res.JoinFailed = sh.count.joined.Load(), sh.count.joinFailed.Load()
	log.Info("joined", "clients", res.Joined, "failed", res.JoinFailed, "seconds", fmt.Sprintf("%.1f", res.JoinSeconds))
	if res.Joined == 0 {
		return res, errors.New("no client could join")
	}

	if cfg.media {
		for _, p := range parts {
			if p.conn() != nil && p.wantTracks > 0 {
				res.MediaWanted++
			}
		}
		settleStart := time.Now()
		waitFor(runCtx, sh, cfg.settle, func() bool { return sh.count.mediaReady.Load() >= res.MediaWanted }, log,
			func() { log.Info("waiting for media", "ready", sh.count.mediaReady.Load(), "of", res.MediaWanted) })
		res.SettleSeconds = time.Since(settleStart).Seconds()
		res.MediaReady = sh.count.mediaReady.Load()
		log.Info("media flowing", "ready", res.MediaReady, "of", res.MediaWanted, "seconds", fmt.Sprintf("%.1f", res.SettleSeconds))
	}

	// the measured interval: chat senders run for cfg.duration
	srvPID := ""
	if cfg.serverPID > 0 {
		srvPID = strconv.Itoa(cfg.serverPID)
	}
	cpu0 := sampleCPU(srvPID, log)
	aud0, vid0, bytes0 := sh.count.audioPackets.Load(), sh.count.videoPackets.Load(), sh.count.mediaBytes.Load()
	start := time.Now()
	sendChat(runCtx, cfg, parts, log)
	if d := cfg.duration - time.Since(start); d > 0 { // no senders: just measure media and CPU
		select {
		case <-time.After(d):
		case <-runCtx.Done():
		}
	}
	elapsed := time.Since(start)
	cpu1 := sampleCPU(srvPID, log)
	aud1, vid1, bytes1 := sh.count.audioPackets.Load(), sh.count.videoPackets.Load(), sh.count.mediaBytes.Load()
	windowDeliveries := sh.count.deliveries.Load()
	secs := elapsed.Seconds()
	res.Seconds = secs
	res.DeliveriesSec = float64(windowDeliveries) / secs
	res.AudioPktsSec = float64(aud1-aud0) / secs
	res.VideoPktsSec = float64(vid1-vid0) / secs
	res.MediaMbitSec = float64(bytes1-bytes0) * 8 / secs / 1e6
	res.LoadCPU = float64(cpu1.self-cpu0.self) / float64(elapsed) * 100
	if cpu0.ok && cpu1.ok {
		res.ServerCPU = float64(cpu1.server-cpu0.server) / float64(elapsed) * 100
	}
	if srvPID != "" {
		if rss, err := procRSS(srvPID); err == nil {
			res.ServerRSSMB = float64(rss) / (1 << 20)
		} else {
			log.Warn("server memory", "err", err)
		}
	}

	// the drain: wait for the deliveries still on their way
	errs := sh.count.errorCounts()
	res.Sent = sh.count.sent.Load()
	res.Rejected = errs["rate_limited"] + errs["limit_exceeded"]
	connected := int64(res.Joined) - sh.count.disconnects.Load()
	res.Expected = max(res.Sent-res.Rejected, 0) * connected
	waitFor(runCtx, sh, cfg.drain, func() bool { return sh.count.deliveries.Load() >= res.Expected }, log,
		func() { log.Info("draining", "delivered", sh.count.deliveries.Load(), "of", res.Expected) })

	res.Delivered = sh.count.deliveries.Load()
	res.Missed = sh.count.missed.Load()
	res.Pushes, res.Notifies, res.Pulls = sh.count.pushes.Load(), sh.count.notifies.Load(), sh.count.pulls.Load()
	res.Offers = sh.count.offers.Load()
	res.Disconnects = sh.count.disconnects.Load()
	res.Errors = sh.count.errorCounts()
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	switch {
	case res.Pushes > 0 && res.Pulls > 0:
		res.Delivery = "mixed"
	case res.Pushes > 0:
		res.Delivery = "push"
	case res.Pulls > 0:
		res.Delivery = "pull"
	default:
		res.Delivery = "none"
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.P50ms, res.P90ms, res.P99ms = ms(sh.hist.percentile(50)), ms(sh.hist.percentile(90)), ms(sh.hist.percentile(99))
	res.MaxMs = ms(sh.hist.percentile(100))
	return res, nil
}

// joinAll connects every client, starting joins at the join rate; it
// returns when every join has ended (joined or failed).
func joinAll(ctx context.Context, cfg config, api *webrtc.API, parts []*participant, log *slog.Logger) error {
	sh := parts[0].sh
	interval := time.Duration(float64(time.Second) / cfg.joinRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	var firstErrMu sync.Mutex
	var logged int
	for i, p := range parts {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				wg.Wait()
				return fmt.Errorf("joining: %w", ctx.Err())
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.connect(ctx, api, i < cfg.publishers); err != nil {
				sh.count.joinFailed.Add(1)
				firstErrMu.Lock()
				if logged < 5 {
					logged++
					log.Warn("join failed", "err", err)
				}
				firstErrMu.Unlock()
				if c := p.cl.Swap(nil); c != nil {
					_ = c.Close()
				}
				return
			}
			sh.count.joined.Add(1)
			go p.watch()
		}()
		if (i+1)%100 == 0 {
			log.Info("joining", "started", i+1, "joined", sh.count.joined.Load(), "failed", sh.count.joinFailed.Load())
		}
	}
	wg.Wait()
	return nil
}

// sendChat runs the chat senders (the last cfg.chatSenders clients that
// joined) for cfg.duration, each at cfg.chatRate, their first messages
// spread over one interval.
func sendChat(ctx context.Context, cfg config, parts []*participant, log *slog.Logger) {
	if cfg.chatSenders == 0 {
		return
	}
	var senders []*participant
	for i := len(parts) - 1; i >= 0 && len(senders) < cfg.chatSenders; i-- {
		if parts[i].conn() != nil {
			senders = append(senders, parts[i])
		}
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	interval := time.Duration(float64(time.Second) / cfg.chatRate)
	var wg sync.WaitGroup
	for j, p := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := interval * time.Duration(j) / time.Duration(len(senders))
			select {
			case <-time.After(offset):
			case <-sctx.Done():
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for k := 0; ; k++ {
				if err := p.sendChat(k); err != nil {
					log.Warn("chat send failed", "err", err)
					return
				}
				select {
				case <-tick.C:
				case <-sctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
}

// waitFor waits until done holds, at most timeout, re-checking after each
// progress signal and reporting every 5 s.
func waitFor(ctx context.Context, sh *shared, timeout time.Duration, done func() bool, log *slog.Logger, report func()) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	every := time.NewTicker(5 * time.Second)
	defer every.Stop()
	for !done() {
		select {
		case <-sh.progress:
		case <-every.C:
			report()
		case <-deadline.C:
			log.Warn("gave up waiting", "after", timeout)
			report()
			return
		case <-ctx.Done():
			return
		}
	}
}

type cpuSample struct {
	self, server time.Duration
	ok           bool // server sampled
}

func sampleCPU(serverPID string, log *slog.Logger) cpuSample {
	var s cpuSample
	var err error
	if s.self, err = procCPU("self"); err != nil {
		log.Warn("own cpu", "err", err)
	}
	if serverPID != "" {
		if s.server, err = procCPU(serverPID); err != nil {
			log.Warn("server cpu", "err", err)
		} else {
			s.ok = true
		}
	}
	return s
}

// closeAll closes every client, 64 at a time.
func closeAll(parts []*participant, sh *shared) {
	sh.closing.Store(true)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, p := range parts {
		c := p.conn()
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.Close()
		}()
	}
	wg.Wait()
}
