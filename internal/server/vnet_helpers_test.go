package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// Addresses of the in-process network: the SFU, the publisher and two
// subscribers, one of which sits behind a shaped link.
const (
	vnetCIDR      = "10.0.0.0/24"
	vnetSFUIP     = "10.0.0.1"
	vnetPubIP     = "10.0.0.2"
	vnetFreeIP    = "10.0.0.3"
	vnetCappedIP  = "10.0.0.4"
	vnetUnlimited = 100_000_000 // bits per second: far above anything sent
)

// vnetLink shapes the traffic towards the capped subscriber: a token-bucket
// queue (tail drop when full) whose rate the test changes at run time.
type vnetLink struct {
	queueBytes int
	burstBytes int
}

// vnetTopo is one in-process network. Media runs over it; signaling stays on
// the loopback HTTP server.
type vnetTopo struct {
	t      *testing.T
	router *vnet.Router
	nets   map[string]*vnet.Net
	tbf    *vnet.TBFQueue
	wire   *wireLog
	stalls *stallWatch

	mu   sync.Mutex
	rate int // current cap, bits per second
}

// newVnetTopo builds the network and starts it; it is stopped when the
// test ends, after the peers (registered later) have closed.
func newVnetTopo(t *testing.T, rate int, link vnetLink) *vnetTopo {
	t.Helper()
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: vnetCIDR, LoggerFactory: quietLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	v := &vnetTopo{t: t, router: router, nets: map[string]*vnet.Net{}, rate: rate, wire: newWireLog(vnetCappedIP),
		stalls: newStallWatch(t)}
	for _, ip := range []string{vnetSFUIP, vnetPubIP, vnetFreeIP, vnetCappedIP} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		v.nets[ip] = n
		if ip != vnetCappedIP {
			if err := router.AddNet(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The capped subscriber's downlink: router -> TBF queue -> its Net.
	v.tbf = vnet.NewTBFQueue(rate, link.burstBytes, int64(link.queueBytes))
	q, err := vnet.NewQueue(v.nets[vnetCappedIP], v.tbf)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.AddNet(q); err != nil {
		t.Fatal(err)
	}
	// what the SFU sends towards the capped subscriber, before the bottleneck
	router.AddChunkFilter(v.wire.filter)
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = router.Stop()
		_ = q.Close()
	})
	return v
}

// setRate changes the capped subscriber's downlink rate.
func (v *vnetTopo) setRate(bps int) {
	v.mu.Lock()
	v.rate = bps
	v.mu.Unlock()
	v.tbf.SetRate(bps)
}

func (v *vnetTopo) currentRate() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rate
}

// startServer starts a server whose media runs on the SFU's vnet address.
func (v *vnetTopo) startServer() *server.Server {
	v.t.Helper()
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: vnetSFUIP, Net: v.nets[vnetSFUIP],
		Logger: testLogger()})
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { _ = s.Close() })
	return s
}

// api returns a client API whose PeerConnections live on the vnet address ip.
func (v *vnetTopo) api(ip string) *webrtc.API {
	v.t.Helper()
	n := v.nets[ip]
	want := net.ParseIP(ip)
	api, err := client.NewAPI(func(_ *interceptor.Registry, se *webrtc.SettingEngine) {
		se.SetNet(n)
		se.LoggerFactory = quietLoggerFactory()
		se.SetIncludeLoopbackCandidate(false)
		se.SetIPFilter(func(a net.IP) bool { return a.Equal(want) })
		// the network never partitions: only give up on a dead peer late
		se.SetICETimeouts(10*time.Second, 20*time.Second, 500*time.Millisecond)
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return api
}

// quietLoggerFactory keeps vnet's and pion's loggers silent unless
// CHORUS_TEST_LOG is set.
func quietLoggerFactory() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		f.DefaultLogLevel = logging.LogLevelWarn
	}
	return f
}

