package signaling_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chorus-sfu/chorus/signaling"
)

// BenchmarkChatFanout measures chat through the signaling server: 1,000
// WebSocket participants in one room (no media), one of them sending; each
// message carries its send time, and every receiver notes the delay. Pushed
// delivery (a room below the large-room size) and notify-then-pull (above
// it) are both measured.
//
//	go test -run '^$' -bench ChatFanout -benchtime 1x ./signaling
func BenchmarkChatFanout(b *testing.B) {
	for _, mode := range []struct {
		name  string
		large int
	}{{"push", 2000}, {"notify-pull", 200}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				chatFanout(b, 1000, 200, mode.large)
			}
		})
	}
}

func chatFanout(b *testing.B, members, messages, large int) {
	s := startServer(b, signaling.Config{Chat: signaling.ChatOptions{LargeRoom: large, HistorySize: messages,
		PerSenderRate: 1e6, PerSenderBurst: 1e6}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var delays []time.Duration
	received := make(chan struct{}, members*messages)
	joined := make(chan struct{}, members)
	conns := make([]*websocket.Conn, members)
	var wg sync.WaitGroup
	for i := range members {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, s.url, nil)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		if err := c.WriteJSON(signaling.Message{Type: signaling.TypeJoin, Room: "big", Name: fmt.Sprint("m", i)}); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { // each member reads, pulls when notified, and notes delays
			defer wg.Done()
			seen := uint64(0)
			pulling := false
			for {
				var m signaling.Message
				if err := c.ReadJSON(&m); err != nil {
					return
				}
				now := time.Now()
				switch m.Type {
				case signaling.TypeJoined:
					joined <- struct{}{}
				case signaling.TypeChatNotify:
					if m.Chat != nil && m.Chat.Latest > seen && !pulling {
						pulling = true
						after := seen
						_ = c.WriteJSON(signaling.Message{Type: signaling.TypeChatHistory, After: &after, Limit: 100})
					}
				case signaling.TypeChat, signaling.TypeChatHistory:
					if m.Type == signaling.TypeChatHistory {
						pulling = false
					}
					for _, cm := range m.Messages {
						if cm.Seq <= seen {
							continue
						}
						seen = cm.Seq
						if sent, err := strconv.ParseInt(strings.TrimPrefix(cm.Text, "t="), 10, 64); err == nil {
							mu.Lock()
							delays = append(delays, now.Sub(time.Unix(0, sent)))
							mu.Unlock()
							received <- struct{}{}
						}
					}
					if m.Type == signaling.TypeChatHistory && m.More && !pulling {
						pulling = true
						after := seen
						_ = c.WriteJSON(signaling.Message{Type: signaling.TypeChatHistory, After: &after, Limit: 100})
					}
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	for range members { // everyone is in before the first message
		select {
		case <-joined:
		case <-ctx.Done():
			b.Fatal("the members did not all join")
		}
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	sender := conns[0]
	for range messages {
		if err := sender.WriteJSON(signaling.Message{Type: signaling.TypeChat, Text: fmt.Sprint("t=", time.Now().UnixNano())}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // pacing: 500 messages/s offered, not a wait for events
	}
	want := members * messages // the sender receives its own messages too
	got := 0
	for got < want {
		select {
		case <-received:
			got++
		case <-ctx.Done():
			b.Fatalf("%d deliveries of %d", got, want)
		}
	}
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	mu.Lock()
	d := slices.Clone(delays)
	mu.Unlock()
	slices.Sort(d)
	b.ReportMetric(float64(got)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds()*100, "cpu-%")
}
