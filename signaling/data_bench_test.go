package signaling_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// BenchmarkDataFanout measures app data through the SFU: one sender's
// messages (100 bytes, reliable channel, to the whole room) reach every
// other participant over real pion data channels on loopback. Each message
// carries its send time; receivers note the delay.
//
//	go test -run '^$' -bench DataFanout -benchtime 1x ./signaling
func BenchmarkDataFanout(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n, "-receivers"), func(b *testing.B) {
			for b.Loop() {
				dataFanout(b, n, 500)
			}
		})
	}
}

func dataFanout(b *testing.B, receivers, messages int) {
	s := startServerSFU(b, sfu.Config{Data: sfu.DataLimits{MessagesPerSecond: 1e6, BytesPerSecond: 1e9, MaxBuffered: 64 << 20}}, signaling.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var delays []time.Duration
	got := make(chan struct{}, receivers*messages)
	onData := func(m client.DataMessage) {
		if len(m.Payload) < 8 {
			return
		}
		d := time.Since(start) - time.Duration(binary.BigEndian.Uint64(m.Payload))
		mu.Lock()
		delays = append(delays, d)
		mu.Unlock()
		got <- struct{}{}
	}
	var clients []*client.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i := range receivers + 1 {
		opts := client.Options{Data: true}
		if i > 0 {
			opts.OnData = onData
		}
		c, err := client.Dial(ctx, s.url, opts)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		if _, err := c.Join(ctx, "data", fmt.Sprint("p", i)); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range clients {
		if err := c.WaitData(ctx); err != nil {
			b.Fatal(err)
		}
	}
	sender := clients[0]
	payload := make([]byte, 100)
	t0 := time.Now()
	for range messages {
		binary.BigEndian.PutUint64(payload, uint64(time.Since(start)))
		if err := sender.SendData(true, "", nil, payload); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // 500 messages per second: a paced sender, not a burst
	}
	for range receivers * messages {
		select {
		case <-got:
		case <-ctx.Done():
			mu.Lock()
			n := len(delays)
			mu.Unlock()
			b.Fatalf("%d of %d deliveries", n, receivers*messages)
		}
	}
	el := time.Since(t0)
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
	b.ReportMetric(float64(len(delays))/el.Seconds(), "deliveries/s")
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
}