// wirePacket is one RTP packet the SFU sent to the capped subscriber, as
// seen on the wire before the bottleneck (SRTP leaves the header in clear).
type wirePacket struct {
	seq     uint16
	ts      uint32
	padding bool // padding only (a probe)
	at      time.Time
}

// wireLog records the RTP headers of the packets routed to one address,
// per SSRC, and counts the bytes routed there.
type wireLog struct {
	dst string

	mu    sync.Mutex
	pkts  map[uint32][]wirePacket
	bytes int
}

func newWireLog(dst string) *wireLog { return &wireLog{dst: dst, pkts: map[uint32][]wirePacket{}} }

// filter is a vnet chunk filter: it never drops.
func (w *wireLog) filter(c vnet.Chunk) bool {
	if c.Network() != "udp" {
		return true
	}
	host, _, err := net.SplitHostPort(c.DestinationAddr().String())
	if err != nil || host != w.dst {
		return true
	}
	b := c.UserData()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += len(b)
	// RTP (not STUN, DTLS, or RTCP: RFC 5761 packet types 192-223)
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return true
	}
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		return true
	}
	// The padding length is encrypted, but the P bit is not: the test's
	// publisher never pads, so a padded packet is a probe's padding.
	pad := h.Padding
	w.pkts[h.SSRC] = append(w.pkts[h.SSRC], wirePacket{seq: h.SequenceNumber, ts: h.Timestamp, padding: pad, at: time.Now()})
	return true
}

func (w *wireLog) packets(ssrc uint32) []wirePacket {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wirePacket(nil), w.pkts[ssrc]...)
}

// takeBytes returns the bytes routed since the last call.
func (w *wireLog) takeBytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bytes
	w.bytes = 0
	return b
}

// timeline samples, every interval until the test ends, the capped
// subscriber's estimate, the rate sent to it, its cap and the layer it
// receives; logged on demand.
type timeline struct {
	stalls *stallWatch
	mu     sync.Mutex
	lines  []string
	stop   func()
}

func (v *vnetTopo) sampleTimeline(t *testing.T, s *server.Server, name string, sk *mediatest.Sink, every time.Duration) *timeline {
	tl := &timeline{stalls: v.stalls}
	room, ok := s.SFU().Rooms().Get("room")
	if !ok {
		t.Fatal("no room")
	}
	sp, ok := room.FindParticipant(name)
	if !ok {
		t.Fatalf("no participant %s", name)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v.wire.takeBytes()
	last := start
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st := sp.BandwidthStats()
			fs := sk.Frames()
			layer := -1
			if len(fs) > 0 {
				layer = layerOf(fs[len(fs)-1])
			}
			now := time.Now()
			sent := int(float64(v.wire.takeBytes()*8) / now.Sub(last).Seconds())
			last = now
			var dts []string
			for _, d := range sp.Subscriptions() {
				if d.Kind() == webrtc.RTPCodecTypeVideo {
					ds := d.Stats()
					dts = append(dts, fmt.Sprintf("target %d dropped %d rtx %d pad %d switches %d",
						d.TargetLayer(), ds.Dropped, ds.Retransmissions, ds.PaddingPackets, ds.LayerSwitches))
				}
			}
			tl.mu.Lock()
			tl.lines = append(tl.lines, fmt.Sprintf("%5.2fs cap %6d estimate %6d recv %6d sent %6d kbit/s queue %4v loss %.2f %-8s layer %2d %s",
				time.Since(start).Seconds(), v.currentRate()/1000, st.Estimate/1000, st.ReceiveRate/1000, sent/1000,
				st.QueueDelay.Round(time.Millisecond), st.Loss, st.State, layer, strings.Join(dts, " ")))
			tl.mu.Unlock()
		}
	}()
	tl.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(tl.stop)
	return tl
}

func (tl *timeline) log(t *testing.T) {
	t.Helper()
	tl.stop()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, l := range tl.lines {
		t.Log(l)
	}
	t.Log(tl.stalls)
}

