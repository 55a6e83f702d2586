package red

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// simPayload is the Opus payload of frame i in the simulations: 40..120
// bytes, so that even MaxDistance copies stay under DefaultMaxSize.
func simPayload(i int) []byte { return fill(byte(i*31), 40+i%81) }

// simStream encodes n frames with the given distance, sequence numbers from
// seq0 and timestamps from ts0 in 20 ms steps.
func simStream(t testing.TB, n, distance int, seq0 uint16, ts0 uint32) [][]byte {
	e, err := NewEncoder(111)
	if err != nil {
		t.Fatal(err)
	}
	e.SetDistance(distance)
	packets := make([][]byte, n)
	for i := range packets {
		packets[i] = e.Encode(nil, seq0+uint16(i), ts0+uint32(i)*960, simPayload(i))
		if len(packets[i]) > DefaultMaxSize {
			t.Fatalf("packet %d: %d bytes", i, len(packets[i]))
		}
	}
	return packets
}

// arrival is one packet as the network delivers it.
type arrival struct {
	i  int     // frame index
	at float64 // arrival time, in packet intervals
}

// deliver decodes the arrivals in order and checks every emitted packet
// against the frame it claims to be. It returns which frames were emitted;
// emitting one twice fails the test.
func deliver(t *testing.T, packets [][]byte, arrivals []arrival, seq0 uint16, ts0 uint32) []bool {
	t.Helper()
	n := len(packets)
	got := make([]bool, n)
	d := NewDecoder()
	cur := 0
	emit := func(seq uint16, ts uint32, opus []byte) {
		i := cur + int(int16(seq-(seq0+uint16(cur)))) // frame index, near the packet decoded
		switch {
		case i < 0 || i >= n:
			t.Fatalf("decoding %d: emitted %d, outside the stream", cur, i)
		case got[i]:
			t.Fatalf("decoding %d: emitted %d (seq %d) twice", cur, i, seq)
		case ts != ts0+uint32(i)*960 || !bytes.Equal(opus, simPayload(i)):
			t.Fatalf("decoding %d: emitted seq %d with the wrong timestamp or payload", cur, seq)
		}
		got[i] = true
	}
	for _, a := range arrivals {
		cur = a.i
		if err := d.Decode(seq0+uint16(a.i), ts0+uint32(a.i)*960, packets[a.i], emit); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func count(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// TestLossRecovery sends streams through independent random loss and
// checks that the Decoder rebuilds exactly the frames the redundancy makes
// recoverable: frame i gets through when any of packets i..i+d arrives
// (and a packet before it arrived, to anchor it). With loss probability p
// that is a share 1-p^(d+1) of the frames; the measured share must be close.
func TestLossRecovery(t *testing.T) {
	const (
		n    = 20000
		seq0 = 60000 // wraps after 5536 packets
		ts0  = math.MaxUint32 - 100*960
	)
	losses := []float64{0.2, 0.4, 0.6, 0.8}
	distances := []int{0, 1, 2, 3, 4, 8}
	streams := map[int][][]byte{}
	for _, d := range distances {
		streams[d] = simStream(t, n, d, seq0, ts0)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "frames through, theory 1-p^(d+1) / measured, %d packets, independent loss:\n%-6s", n, "loss")
	for _, d := range distances {
		fmt.Fprintf(&table, " %-15s", fmt.Sprintf("d=%d", d))
	}
	for _, p := range losses {
		rng := rand.New(rand.NewPCG(2198, uint64(p*100)))
		lost := make([]bool, n)
		first := -1
		var arrivals []arrival
		for i := range lost {
			lost[i] = rng.Float64() < p
			if !lost[i] {
				arrivals = append(arrivals, arrival{i: i})
				if first < 0 {
					first = i
				}
			}
		}
		fmt.Fprintf(&table, "\n%-6s", fmt.Sprintf("%.0f%%", 100*p))
		for _, d := range distances {
			got := deliver(t, streams[d], arrivals, seq0, ts0)
			// Exactly the recoverable frames.
			for i := range n {
				want := !lost[i]
				for j := i + 1; j <= i+d && j < n && i > first && !want; j++ {
					want = !lost[j]
				}
				if got[i] != want {
					t.Fatalf("loss %.0f%% d=%d: frame %d emitted %v, want %v", 100*p, d, i, got[i], want)
				}
			}
			share := float64(count(got)) / n
			theory := 1 - math.Pow(p, float64(d+1))
			// Frames overlap in the packets that carry them: allow for
			// d+1 times the variance of independent frames.
			margin := 3*math.Sqrt(float64(d+1)*theory*(1-theory)/n) + 0.002
			if share < theory-margin {
				t.Errorf("loss %.0f%% d=%d: %.2f%% of frames, theory %.2f%%", 100*p, d, 100*share, 100*theory)
			}
			fmt.Fprintf(&table, " %-15s", fmt.Sprintf("%.2f/%.2f%%", 100*theory, 100*share))
		}
	}
	t.Log(table.String())
}

// TestLossReorderDuplicates adds jitter (packets overtaking each other) and
// duplicates to the loss. The Decoder must still emit each frame at most
// once, with its own timestamp and payload, and lose nothing that in-order
// delivery would have recovered.
func TestLossReorderDuplicates(t *testing.T) {
	const (
		n    = 20000
		seq0 = 65000
		ts0  = 12345
	)
	for _, d := range []int{0, 1, 2, 4} {
		packets := simStream(t, n, d, seq0, ts0)
		for _, p := range []float64{0, 0.1, 0.3, 0.6} {
			rng := rand.New(rand.NewPCG(7, uint64(d*1000)+uint64(p*100)))
			var inOrder, jittered []arrival
			dups := 0
			for i := range n {
				if rng.Float64() < p {
					continue
				}
				inOrder = append(inOrder, arrival{i: i})
				jittered = append(jittered, arrival{i: i, at: float64(i) + 4*rng.Float64()})
				if rng.Float64() < 0.05 {
					jittered = append(jittered, arrival{i: i, at: float64(i) + 8*rng.Float64()})
					dups++
				}
			}
			slices.SortStableFunc(jittered, func(a, b arrival) int { return cmp.Compare(a.at, b.at) })
			reordered := 0
			for k := 1; k < len(jittered); k++ {
				if jittered[k].i < jittered[k-1].i {
					reordered++
				}
			}
			want := count(deliver(t, packets, inOrder, seq0, ts0))
			got := count(deliver(t, packets, jittered, seq0, ts0))
			if got < want {
				t.Errorf("d=%d loss %.0f%%: %d frames with jitter, %d in order", d, 100*p, got, want)
			}
			t.Logf("d=%d loss %2.0f%%: %d reordered, %d duplicates: %d frames through, %d in order",
				d, 100*p, reordered, dups, got, want)
		}
	}
}
