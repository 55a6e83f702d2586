package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
)

// Network namespaces for the tests that need a real network path between
// the server and a browser: a veth pair joins the test's namespace (the
// server's side) to a fresh namespace where a Chromium runs, and tc (HTB)
// shapes what the server sends through it.
//
//	host namespace                         namespace n.name
//	server (media on hostIP) --- hostIf ==veth== nsIf --- Chromium (nsIP)
//	                        shaper here: server -> Chromium
//
// Chromium inside the namespace is driven over the DevTools pipe (chromedp's
// default transport, file descriptors 3 and 4), which `ip netns exec` passes
// through unchanged: no DevTools port has to be reached across namespaces.

// netnsSeq numbers the namespaces of one test process.
var netnsSeq atomic.Uint32

type netns struct {
	name   string // namespace
	hostIf string // veth end in the test's namespace
	nsIf   string // veth end inside the namespace
	hostIP string // address of hostIf
	nsIP   string // address of nsIf
	ip, tc string // paths of the tools
	shaped bool   // the shaper is set up on hostIf (test goroutine only)
}

// skipOrFail skips the test, or fails it when CHORUS_E2E=1 asks for every
// end-to-end test to run.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CHORUS_E2E") == "1" {
		t.Fatal(msg + " (CHORUS_E2E=1 requires this test to run)")
	}
	t.Skip(msg)
}

// netAdminTools returns the paths of ip and tc, or skips the test (fails it
// under CHORUS_E2E=1) when it cannot create namespaces and shape traffic.
func netAdminTools(t *testing.T) (ipPath, tcPath string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and tc)")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		missing = append(missing, "the ip command (iproute2)")
	}
	tcPath, err = exec.LookPath("tc")
	if err != nil {
		missing = append(missing, "the tc command (iproute2)")
	}
	if len(missing) > 0 {
		skipOrFail(t, "this test needs "+strings.Join(missing, ", "))
	}
	return ipPath, tcPath
}

// runCmd runs a command and returns its output in the error when it fails.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// freeSubnet picks a /30 in 10.201.0.0/16 that no local interface uses.
func freeSubnet() (hostIP, nsIP string, err error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", "", err
	}
	for range 50 {
		base := net.IPv4(10, 201, byte(rand.IntN(256)), byte(4*rand.IntN(64))).To4()
		subnet := &net.IPNet{IP: base, Mask: net.CIDRMask(30, 32)}
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(base)) {
				used = true
			}
		}
		if !used {
			h := net.IPv4(base[0], base[1], base[2], base[3]+1)
			n := net.IPv4(base[0], base[1], base[2], base[3]+2)
			return h.String(), n.String(), nil
		}
	}
	return "", "", fmt.Errorf("no free /30 in 10.201.0.0/16")
}

// newNetns creates a network namespace joined to the test's namespace by a
// veth pair with a /30 on it, and removes both when the test ends.
// addNetns creates an empty namespace, removed when the test ends, with
// the names and addresses of its link (devices named ifPrefix...).
func addNetns(t *testing.T, ifPrefix string) *netns {
	t.Helper()
	ipPath, tcPath := netAdminTools(t)
	id := fmt.Sprintf("%x%02x", os.Getpid()&0xffffff, netnsSeq.Add(1)&0xff)
	hostIP, nsIP, err := freeSubnet()
	if err != nil {
		t.Fatal(err)
	}
	n := &netns{name: "chorus-e2e-" + id, hostIf: ifPrefix + id + "h", nsIf: ifPrefix + id + "n",
		hostIP: hostIP, nsIP: nsIP, ip: ipPath, tc: tcPath}
	if err := runCmd(n.ip, "netns", "add", n.name); err != nil {
		skipOrFail(t, "cannot create a network namespace: "+err.Error())
	}
	t.Cleanup(func() {
		if err := runCmd(n.ip, "netns", "del", n.name); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	return n
}

// addressLink gives the link's two ends (hostIf here, nsIf already inside
// the namespace) their addresses and brings them up.
func (n *netns) addressLink(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"addr", "add", n.hostIP + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
		{"-n", n.name, "addr", "add", n.nsIP + "/30", "dev", n.nsIf},
		{"-n", n.name, "link", "set", n.nsIf, "up"},
	} {
		if err := runCmd(n.ip, args...); err != nil {
			t.Fatalf("set up namespace %s: %v", n.name, err)
		}
	}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := addNetns(t, "ch")
	t.Cleanup(func() { // before the namespace goes
		// Deleting one end of the pair deletes the other and its qdisc. The
		// namespace's end may already be gone with the namespace.
		if err := runCmd(n.ip, "link", "del", n.hostIf); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			t.Errorf("remove veth: %v", err)
		}
	})
	if err := runCmd(n.ip, "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf, "netns", n.name); err != nil {
		t.Fatalf("set up namespace %s: %v", n.name, err)
	}
	n.addressLink(t)
	return n
}

