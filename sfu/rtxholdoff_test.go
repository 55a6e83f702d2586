package sfu

import (
	"testing"
	"time"
)

func TestRTXHoldoffFollowsRTT(t *testing.T) {
	for _, c := range []struct {
		rtt, want time.Duration
	}{
		{0, rtxHoldoffUnknown},
		{time.Millisecond, rtxHoldoffMin},
		{20 * time.Millisecond, 10 * time.Millisecond},
		{50 * time.Millisecond, 25 * time.Millisecond},
		{300 * time.Millisecond, rtxHoldoffMax},
	} {
		var d DownTrack
		d.rtt.Store(int64(c.rtt))
		if got := d.rtxHoldoff(); got != c.want {
			t.Errorf("rtt %v: holdoff %v, want %v", c.rtt, got, c.want)
		}
	}
}
