package sfu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

// fakeCounter counts writes and nothing else.
type fakeCounter struct{ n atomic.Int64 }

func (w *fakeCounter) WriteRTP(_ *rtp.Header, p []byte) (int, error) { w.n.Add(1); return len(p), nil }
func (w *fakeCounter) Write(b []byte) (int, error)                   { return len(b), nil }

// BenchmarkFanout measures the forwarding path of one publisher stream to N
// subscribers: parse, cache, hand-off to each down track's writer, payload
// copy, header rewrite and write (to a counting writer). ns/op is per
// incoming packet; ns/fwd is per forwarded packet.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100, 500} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			up := newVideoUp(nil)
			pt := published(up)
			ws := make([]*fakeCounter, n)
			ds := make([]*DownTrack, n)
			for i := range ws {
				ws[i] = &fakeCounter{}
				ds[i] = NewDownTrack(pt, DownTrackOptions{QueueSize: 512})
				if _, err := ds[i].Bind(fakeCtx{w: ws[i], ssrc: 1}); err != nil {
					b.Fatal(err)
				}
				pt.attach(ds[i])
			}
			pz := &packetizer{perFrame: 4}
			// 1000-byte packets, like video
			frames := make([][][]byte, 64)
			for i := range frames {
				frames[i] = pz.frameAt(i == 0)
				for j, p := range frames[i] {
					frames[i][j] = append(p, make([]byte, 1000)...)
				}
			}
			for _, p := range frames[0] { // start every down track on the keyframe
				up.handlePacket(p)
			}
			sent := int64(len(frames[0]))
			b.ReportAllocs()
			b.ResetTimer()
			const batch = 64 // stay below the drop threshold: measure cost, not drops
			for i := 0; i < b.N; i++ {
				f := frames[1+i%(len(frames)-1)]
				p := f[i%len(f)]
				// fresh sequence numbers so that every packet is new
				seq := uint16(sent)
				p[2], p[3] = byte(seq>>8), byte(seq)
				up.handlePacket(p)
				sent++
				if sent%batch == 0 {
					for _, w := range ws {
						for w.n.Load() < sent {
							runtime.Gosched()
						}
					}
				}
			}
			for _, w := range ws {
				for w.n.Load() < sent {
					runtime.Gosched()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/fwd")
			for _, d := range ds {
				pt.detach(d)
				d.Close()
			}
		})
	}
}