// checkWireContinuity checks the stream the SFU sent, before any loss on the
// link: every new packet, padding included, takes the next sequence number;
// a repeated number is a retransmission and carries the timestamp it was
// first sent with; media timestamps increase, by at most 2 s more than the
// time between the two packets, and padding never goes back before the last
// media timestamp.
func checkWireContinuity(t *testing.T, pkts []wirePacket) (retransmitted, padding int) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no packets on the wire")
	}
	first := map[uint16]wirePacket{pkts[0].seq: pkts[0]}
	highest, lastMedia, lastMediaAt := pkts[0].seq, pkts[0].ts, pkts[0].at
	start := pkts[0].at
	for i, p := range pkts[1:] {
		at := p.at.Sub(start).Seconds()
		switch d := int16(p.seq - highest); {
		case d > 1:
			t.Fatalf("wire: sequence jumps from %d to %d (packet %d, %.2fs)", highest, p.seq, i+1, at)
		case d <= 0:
			o, ok := first[p.seq]
			if !ok {
				t.Fatalf("wire: %d sent after %d but never before (packet %d, %.2fs)", p.seq, highest, i+1, at)
			}
			if o.ts != p.ts {
				t.Errorf("wire: retransmission of %d at %.2fs has timestamp %d, first sent with %d at %.2fs",
					p.seq, at, p.ts, o.ts, o.at.Sub(start).Seconds())
			}
			retransmitted++
			continue
		}
		highest = p.seq
		first[p.seq] = p
		step := int32(p.ts - lastMedia)
		if p.padding {
			padding++
			if step < 0 {
				t.Fatalf("wire: padding %d has timestamp %d before the last media timestamp %d (%.2fs)", p.seq, p.ts, lastMedia, at)
			}
			continue
		}
		// the timestamp follows the wall clock across a switch: a step may
		// be as long as the SFU took to send the packet, plus up to 2 s
		// (the existing simulcast tests' bound)
		if limit := 2*90000 + int32(p.at.Sub(lastMediaAt).Seconds()*90000); step <= 0 || step > limit {
			t.Fatalf("wire: media %d timestamp step %d after %v (%.2fs)", p.seq, step, p.at.Sub(lastMediaAt), at)
		}
		lastMedia, lastMediaAt = p.ts, p.at
	}
	return retransmitted, padding
}

// checkReceivedContinuity checks what the subscriber's Sink received
// against what was sent (the wire tells padding from media, which the Sink
// records only as a sequence number): packets arrive in sequence order but
// for losses on the link (numbers the wire shows were sent) and late
// retransmissions filling them; each media packet has the timestamp it was
// sent with; media timestamps increase in sequence order, and between
// consecutive frames of one layer keep the publisher's spacing (3000 per
// frame).
//
// seqs, tss and frames are the Sink's Seqs, Timestamps and Frames, read in
// that order (its slices only grow), and sent the wire's packets, read after.
func checkReceivedContinuity(t *testing.T, seqs []uint16, tss, frames []uint32, sent []wirePacket) (lost, recovered int) {
	t.Helper()
	if len(seqs) == 0 {
		t.Fatal("nothing received")
	}
	type packet struct {
		seq     uint16
		ts      uint32
		frame   uint32
		padding bool
	}
	onWire := map[uint16]wirePacket{}
	for _, p := range sent {
		if _, ok := onWire[p.seq]; !ok {
			onWire[p.seq] = p
		}
	}
	var recv []packet
	m := 0
	for i, seq := range seqs {
		w, ok := onWire[seq]
		if !ok {
			t.Fatalf("received %d (packet %d) that was never sent", seq, i)
		}
		if w.padding {
			recv = append(recv, packet{seq: seq, padding: true})
			continue
		}
		if m == len(tss) || m == len(frames) {
			break // arrived after the snapshot of timestamps
		}
		if tss[m] != w.ts {
			t.Fatalf("received %d (packet %d) with timestamp %d, sent with %d", seq, i, tss[m], w.ts)
		}
		recv = append(recv, packet{seq: seq, ts: tss[m], frame: frames[m]})
		m++
	}
	// unwrap into a monotonic number space
	missing := map[int64]bool{}
	byNum := map[int64]packet{}
	base := int64(recv[0].seq)
	highest := base
	byNum[base] = recv[0]
	for _, p := range recv[1:] {
		num := highest + int64(int16(p.seq-uint16(highest)))
		switch {
		case num > highest:
			for n := highest + 1; n < num; n++ {
				if _, ok := onWire[uint16(n)]; !ok {
					t.Fatalf("received %d after %d: %d was never sent", p.seq, uint16(highest), uint16(n))
				}
				missing[n] = true
				lost++
			}
			highest = num
		case missing[num]:
			delete(missing, num)
			recovered++
		default:
			continue // a duplicate
		}
		byNum[num] = p
	}
	var prev *packet
	gap := false // packets between prev and this one were lost
	for num := base; num <= highest; num++ {
		p, ok := byNum[num]
		if !ok {
			gap = true
			continue
		}
		if p.padding {
			continue
		}
		if prev != nil {
			step := int32(p.ts - prev.ts)
			if step <= 0 {
				t.Fatalf("received %d: timestamp step %d after frame %d", p.seq, step, prev.frame)
			}
			// (a lost stretch may hide a switch to another layer and back)
			if !gap && layerOf(p.frame) == layerOf(prev.frame) && step != int32(3000*(p.frame-prev.frame)) {
				t.Fatalf("received %d: frame %d follows frame %d of the same layer with timestamp step %d",
					p.seq, p.frame, prev.frame, step)
			}
		}
		prev, gap = &p, false
	}
	return lost, recovered
}

