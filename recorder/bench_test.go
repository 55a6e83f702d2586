package recorder

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// BenchmarkRecorderVP8Opus records a 1 Mbit/s VP8 + Opus stream: ns/op
// is the time per packet of the whole pipeline (queue, reordering,
// depacketizing, muxing, file writes), cpu-ns/pkt the CPU time of the
// process per packet, allocs/op the allocations per packet.
func BenchmarkRecorderVP8Opus(b *testing.B) {
	const seconds = 10
	vf := make([]mediaFrame, 30*seconds)
	for i := range vf {
		n := 4000 // about 1 Mbit/s
		if i%60 == 0 {
			n = 20000
		}
		d := make([]byte, n)
		for j := range d {
			d[j] = byte(i + j)
		}
		d[0] = 0x01 // inter frame
		if i%60 == 0 {
			copy(d, []byte{0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00})
		}
		vf[i] = mediaFrame{data: d, ts: uint32(i * 3000)}
	}
	af := make([]mediaFrame, 50*seconds)
	for i := range af {
		d := make([]byte, 120)
		d[0] = 0xF8
		af[i] = mediaFrame{data: d, ts: uint32(i * 960)}
	}
	v := stream{mime: webrtc.MimeTypeVP8, rate: 90000, frames: vf, delay: 30 * time.Millisecond}
	a := stream{mime: webrtc.MimeTypeOpus, rate: 48000, frames: af, delay: 10 * time.Millisecond}
	rng := rand.New(rand.NewPCG(1, 1))
	evs := merge(v.events(0, rng, 1), a.events(1, rng, 1))
	var pkts [2]int // packets per pass and track
	for _, e := range evs {
		if !e.sr {
			pkts[e.track]++
		}
	}
	clk := newFakeClock()
	stepped := make(chan struct{}, 1)
	p, err := New(Options{Dir: b.TempDir(), Now: clk.Now, Logger: testLogger(b), onStep: func() {
		select {
		case stepped <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	var tracks []*TrackRecorder
	for _, s := range []stream{v, a} {
		tr, err := p.AddTrack(TrackOptions{Codec: webrtc.RTPCodecCapability{MimeType: s.mime}})
		if err != nil {
			b.Fatal(err)
		}
		tracks = append(tracks, tr)
	}
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; n < b.N; i++ {
		e := evs[i%len(evs)]
		pass := i / len(evs)
		tr := tracks[e.track]
		clk.advance(localEpoch.Add(e.at + time.Duration(pass*seconds)*time.Second))
		if e.sr {
			continue
		}
		for len(tr.queue) > cap(tr.queue)/2 { // keep pace with the recorder, without spinning
			<-stepped
		}
		h := e.pkt.Header
		h.SequenceNumber += uint16(pass * pkts[e.track])
		h.Timestamp += uint32(pass * seconds * int(tr.rate))
		tr.WriteRTP(&h, e.pkt.Payload)
		n++
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/pkt")
	for _, tr := range tracks {
		if st := tr.Stats(); st.PacketsDropped != 0 || st.FramesDropped > 1 { // the last frame may be cut off by b.N
			b.Fatalf("dropped: %+v", st)
		}
	}
}
