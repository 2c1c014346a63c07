// Package netnstest gives tests network namespaces of their own, so that they can drop, lose or
// blackhole packets with nftables without touching the host. Every namespace is deleted when the
// test ends.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nodeping/nodeping/internal/netns"
)

var seq atomic.Int64

// NS is a network namespace with its loopback device up.
type NS struct {
	Name string
	t    testing.TB
}

// Require skips the test unless it runs as root with ip and nft available.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install iproute2 nftables)", tool)
		}
	}
}

// New creates a namespace, deleted by t.Cleanup. Namespaces left by test processes that died
// (killed by a timeout, say, before their cleanups ran) are deleted first.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	reapStale()
	ns := &NS{Name: fmt.Sprintf("nptest-%d-%d", os.Getpid(), seq.Add(1)), t: t}
	ns.ip("netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.Exec("ip", "link", "set", "lo", "up")
	return ns
}

func (ns *NS) ip(args ...string) {
	ns.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Exec runs a command inside the namespace and fails the test if it fails.
func (ns *NS) Exec(name string, args ...string) string {
	ns.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("in %s: %s %s: %v: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Nft loads an nftables ruleset into the namespace.
func (ns *NS) Nft(ruleset string) {
	ns.t.Helper()
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		ns.t.Fatalf("nft in %s: %v: %s\n%s", ns.Name, err, out, ruleset)
	}
}

// Do runs fn on a thread that is inside the namespace: sockets fn opens belong to it for their
// whole life, whichever thread uses them later.
func (ns *NS) Do(fn func()) {
	ns.t.Helper()
	if err := netns.Do(ns.Name, fn); err != nil {
		ns.t.Fatal(err)
	}
}

// reapStale deletes namespaces named for test processes that no longer run.
func reapStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid, n int
		if _, err := fmt.Sscanf(e.Name(), "nptest-%d-%d", &pid, &n); err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
		}
	}
}

// DropReplies drops, at the namespace's input, every ICMP echo reply from each address, as a
// blackholed peer would: the sender's echoes leave without error and nothing comes back.
func (ns *NS) DropReplies(from ...string) {
	ns.t.Helper()
	var rules strings.Builder
	for _, a := range from {
		fmt.Fprintf(&rules, "\t\tip saddr %s icmp type echo-reply drop\n", a)
	}
	ns.Nft("table inet nodeping_drop_replies {\n\tchain input {\n\t\ttype filter hook input priority 0;\n" + rules.String() + "\t}\n}\n")
}
