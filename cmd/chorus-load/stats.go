package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets of microseconds, subBuckets per
// power of two (about 1.6 % resolution), exact below subBuckets µs. It is
// safe for concurrent use: every receiving client records into one
// histogram with atomic adds.
const (
	subBits    = 6
	subBuckets = 1 << subBits
	maxExp     = 40 // 2^40 µs is about 12 days: nothing is slower
	numBuckets = (maxExp + 1) * subBuckets
)

type histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // ns
}

func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - subBits - 1 // us>>e is in [subBuckets, 2*subBuckets)
	if e >= maxExp {
		return numBuckets - 1
	}
	return (e+1)*subBuckets + int(us>>uint(e)) - subBuckets
}

// bucketRange is the [lo, hi] range of µs values in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	e := uint(i/subBuckets - 1)
	m := uint64(i%subBuckets + subBuckets)
	return m << e, (m+1)<<e - 1
}

// record adds one latency (negative values count as 0).
func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

// percentile returns the p-th percentile (0 < p <= 100): the middle of the
// bucket holding the sample of rank ceil(p/100 * n), never above the
// largest sample; 0 without samples.
func (h *histogram) percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			lo, hi := bucketRange(i)
			v := time.Duration((lo+hi)/2) * time.Microsecond
			return min(v, time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Chat text carries its send time: "chorus-load <run> t=<ns> n=<sender>.<k>",
// ns being the load process's monotonic clock (nanoseconds since the run's
// base time). The run id keeps apart messages of other runs in the same room.

func formatStamp(run string, ns int64, sender, k int) string {
	return fmt.Sprintf("chorus-load %s t=%d n=%d.%d", run, ns, sender, k)
}

// parseStamp returns the send time of a message of run; ok is false for
// any other text.
func parseStamp(text, run string) (ns int64, ok bool) {
	rest, found := strings.CutPrefix(text, "chorus-load ")
	if !found {
		return 0, false
	}
	rest, found = strings.CutPrefix(rest, run+" t=")
	if !found {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// parseRate reads a rate such as "100/s", "100", "6000/m" or "0.5/s" as
// events per second.
func parseRate(s string) (float64, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q: want a positive number, e.g. 100/s", s)
	}
	if !hasUnit {
		return v, nil
	}
	switch unit {
	case "s":
		return v, nil
	case "m":
		return v / 60, nil
	default:
		return 0, fmt.Errorf("rate %q: unit must be /s or /m", s)
	}
}

// procTicksPerSecond is Linux's USER_HZ, the unit of /proc/PID/stat times
// (100 on every architecture Go supports).
const procTicksPerSecond = 100

var errProcFormat = errors.New("unexpected /proc format")

// parseProcStat returns utime+stime (in ticks) from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may hold
// spaces, so fields are counted after its closing parenthesis.
func parseProcStat(data []byte) (uint64, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errProcFormat
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errProcFormat
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%w: %w", errProcFormat, err)
	}
	return u + s, nil
}

// parseVmRSS returns the VmRSS line of /proc/PID/status in bytes.
func parseVmRSS(data []byte) (uint64, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, errProcFormat
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errProcFormat, err)
		}
		return kb * 1024, nil
	}
	return 0, errProcFormat
}

// procCPU reads the CPU time a process (pid; "self" for this one) has used.
func procCPU(pid string) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu of %s: %w", pid, err)
	}
	t, err := parseProcStat(data)
	if err != nil {
		return 0, fmt.Errorf("cpu of %s: %w", pid, err)
	}
	return time.Duration(t) * time.Second / procTicksPerSecond, nil
}

// procRSS reads a process's resident memory in bytes.
func procRSS(pid string) (uint64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", pid, err)
	}
	v, err := parseVmRSS(data)
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", pid, err)
	}
	return v, nil
}