// The shaper on hostIf: an HTB class whose rate is the limit, over a
// byte FIFO (the link's queue). Unlike a tbf qdisc, whose queue a change or
// a deletion throws away, changing the class's rate keeps the queued
// packets: lifting the limit is a link that becomes fast, not a burst of
// losses.
const (
	shaperClass = "1:10"
	shaperFIFO  = "10:"
	// unlimited is the rate of a lifted limit.
	unlimited = "10gbit"
)

// limit shapes what the test's namespace sends into the namespace (the
// server's media to the browser there) to rate, with burst bytes of credit
// and a queue of queueBytes; calling it again changes the rate.
func (n *netns) limit(t *testing.T, rate, burst string, queueBytes int) {
	t.Helper()
	class := []string{"classid", shaperClass, "htb", "rate", rate, "ceil", rate, "burst", burst, "cburst", burst, "quantum", "1514"}
	if n.shaped {
		if err := runCmd(n.tc, append([]string{"class", "change", "dev", n.hostIf, "parent", "1:"}, class...)...); err != nil {
			t.Fatalf("rate limit: %v", err)
		}
		return
	}
	for _, args := range [][]string{
		{"qdisc", "add", "dev", n.hostIf, "root", "handle", "1:", "htb", "default", "10"},
		append([]string{"class", "add", "dev", n.hostIf, "parent", "1:"}, class...),
		{"qdisc", "add", "dev", n.hostIf, "parent", shaperClass, "handle", shaperFIFO, "bfifo", "limit", fmt.Sprint(queueBytes)},
	} {
		if err := runCmd(n.tc, args...); err != nil {
			t.Fatalf("rate limit: %v", err)
		}
	}
	n.shaped = true
}

// unlimit lifts the limit; what was queued drains at once.
func (n *netns) unlimit(t *testing.T) {
	t.Helper()
	if n.shaped {
		n.limit(t, unlimited, "64kb", 0)
	}
}

// qdiscStats is tc's account of the link's queue: packets sent, dropped,
// backlog.
func (n *netns) qdiscStats() string {
	out, err := exec.Command(n.tc, "-s", "qdisc", "show", "dev", n.hostIf).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("tc -s qdisc show: %v", err)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

var fifoCountersRE = regexp.MustCompile(`qdisc bfifo ` + shaperFIFO + `.*?dropped (\d+),.*?backlog (\S+) (\d+)p`)

// queueCounters is a short form of qdiscStats: drops and backlog of the
// link's queue, "" before the first limit.
func (n *netns) queueCounters() string {
	out, err := exec.Command(n.tc, "-s", "qdisc", "show", "dev", n.hostIf).CombinedOutput()
	if err != nil {
		return ""
	}
	m := fifoCountersRE.FindSubmatch(bytes.Join(bytes.Fields(out), []byte(" ")))
	if m == nil {
		return ""
	}
	return fmt.Sprintf("link queue: %s dropped, backlog %s in %s packets", m[1], m[2], m[3])
}

// newBrowser starts a headless Chromium inside the namespace, with the flags
// of the package's newBrowser (loopback candidates left out: the namespace
// reaches the server over the veth).
func (n *netns) newBrowser(t *testing.T, w *testWriter, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	chromium := chromiumPath(t)
	wrapper := filepath.Join(t.TempDir(), "chromium-in-"+n.name)
	script := fmt.Sprintf("#!/bin/sh\n# Chromium in network namespace %s; the DevTools pipe (fds 3, 4) passes through.\nexec %s netns exec %s %s \"$@\"\n",
		n.name, shellQuote(n.ip), shellQuote(n.name), shellQuote(chromium))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(wrapper),
		chromedp.Flag("allow-loopback-in-peer-connection", false),
	}
	return newBrowser(t, w, append(opts, extra...)...)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
