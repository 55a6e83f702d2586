package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
)

// setupLoopback starts a server with one publisher and n subscribers over
// real loopback UDP (DTLS-SRTP, ICE) and waits until all receive video.
func setupLoopback(b *testing.B, n int) (*mediatest.Source, []*mediatest.Sink) {
	s := startServer(b)
	ctx := deadline(b, 60*time.Second)
	var subs []*peer
	for i := 0; i < n; i++ {
		subs = append(subs, newPeer(b, s, "bench", fmt.Sprint("s", i), nil))
	}
	pub := newPeer(b, s, "bench", "pub", nil)
	video := videoSource(b, "pub")
	pub.publish(ctx, video)
	stop := pump(b, video, 5*time.Millisecond)
	sinks := make([]*mediatest.Sink, n)
	for i, p := range subs {
		sinks[i] = p.sink(ctx, webrtc.RTPCodecTypeVideo, "")
		if err := sinks[i].WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
			b.Fatal(err)
		}
	}
	stop()
	return video, sinks
}

// BenchmarkLoopbackThroughput: packets forwarded per second through the
// whole server (SRTP in, fan-out, SRTP out) to n subscribers on loopback,
// with a window of 64 frames in flight so that nothing is lost to socket
// buffers.
func BenchmarkLoopbackThroughput(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			video, sinks := setupLoopback(b, n)
			ctx := deadline(b, 5*time.Minute)
			const window = 64
			b.ResetTimer()
			first := video.Next()
			for i := 0; i < b.N; i++ {
				idx, err := video.WriteFrame()
				if err != nil {
					b.Fatal(err)
				}
				if i%window == window-1 || i == b.N-1 {
					for _, sk := range sinks {
						if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return ix[idx] }); err != nil {
							b.Fatalf("frame %d lost (window %d)", idx, window)
						}
					}
				}
			}
			b.StopTimer()
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*n)/secs, "fwd-pkts/s")
			for _, sk := range sinks {
				if err := sk.WaitRange(ctx, first, first+uint32(b.N)); err != nil {
					b.Fatalf("frames lost: %d of %d", sk.Count(), b.N)
				}
			}
		})
	}
}

// BenchmarkLoopbackLatency: one-way latency publisher -> SFU -> subscriber
// at a steady 500 packets/s of 1000-byte packets; both hops and both SRTP
// legs are included, so the SFU's own hop is below these figures.
func BenchmarkLoopbackLatency(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			video, sinks := setupLoopback(b, n)
			ctx := deadline(b, 5*time.Minute)
			before := make([]int, n)
			for i, sk := range sinks {
				before[i] = len(sk.Latencies())
			}
			b.ResetTimer()
			first := writeN(b, video, b.N, 2*time.Millisecond)
			var lat []time.Duration
			for i, sk := range sinks {
				if err := sk.WaitRange(ctx, first, first+uint32(b.N)); err != nil {
					b.Fatalf("frames lost: %d of %d", sk.Count(), b.N)
				}
				lat = append(lat, sk.Latencies()[before[i]:]...)
			}
			b.StopTimer()
			b.ReportMetric(float64(mediatest.Percentile(lat, 50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(mediatest.Percentile(lat, 99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(mediatest.Percentile(lat, 100).Microseconds())/1000, "max-ms")
		})
	}
}
