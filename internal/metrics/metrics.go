// Package metrics exposes the server's state to Prometheus. Nothing is
// counted on the media path for it: a custom collector reads the SFU's
// snapshot (the counters the media path keeps anyway), the recorder's, the
// TURN server's and the signaling's state at scrape time.
package metrics

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chorus-sfu/chorus/recorder"
	"github.com/chorus-sfu/chorus/sfu"
)

// SignalingStats describe the signaling server. The message counters count
// since the process started: they must never decrease.
type SignalingStats struct {
	Sessions    int    // open signaling sessions
	MessagesIn  uint64 // messages received from clients
	MessagesOut uint64 // messages sent to clients
	RateLimited uint64 // messages refused by the rate limiter
	Rejected    uint64 // sessions or messages refused (bad input, access denied)
}

// Sources are read at every scrape. A nil source is skipped: its metrics
// are not exposed.
type Sources struct {
	SFU             func() sfu.Snapshot
	Recorder        func() recorder.ManagerStats
	TURNAllocations func() int
	Signaling       func() SignalingStats
}

// bandwidthBuckets are the upper bounds of the bandwidth estimate
// histogram, in bits per second.
func bandwidthBuckets() []float64 {
	return []float64{100e3, 250e3, 500e3, 1e6, 2e6, 3e6, 5e6, 10e6, 20e6}
}

// NewRegistry returns a registry with the server's metrics (prefix
// chorus_), the Go runtime's and the process's, and chorus_build_info
// labelled with build (the version).
func NewRegistry(src Sources, build string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(src, build),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg's metrics in the Prometheus exposition formats;
// gathering errors are logged with slog.Default() and the metrics that
// could be gathered are served.
func Handler(reg *prometheus.Registry) http.Handler {
	return HandlerWithLogger(reg, slog.Default())
}

// HandlerWithLogger is Handler logging to log.
func HandlerWithLogger(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// errorLog adapts slog to promhttp.Logger.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Error("metrics", "err", fmt.Sprint(v...))
}

// collector reads the sources at scrape time.
type collector struct {
	src   Sources
	build string
	defs  []counterDef

	buildInfo, rooms, participants, tracks, subscriptions, bandwidth *prometheus.Desc
	dataMessages                                                     *prometheus.Desc
	recRooms, recActive, recDropped, turnAllocs                      *prometheus.Desc
	sigSessions, sigMessages, sigRateLimited, sigRejected            *prometheus.Desc

	// mu serialises the SFU's part of scrapes: snapshots must reach the
	// stream totals in the order they were taken
	mu     sync.Mutex
	totals streamTotals
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("chorus_"+name, help, labels, nil)
}

func newCollector(src Sources, build string) *collector {
	if build == "" {
		build = "unknown"
	}
	return &collector{
		src: src, build: build, defs: counterDefs(),
		buildInfo:     desc("build_info", "Always 1, labelled with the server's version.", "version"),
		rooms:         desc("rooms", "Open rooms."),
		participants:  desc("participants", "Participants in the open rooms."),
		tracks:        desc("tracks", "Published tracks, by kind (a simulcast track counts once).", "kind"),
		subscriptions: desc("subscriptions", "Participants' subscriptions to tracks (down tracks)."),
		bandwidth: desc("bandwidth_estimate_bps",
			"Bandwidth estimates of the subscriber connections that sent transport-wide feedback, in bits per second, "+
				"as they are at scrape time (not accumulated: counts fall as connections go)."),
		recRooms:   desc("recording_rooms", "Rooms with a recording session."),
		recActive:  desc("recording_active", "Participants being recorded."),
		recDropped: desc("recording_dropped_total", "Packets the recorders dropped (queue full: disk or recorder too slow)."),
		turnAllocs: desc("turn_allocations", "Active TURN allocations."),
		dataMessages: desc("data_messages_total", "App data messages: sent (accepted from senders), rejected (refused: size, "+
			"rate, grant, header, recipient), delivered (to one receiver), dropped (not delivered: receiver's channel full or "+
			"over its receive budget).", "result"),
		sigSessions:    desc("signaling_sessions", "Open signaling sessions."),
		sigMessages:    desc("signaling_messages_total", "Signaling messages, by direction (in: from clients).", "direction"),
		sigRateLimited: desc("signaling_rate_limited_total", "Signaling messages refused by the rate limiter."),
		sigRejected:    desc("signaling_rejected_total", "Signaling sessions or messages rejected."),
	}
}

// Describe sends the descriptions of the metrics of the sources present.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.buildInfo
	if c.src.SFU != nil {
		for _, d := range []*prometheus.Desc{c.rooms, c.participants, c.tracks, c.subscriptions, c.bandwidth} {
			ch <- d
		}
		for _, d := range c.defs {
			ch <- d.desc
		}
	}
	if c.src.Recorder != nil {
		ch <- c.recRooms
		ch <- c.recActive
		ch <- c.recDropped
	}
	if c.src.TURNAllocations != nil {
		ch <- c.turnAllocs
	}
	if c.src.Signaling != nil {
		for _, d := range []*prometheus.Desc{c.sigSessions, c.sigMessages, c.sigRateLimited, c.sigRejected} {
			ch <- d
		}
	}
}

// Collect reads the sources.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.build)
	if c.src.SFU != nil {
		c.collectSFU(ch)
	}
	if c.src.Recorder != nil {
		st := c.src.Recorder()
		ch <- gauge(c.recRooms, st.Rooms)
		ch <- gauge(c.recActive, st.Active)
		ch <- counter(c.recDropped, st.Dropped)
	}
	if c.src.TURNAllocations != nil {
		ch <- gauge(c.turnAllocs, c.src.TURNAllocations())
	}
	if c.src.Signaling != nil {
		st := c.src.Signaling()
		ch <- gauge(c.sigSessions, st.Sessions)
		ch <- counter(c.sigMessages, st.MessagesIn, "in")
		ch <- counter(c.sigMessages, st.MessagesOut, "out")
		ch <- counter(c.sigRateLimited, st.RateLimited)
		ch <- counter(c.sigRejected, st.Rejected)
	}
}

func (c *collector) collectSFU(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	snap := c.src.SFU()
	totals := c.totals.update(snap, c.defs)
	c.mu.Unlock()

	ch <- gauge(c.rooms, snap.Rooms)
	ch <- gauge(c.participants, snap.Participants)
	kinds := map[string]int{"audio": 0, "video": 0} // both always present
	maps.Copy(kinds, snap.Tracks)
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		ch <- gauge(c.tracks, kinds[k], k)
	}
	ch <- gauge(c.subscriptions, snap.Subscriptions)
	for _, d := range c.defs {
		ch <- counter(d.desc, *d.field(&totals))
	}
	for _, r := range []struct {
		name string
		n    uint64
	}{{"sent", snap.Data.Sent}, {"rejected", snap.Data.Rejected}, {"delivered", snap.Data.Delivered}, {"dropped", snap.Data.Dropped}} {
		ch <- counter(c.dataMessages, r.n, r.name)
	}
	count, sum, buckets := histogram(snap.BandwidthEstimates, bandwidthBuckets())
	ch <- prometheus.MustNewConstHistogram(c.bandwidth, count, sum, buckets)
}

// histogram sorts values into cumulative buckets with the upper bounds.
func histogram(values, bounds []float64) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(bounds))
	for _, b := range bounds {
		buckets[b] = 0
	}
	for _, v := range values {
		count++
		sum += v
		for _, b := range bounds {
			if v <= b {
				buckets[b]++
			}
		}
	}
	return count, sum, buckets
}

func gauge(d *prometheus.Desc, v int, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}
