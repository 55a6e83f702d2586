package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A network namespace reached through a userspace delay line: this kernel
// has no netem, so instead of a veth pair two TUN devices join the test's
// namespace and the browser's, and the test process copies IP packets
// between them, each one oneWay later, in order. Everything else works as
// with newNetns: the nftables loss rules (netdev ingress on hostIf or
// nsIf) and Chromium in the namespace. No rate shaping (limit) here.
//
//	host namespace                                   namespace n.name
//	server (hostIP) -- hostIf (TUN) <-delay line-> nsIf (TUN) -- Chromium (nsIP)

// pathDelay reads CHORUS_PATH_DELAY_MS: the one-way delay the lossy-link
// browser tests put on the namespace's path (0: a veth pair, no delay).
func pathDelay(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("CHORUS_PATH_DELAY_MS")
	if v == "" {
		return 0
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms < 0 || ms > 1000 {
		t.Fatalf("CHORUS_PATH_DELAY_MS=%q: want a one-way delay in milliseconds, 0 - 1000", v)
	}
	return time.Duration(ms) * time.Millisecond
}

// newPathNetns is newNetns, or newDelayedNetns when CHORUS_PATH_DELAY_MS
// asks for a delay.
func newPathNetns(t *testing.T) *netns {
	t.Helper()
	if d := pathDelay(t); d > 0 {
		n := newDelayedNetns(t, d)
		t.Logf("namespace path: %v each way (userspace delay line)", d)
		return n
	}
	return newNetns(t)
}

// openTUN creates TUN device name (IP packets, no packet information
// header) and returns its file, non-blocking (reads wait in Go's poller and
// end when it is closed). The device lives as long as the file is open.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("create TUN device %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

func newDelayedNetns(t *testing.T, oneWay time.Duration) *netns {
	t.Helper()
	n := addNetns(t, "cd")
	hostTun, err := openTUN(n.hostIf)
	if err != nil {
		skipOrFail(t, "cannot create a TUN device: "+err.Error())
	}
	nsTun, err := openTUN(n.nsIf)
	if err != nil {
		_ = hostTun.Close()
		skipOrFail(t, "cannot create a TUN device: "+err.Error())
	}
	line := &delayLine{oneWay: oneWay}
	t.Cleanup(line.close) // before the namespace goes (cleanups run last first)
	line.start(hostTun, nsTun)
	if err := runCmd(n.ip, "link", "set", n.nsIf, "netns", n.name); err != nil {
		t.Fatalf("set up namespace %s: %v", n.name, err)
	}
	n.addressLink(t)
	return n
}

// delayLine copies packets between two TUN devices, oneWay late.
type delayLine struct {
	oneWay time.Duration
	files  []*os.File
	done   []chan struct{}
}

type delayed struct {
	due time.Time
	pkt []byte
}

func (l *delayLine) start(a, b *os.File) {
	l.files = []*os.File{a, b}
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		q := make(chan delayed, 8192)
		readDone, writeDone := make(chan struct{}), make(chan struct{})
		l.done = append(l.done, readDone, writeDone)
		go func(from *os.File) { // reader: stamps each packet with its due time
			defer close(readDone)
			defer close(q)
			buf := make([]byte, 65536)
			for {
				k, err := from.Read(buf)
				if err != nil {
					return
				}
				select {
				case q <- delayed{due: time.Now().Add(l.oneWay), pkt: append([]byte(nil), buf[:k]...)}:
				default: // a full line drops, as a full link queue would
				}
			}
		}(dir[0])
		go func(to *os.File) { // writer: in order, each when due
			defer close(writeDone)
			for d := range q {
				if wait := time.Until(d.due); wait > 0 {
					timer := time.NewTimer(wait)
					<-timer.C
				}
				if _, err := to.Write(d.pkt); err != nil && strings.Contains(err.Error(), "file already closed") {
					return
				}
			}
		}(dir[1])
	}
}

// close stops the line: the devices go with their files.
func (l *delayLine) close() {
	for _, f := range l.files {
		_ = f.Close()
	}
	for _, d := range l.done {
		<-d
	}
}
