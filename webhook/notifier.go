package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero (or negative) Config fields.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 5
	DefaultQueueSize   = 1024
)

// DefaultBackoff returns the default retry schedule: 1s, 2s, 4s, 8s. It is a
// function rather than a variable so callers cannot mutate a shared slice.
func DefaultBackoff() []time.Duration {
	return []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
}

const (
	// maxRetryAfter caps a receiver-supplied Retry-After delay.
	maxRetryAfter = 60 * time.Second
	// dropWarnInterval rate-limits the "event dropped" warning.
	dropWarnInterval = 10 * time.Second
	// maxDrainBytes bounds how much of a response body is read so the
	// connection can be reused.
	maxDrainBytes = 64 << 10
)

// Config configures a Notifier. Only URLs and Secret are required.
type Config struct {
	// URLs are the endpoints every event is POSTed to. Each URL has its own
	// queue and sender goroutine, so a slow endpoint does not delay others.
	URLs []string
	// Secret is the HMAC-SHA256 key used to sign requests.
	Secret string
	// Timeout bounds each delivery attempt, from dialling until the
	// response has been read. Default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is the total number of attempts per event and endpoint,
	// including the first. Default DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
	// Backoff is the delay before each retry: Backoff[0] before the second
	// attempt, Backoff[1] before the third, and so on; the last entry is
	// reused when there are more retries than entries. Default
	// DefaultBackoff().
	Backoff []time.Duration
	// QueueSize is the number of events buffered per endpoint before new
	// events are dropped. Default DefaultQueueSize.
	QueueSize int
	// Client sends the requests. When nil, the Notifier uses its own client
	// that does not follow redirects and whose idle connections are closed
	// by Close.
	Client *http.Client
	// Logger receives delivery failures and drop warnings. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock used for timestamps and log rate limiting. Default
	// time.Now.
	Now func() time.Time
	// Sleep waits d before a retry, returning early with a non-nil error
	// when ctx ends. Tests can inject an instant or recording
	// implementation. Default: a timer-based wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats are cumulative delivery counters. Counts are per endpoint: an event
// sent to two URLs counts twice.
type Stats struct {
	// Sent counts deliveries acknowledged with a 2xx status.
	Sent uint64
	// Failed counts deliveries given up on: permanent errors, exhausted
	// attempts, or an in-flight delivery aborted by Close.
	Failed uint64
	// Dropped counts deliveries never attempted: queue full, Notify after
	// Close, or still queued when Close's context ended.
	Dropped uint64
	// Retries counts attempts after the first.
	Retries uint64
}

// Notifier queues events and delivers them to webhook endpoints. Create it
// with New and release it with Close. Its methods are safe for concurrent
// use.
type Notifier struct {
	secret      string
	timeout     time.Duration
	maxAttempts int
	backoff     []time.Duration
	client      *http.Client
	ownClient   bool
	log         *slog.Logger
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error

	// ctx is cancelled when Close gives up flushing; it aborts in-flight
	// requests and backoff waits.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.RWMutex // guards closed and sends on senders' queues
	closed  bool
	senders []*sender

	wg   sync.WaitGroup
	done chan struct{} // closed when every sender has exited

	sent, failed, dropped, retries atomic.Uint64

	dropMu       sync.Mutex
	lastDropWarn time.Time
	unwarnedDrop uint64
}

type sender struct {
	url    string // as configured
	logURL string // with any password redacted
	queue  chan delivery
}

// delivery is one queued event, encoded once and shared by all endpoints.
type delivery struct {
	id    string
	event string
	body  []byte
}

// New starts a Notifier with one sender goroutine per URL. It never fails;
// an unusable URL surfaces as failed deliveries in the log and in Stats.
func New(cfg Config) *Notifier {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = DefaultBackoff()
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepContext
	}
	ownClient := cfg.Client == nil
	if ownClient {
		cfg.Client = newClient()
	}

	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{
		secret:      cfg.Secret,
		timeout:     cfg.Timeout,
		maxAttempts: cfg.MaxAttempts,
		backoff:     append([]time.Duration(nil), cfg.Backoff...),
		client:      cfg.Client,
		ownClient:   ownClient,
		log:         cfg.Logger.With("component", "webhook"),
		now:         cfg.Now,
		sleep:       cfg.Sleep,
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
	}
	for _, u := range cfg.URLs {
		s := &sender{url: u, logURL: redact(u), queue: make(chan delivery, cfg.QueueSize)}
		n.senders = append(n.senders, s)
		n.wg.Add(1)
		go n.run(s)
	}
	go func() {
		n.wg.Wait()
		close(n.done)
	}()
	return n
}

func newClient() *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	return &http.Client{
		Transport: tr,
		// A redirect would turn the signed POST into something else (a GET
		// for 301/302/303); report the 3xx as a permanent failure instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Redacted()
}

// Notify queues e for delivery to every endpoint and returns immediately.
// It never blocks and never fails: if an endpoint's queue is full, or the
// Notifier is closed, the event is dropped for that endpoint, counted in
// Stats.Dropped, and a rate-limited warning is logged. Empty ID and zero
// CreatedAt are filled in. e is encoded before Notify returns, so the
// caller may reuse anything it points to.
func (n *Notifier) Notify(e Event) {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.CreatedAt == 0 {
		e.CreatedAt = n.now().Unix()
	}
	body, err := json.Marshal(e)
	if err != nil {
		// Not reachable with the field types of Event; kept so a future
		// field cannot make Notify panic.
		n.log.Error("webhook event not encodable", "event", e.Event, "id", e.ID, "err", err)
		n.noteDrop(uint64(len(n.senders)), "encoding failed")
		return
	}
	d := delivery{id: e.ID, event: e.Event, body: body}

	var full uint64
	n.mu.RLock()
	if n.closed {
		n.mu.RUnlock()
		n.noteDrop(uint64(len(n.senders)), "notifier closed")
		return
	}
	for _, s := range n.senders {
		select {
		case s.queue <- d:
		default:
			full++
		}
	}
	n.mu.RUnlock()
	if full > 0 {
		n.noteDrop(full, "queue full")
	}
}