// steadyPump writes a frame every interval by the wall clock until the
// test ends: after a stall of the test process (a loaded machine) it sends
// the frames that fell due, up to maxLag of them, so that each layer keeps
// its rate over the SFU's half-second bitrate windows as a constant-rate
// encoder would. (pump's ticker drops missed ticks: a stall then looks like
// a layer whose rate fell, which the allocator may take at face value.)
func steadyPump(t *testing.T, src *mediatest.Source, interval time.Duration) {
	const maxLag = 500 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		next := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			now := time.Now()
			if now.Sub(next) > maxLag {
				next = now.Add(-maxLag)
			}
			for !next.After(now) {
				if _, err := src.WriteFrame(); err != nil {
					return
				}
				next = next.Add(interval)
			}
			timer.Reset(time.Until(next))
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// stallWatch notices when the test process was not scheduled for a while
// (the machine is shared; browsers run at a higher priority): a ticker that
// fires late. Media timing is meaningless across such a stall, for the SFU
// as for the test.
type stallWatch struct {
	mu     sync.Mutex
	stalls []stall
	stop   func()
}

type stall struct {
	at  time.Time // when it ended
	dur time.Duration
}

// minStall is the lateness counted as a stall.
const minStall = 200 * time.Millisecond

func newStallWatch(t *testing.T) *stallWatch {
	w := &stallWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		const every = 10 * time.Millisecond
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				now = time.Now()
				if late := now.Sub(last) - every; late >= minStall {
					w.mu.Lock()
					w.stalls = append(w.stalls, stall{at: now, dur: late})
					w.mu.Unlock()
				}
				last = now
			}
		}
	}()
	w.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(w.stop)
	return w
}

// longest is the longest stall that ended after since.
func (w *stallWatch) longest(since time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Duration
	for _, s := range w.stalls {
		if s.at.After(since) {
			d = max(d, s.dur)
		}
	}
	return d
}

func (w *stallWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var total time.Duration
	var longest time.Duration
	for _, s := range w.stalls {
		total += s.dur
		longest = max(longest, s.dur)
	}
	return fmt.Sprintf("%d stalls of the test process over %v, %v in all, longest %v",
		len(w.stalls), minStall, total.Round(time.Millisecond), longest.Round(time.Millisecond))
}
