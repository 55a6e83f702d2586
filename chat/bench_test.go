package chat

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkFanout measures chat fan-out in a room of 1,000 members. One op
// is a burst of 1,000 room messages (about 100 bytes of text each), sent by
// one goroutine or shared among several concurrent ones; every member's
// Deliver counts what it gets (RoomOptions.LargeRoom is raised to 1,000 so
// that the room pushes). Rate limits are lifted: this measures the
// delivery path, not the budget. Reported:
//
//   - msgs/s: room messages sent and delivered to all members per second;
//   - deliveries/s: msgs/s times the member count;
//   - p50-us, p99-us: delivery latency, from just before Send to the
//     Deliver call, in µs, over every message as seen by every tenth member
//     (the real clock).
func BenchmarkFanout(b *testing.B) {
	for _, senders := range []int{1, 4} {
		b.Run(fmt.Sprintf("members=1000/senders=%d", senders), func(b *testing.B) {
			benchFanout(b, 1000, senders)
		})
	}
}

const benchPerOp = 1000 // messages per op

// benchMember counts deliveries; when sampling, it also records each
// message's latency. Callbacks of one room never run concurrently.
type benchMember struct {
	n       int
	sample  bool
	starts  []int64 // send start per message index, shared, read-only here
	latency []time.Duration
}

func (m *benchMember) deliver(ms []Message) bool {
	m.n += len(ms)
	if m.sample {
		now := time.Now().UnixNano()
		for i := range ms {
			m.latency = append(m.latency, time.Duration(now-m.starts[textIndex(ms[i].Text)]))
		}
	}
	return true
}

// textIndex decodes the message index at the start of a benchmark text.
func textIndex(s string) int {
	n := 0
	for i := range 8 {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func benchFanout(b *testing.B, members, senders int) {
	// LargeRoom = members: every member is pushed every message (above it,
	// members would only be notified).
	r := NewRoom(RoomOptions{LargeRoom: members, Budget: 1e12, PerSenderRate: 1e12, HistorySize: 1000,
		Logger: quietLogger()})
	defer r.Close()
	total := benchPerOp * b.N
	starts := make([]int64, total)
	texts := make([]string, total)
	for i := range texts {
		texts[i] = fmt.Sprintf("%08d the quick brown fox jumps over the lazy dog, then stops to read the room chat", i)
	}
	ms := make([]*benchMember, members)
	for i := range ms {
		ms[i] = &benchMember{sample: i%10 == 9, starts: starts}
		if ms[i].sample {
			ms[i].latency = make([]time.Duration, 0, total)
		}
		m := Member{ID: fmt.Sprintf("m%d", i), Identity: "user", Name: "User",
			Deliver: ms[i].deliver, Notify: func(uint64) bool { return true }}
		if _, err := r.Join(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for op := range b.N {
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				from := fmt.Sprintf("m%d", s)
				for i := op*benchPerOp + s; i < (op+1)*benchPerOp; i += senders {
					starts[i] = time.Now().UnixNano()
					if _, err := r.Send(from, Message{Text: texts[i]}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	elapsed := b.Elapsed()

	var lat []time.Duration
	for i, m := range ms {
		if m.n != total {
			b.Fatalf("member %d received %d messages, want %d", i, m.n, total)
		}
		lat = append(lat, m.latency...)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Microsecond) }
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rate*float64(members), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}