// newID returns a random event ID such as "evt_FDZQDIG37OYAL3WMXLJQBUHPLK".
func newID() string {
	return "evt_" + rand.Text()
}

// noteDrop counts count dropped deliveries and logs at most one warning per
// dropWarnInterval, reporting how many drops it covers.
func (n *Notifier) noteDrop(count uint64, reason string) {
	if count == 0 {
		return
	}
	total := n.dropped.Add(count)

	now := n.now()
	n.dropMu.Lock()
	n.unwarnedDrop += count
	warn := n.lastDropWarn.IsZero() || now.Sub(n.lastDropWarn) >= dropWarnInterval
	var since uint64
	if warn {
		since = n.unwarnedDrop
		n.unwarnedDrop = 0
		n.lastDropWarn = now
	}
	n.dropMu.Unlock()

	if warn {
		n.log.Warn("webhook events dropped",
			"reason", reason, "dropped", since, "dropped_total", total,
			"suppressed_for", dropWarnInterval)
	}
}

// Stats returns a snapshot of the delivery counters.
func (n *Notifier) Stats() Stats {
	return Stats{
		Sent:    n.sent.Load(),
		Failed:  n.failed.Load(),
		Dropped: n.dropped.Load(),
		Retries: n.retries.Load(),
	}
}

// Close stops accepting events and delivers what is already queued,
// including retries, until every queue is empty or ctx ends. When ctx ends
// first, in-flight requests and backoff waits are aborted, the remaining
// events are counted as dropped, and the returned error wraps ctx.Err().
// In every case all goroutines started by the Notifier have exited when
// Close returns. Later or concurrent calls behave the same way, each
// bounded by its own ctx.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, s := range n.senders {
			close(s.queue)
		}
	}
	n.mu.Unlock()

	var err error
	select {
	case <-n.done:
	case <-ctx.Done():
		n.cancel()
		<-n.done // prompt: every blocking step watches n.ctx
		err = fmt.Errorf("webhook: close: flush abandoned: %w", ctx.Err())
	}
	n.cancel()
	if n.ownClient {
		n.client.CloseIdleConnections()
	}
	return err
}

// run is the sender goroutine of one endpoint.
func (n *Notifier) run(s *sender) {
	defer n.wg.Done()
	for d := range s.queue {
		if n.ctx.Err() != nil {
			n.dropped.Add(1)
			continue
		}
		n.deliver(s, d)
	}
}

// deliver sends d to s, retrying as configured, and updates the counters.
func (n *Notifier) deliver(s *sender, d delivery) {
	for attempt := 1; ; attempt++ {
		res := n.attempt(s, d)
		if res.err == nil {
			n.sent.Add(1)
			return
		}
		log := n.log.With("url", s.logURL, "event", d.event, "id", d.id, "attempt", attempt)
		if n.ctx.Err() != nil {
			n.failed.Add(1)
			log.Warn("webhook delivery abandoned on close", "err", res.err)
			return
		}
		if !res.retry {
			n.failed.Add(1)
			log.Error("webhook delivery failed permanently", "err", res.err)
			return
		}
		if attempt >= n.maxAttempts {
			n.failed.Add(1)
			log.Error("webhook delivery failed, attempts exhausted", "err", res.err)
			return
		}
		wait := n.backoff[min(attempt-1, len(n.backoff)-1)]
		if res.retryAfter >= 0 {
			wait = res.retryAfter
		}
		log.Warn("webhook delivery failed, will retry", "err", res.err, "retry_in", wait)
		if err := n.sleep(n.ctx, wait); err != nil {
			n.failed.Add(1)
			log.Warn("webhook delivery abandoned on close", "err", fmt.Errorf("backoff: %w", err))
			return
		}
		n.retries.Add(1)
	}
}

// result is the outcome of one attempt.
type result struct {
	err        error         // nil when delivered
	retry      bool          // whether err is transient
	retryAfter time.Duration // receiver-requested delay, or -1
}

// attempt makes one signed POST of d to s.
func (n *Notifier) attempt(s *sender, d delivery) result {
	ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(d.body))
	if err != nil {
		return result{err: fmt.Errorf("build request: %w", err), retryAfter: -1}
	}
	now := n.now()
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chorus-webhook/1")
	req.Header.Set(HeaderEvent, d.event)
	req.Header.Set(HeaderDelivery, d.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(n.secret, ts, d.body))

	resp, err := n.client.Do(req)
	if err != nil {
		// Network errors and timeouts are transient. Do's errors may embed
		// the URL; it is logged redacted elsewhere, so strip it here.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return result{err: fmt.Errorf("post: %w", err), retry: true, retryAfter: -1}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	_ = resp.Body.Close()

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return result{retryAfter: -1}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		ra := time.Duration(-1)
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			ra = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		}
		return result{err: fmt.Errorf("status %d", code), retry: true, retryAfter: ra}
	default:
		return result{err: fmt.Errorf("status %d", code), retryAfter: -1}
	}
}

// parseRetryAfter interprets a Retry-After value, either delay-seconds or an
// HTTP date, capped at maxRetryAfter. It returns -1 if v is absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return -1
	}
	return min(d, maxRetryAfter)
}

// sleepContext is the default Config.Sleep.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
