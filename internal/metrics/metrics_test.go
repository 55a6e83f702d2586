package metrics

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chorus-sfu/chorus/recorder"
	"github.com/chorus-sfu/chorus/sfu"
)

// families is one parsed scrape.
type families map[string]*dto.MetricFamily

// scrape fetches the handler's text exposition over HTTP and parses it.
func scrape(t *testing.T, h http.Handler) families {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the value of the sample of family name with the given label
// pairs ("kind", "video"); it fails the test when there is none.
func (f families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := f.metric(t, name, labels...)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s: not a counter or gauge", name)
	return 0
}

func (f families) metric(t *testing.T, name string, labels ...string) *dto.Metric {
	t.Helper()
	fam, ok := f[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s: no sample with labels %v", name, labels)
	return nil
}

func (f families) typeOf(t *testing.T, name string) dto.MetricType {
	t.Helper()
	fam, ok := f[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	return fam.GetType()
}

// fixedSources are every source with fixed values, the SFU's built by hand.
func fixedSources() Sources {
	return Sources{
		SFU: func() sfu.Snapshot {
			return sfu.Snapshot{
				Rooms: 2, Participants: 5, Subscriptions: 7,
				Tracks: map[string]int{"audio": 3, "video": 4},
				Totals: sfu.Counters{PacketsIn: 1000, BytesIn: 900_000, PacketsOut: 2500, NACKsReceived: 12,
					NACKsSent: 3, PLIsSent: 4, KeyframeRequests: 5, Retransmissions: 11, Dropped: 6,
					Duplicates: 2, LayerSwitches: 8, PaddingPackets: 40, FECPackets: 9, Malformed: 1},
				BandwidthEstimates: []float64{80_000, 300_000, 1_500_000, 25_000_000},
			}
		},
		Recorder:        func() recorder.ManagerStats { return recorder.ManagerStats{Rooms: 1, Active: 2} },
		TURNAllocations: func() int { return 3 },
		Signaling: func() SignalingStats {
			return SignalingStats{Sessions: 4, MessagesIn: 100, MessagesOut: 150, RateLimited: 5, Rejected: 6}
		},
	}
}

func TestScrapeExposesSources(t *testing.T) {
	reg := NewRegistry(fixedSources(), "v1.2.3")
	f := scrape(t, HandlerWithLogger(reg, slog.New(slog.DiscardHandler)))

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		typ    dto.MetricType
	}{
		{"chorus_build_info", []string{"version", "v1.2.3"}, 1, dto.MetricType_GAUGE},
		{"chorus_rooms", nil, 2, dto.MetricType_GAUGE},
		{"chorus_participants", nil, 5, dto.MetricType_GAUGE},
		{"chorus_tracks", []string{"kind", "audio"}, 3, dto.MetricType_GAUGE},
		{"chorus_tracks", []string{"kind", "video"}, 4, dto.MetricType_GAUGE},
		{"chorus_subscriptions", nil, 7, dto.MetricType_GAUGE},
		{"chorus_packets_in_total", nil, 1000, dto.MetricType_COUNTER},
		{"chorus_bytes_in_total", nil, 900_000, dto.MetricType_COUNTER},
		{"chorus_packets_out_total", nil, 2500, dto.MetricType_COUNTER},
		{"chorus_nacks_received_total", nil, 12, dto.MetricType_COUNTER},
		{"chorus_nacks_sent_total", nil, 3, dto.MetricType_COUNTER},
		{"chorus_plis_sent_total", nil, 4, dto.MetricType_COUNTER},
		{"chorus_keyframe_requests_total", nil, 5, dto.MetricType_COUNTER},
		{"chorus_retransmissions_total", nil, 11, dto.MetricType_COUNTER},
		{"chorus_dropped_packets_total", nil, 6, dto.MetricType_COUNTER},
		{"chorus_duplicate_packets_total", nil, 2, dto.MetricType_COUNTER},
		{"chorus_layer_switches_total", nil, 8, dto.MetricType_COUNTER},
		{"chorus_padding_packets_total", nil, 40, dto.MetricType_COUNTER},
		{"chorus_fec_packets_total", nil, 9, dto.MetricType_COUNTER},
		{"chorus_malformed_packets_total", nil, 1, dto.MetricType_COUNTER},
		{"chorus_recording_rooms", nil, 1, dto.MetricType_GAUGE},
		{"chorus_recording_active", nil, 2, dto.MetricType_GAUGE},
		{"chorus_turn_allocations", nil, 3, dto.MetricType_GAUGE},
		{"chorus_signaling_sessions", nil, 4, dto.MetricType_GAUGE},
		{"chorus_signaling_messages_total", []string{"direction", "in"}, 100, dto.MetricType_COUNTER},
		{"chorus_signaling_messages_total", []string{"direction", "out"}, 150, dto.MetricType_COUNTER},
		{"chorus_signaling_rate_limited_total", nil, 5, dto.MetricType_COUNTER},
		{"chorus_signaling_rejected_total", nil, 6, dto.MetricType_COUNTER},
	} {
		if got := f.value(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
		if typ := f.typeOf(t, c.name); typ != c.typ {
			t.Errorf("%s is a %v, want a %v", c.name, typ, c.typ)
		}
	}

	// the estimates: 80k, 300k, 1.5M and one above the top bucket
	h := f.metric(t, "chorus_bandwidth_estimate_bps").GetHistogram()
	if h == nil || f.typeOf(t, "chorus_bandwidth_estimate_bps") != dto.MetricType_HISTOGRAM {
		t.Fatal("chorus_bandwidth_estimate_bps is not a histogram")
	}
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 26_880_000 {
		t.Fatalf("histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{100e3: 1, 250e3: 1, 500e3: 2, 1e6: 2, 2e6: 3, 3e6: 3, 5e6: 3, 10e6: 3, 20e6: 3}
	want[math.Inf(1)] = 4 // the parser may keep the +Inf bucket
	seen := 0
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			seen++
		}
		if n, ok := want[b.GetUpperBound()]; !ok || b.GetCumulativeCount() != n {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}

	if seen != len(want)-1 {
		t.Fatalf("%d buckets, want %d", seen, len(want)-1)
	}

	// the Go runtime and the process
	if f.value(t, "go_goroutines") < 1 {
		t.Error("no goroutines")
	}
	if _, ok := f["go_memstats_heap_alloc_bytes"]; !ok {
		t.Error("no Go memory statistics")
	}
	if _, ok := f["process_resident_memory_bytes"]; !ok {
		t.Error("no process statistics")
	}
	if _, ok := f["chorus_bytes_out_total"]; ok {
		t.Error("bytes out exposed without a source")
	}
}

// growingSFU is an SFU source whose streams the test changes between scrapes.
type growingSFU struct {
	mu   sync.Mutex
	snap sfu.Snapshot
}

func (g *growingSFU) set(streams ...sfu.StreamCounters) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.snap = sfu.Snapshot{Streams: streams}
	for _, s := range streams {
		g.snap.Totals.Add(s.Counters)
	}
}

func (g *growingSFU) get() sfu.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.snap
}

func stream(key string, in, out uint64) sfu.StreamCounters {
	return sfu.StreamCounters{Key: key, Counters: sfu.Counters{PacketsIn: in, PacketsOut: out}}
}

func TestCountersNeverDecrease(t *testing.T) {
	g := &growingSFU{}
	h := HandlerWithLogger(NewRegistry(Sources{SFU: g.get}, "test"), slog.New(slog.DiscardHandler))
	in := func() float64 { return scrape(t, h).value(t, "chorus_packets_in_total") }
	out := func() float64 { return scrape(t, h).value(t, "chorus_packets_out_total") }

	g.set(stream("up A", 100, 0), stream("down B", 0, 90))
	if got := in(); got != 100 {
		t.Fatalf("first scrape: %v packets in, want 100", got)
	}
	g.set(stream("up A", 150, 0), stream("down B", 0, 140), stream("down C", 0, 10))
	if got := in(); got != 150 {
		t.Fatalf("the source grew: %v packets in, want 150", got)
	}
	if got := out(); got != 150 {
		t.Fatalf("a subscription came: %v packets out, want 150", got)
	}
	// B leaves: the snapshot's sum falls to 15, the counter stays
	g.set(stream("up A", 160, 0), stream("down C", 0, 15))
	if got := out(); got != 155 {
		t.Fatalf("a subscription left: %v packets out, want 155", got)
	}
	// a new stream under an old key starts from zero: all of it is new
	g.set(stream("up A", 160, 0), stream("down C", 0, 4))
	if got := out(); got != 159 {
		t.Fatalf("a key reused: %v packets out, want 159", got)
	}
	// everybody leaves; then the same again
	g.set()
	if got, got2 := in(), in(); got != 160 || got2 != 160 {
		t.Fatalf("empty SFU: %v then %v packets in, want 160", got, got2)
	}

	// a snapshot built without streams is followed through its totals
	fixed := fixedSources()
	h2 := Handler(NewRegistry(Sources{SFU: fixed.SFU}, "test"))
	a := scrape(t, h2).value(t, "chorus_packets_in_total")
	b := scrape(t, h2).value(t, "chorus_packets_in_total")
	if a != 1000 || b != 1000 {
		t.Fatalf("fixed totals scraped as %v then %v, want 1000", a, b)
	}
}

func TestNilSourcesAreSkipped(t *testing.T) {
	f := scrape(t, Handler(NewRegistry(Sources{}, "")))
	if got := f.value(t, "chorus_build_info", "version", "unknown"); got != 1 {
		t.Fatalf("build info %v", got)
	}
	for name := range f {
		if strings.HasPrefix(name, "chorus_") && name != "chorus_build_info" {
			t.Errorf("%s exposed without a source", name)
		}
	}
	if _, ok := f["go_goroutines"]; !ok {
		t.Error("the Go collector is missing")
	}

	src := fixedSources()
	src.Recorder, src.Signaling = nil, nil
	f = scrape(t, Handler(NewRegistry(src, "v")))
	for name := range f {
		if strings.HasPrefix(name, "chorus_recording_") || strings.HasPrefix(name, "chorus_signaling_") {
			t.Errorf("%s exposed without a source", name)
		}
	}
	if f.value(t, "chorus_turn_allocations") != 3 || f.value(t, "chorus_rooms") != 2 {
		t.Error("the sources present are not exposed")
	}
}

// The metrics follow Prometheus' naming conventions.
func TestMetricNamesLint(t *testing.T) {
	reg := NewRegistry(fixedSources(), "v")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "chorus_") {
			names = append(names, f.GetName())
		}
	}
	problems, err := testutil.GatherAndLint(reg, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// The real sources: an SFU with a participant, a recorder recording its
// room.
func TestRealSources(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	s, err := sfu.New(sfu.Config{UDPIP: "127.0.0.1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Join("room", sfu.JoinOptions{Name: "alice", Publish: true, Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mgr := recorder.NewManager(recorder.ManagerOptions{Dir: t.TempDir(), Rooms: s.Rooms(), Logger: log})
	defer mgr.Close()
	if _, err := mgr.StartRecording(context.Background(), "room", ""); err != nil {
		t.Fatal(err)
	}
	h := HandlerWithLogger(NewRegistry(Sources{SFU: s.Snapshot, Recorder: mgr.Stats}, "test"), log)
	f := scrape(t, h)
	for name, want := range map[string]float64{
		"chorus_rooms": 1, "chorus_participants": 1, "chorus_subscriptions": 0, "chorus_packets_in_total": 0,
		"chorus_recording_rooms": 1, "chorus_recording_active": 0, // no track to record yet
	} {
		if got := f.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := f.value(t, "chorus_tracks", "kind", "video"); got != 0 {
		t.Errorf("%v video tracks", got)
	}
	p.Close()
	if got := scrape(t, h).value(t, "chorus_rooms"); got != 0 {
		t.Errorf("%v rooms once the last participant left", got)
	}
}
