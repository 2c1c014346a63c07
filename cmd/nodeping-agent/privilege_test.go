package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/netnstest"
)

// runExit runs cmd and returns its exit code and combined output.
func runExit(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// sharedDir is a directory that nobody can walk to and write into.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nodeping-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}

// TestReducedBoundingSet runs the image's way of starting the agent where NET_RAW is not in the
// bounding set (the restricted Pod Security level): as nobody and as uid 0. The agent binary
// (with no file capability, as the Dockerfile builds it) starts and probes over unprivileged ping
// sockets. The same binary with a file capability, as the image used to carry, cannot even be
// executed there: that is why the Dockerfile sets none.
func TestReducedBoundingSet(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: setpriv not installed (util-linux)")
	}
	ns := netnstest.New(t)
	ns.Exec("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	dir := sharedDir(t)
	nodes := flantNodes(t, dir, 3)
	for _, tc := range []struct {
		name string
		who  []string
	}{
		{"nobody", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}},
		{"uid 0", []string{"--reuid=0", "--regid=0", "--clear-groups"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tf := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", ""))
			os.Mkdir(tf, 0o777)
			os.Chmod(tf, 0o777)
			args := append(append([]string{}, tc.who...), "--inh-caps=-all", "--bounding-set=-net_raw",
				agentBin, "--once", "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf, "--icmp-count", "2", "--icmp-interval", "10ms")
			code, out := runExit(t, ns.Command("setpriv", args...))
			if code != 0 {
				t.Fatalf("exit %d without NET_RAW in the bounding set:\n%s", code, out)
			}
			data, err := os.ReadFile(filepath.Join(tf, "nodeping.prom"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), `nodeping_icmp_socket_info{ip_family="ipv4",mode="dgram"} 1`) {
				t.Errorf("the agent does not report the ping-socket fallback:\n%s", data)
			}
			if n := strings.Count(string(data), "nodeping_packets_received_total{"); n != 3 {
				t.Errorf("%d received series, want 3", n)
			}
		})
	}
	t.Run("file capability", func(t *testing.T) {
		if _, err := exec.LookPath("setcap"); err != nil {
			t.Skip("skipping: setcap not installed (libcap2-bin)")
		}
		capped := filepath.Join(dir, "nodeping-agent-capped")
		b, err := os.ReadFile(agentBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(capped, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("setcap", "cap_net_raw+ep", capped).CombinedOutput(); err != nil {
			t.Skipf("skipping: setcap on %s: %v: %s (file system without xattrs?)", capped, err, out)
		}
		code, out := runExit(t, ns.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-net_raw", capped, "--version"))
		if code != 126 && code != 127 {
			t.Errorf("a binary with a file capability ran (exit %d) without NET_RAW in the bounding set; the fallback test above proves nothing new:\n%s", code, out)
		}
	})
}

// TestOneAgentPerTextfileDir: a second agent on a directory that a running agent holds refuses
// to start, naming the holder's PID; the first one's leftover temporary files are removed at its
// start, and nobody else's files are touched.
func TestOneAgentPerTextfileDir(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tf := filepath.Join(dir, "tf")
	os.Mkdir(tf, 0o755)
	leftovers := []string{".nodeping.tmp-1234", ".nodeping-check-99"}
	keep := []string{"other.prom", ".other.tmp-1"}
	for _, n := range append(append([]string{}, leftovers...), keep...) {
		os.WriteFile(filepath.Join(tf, n), []byte("x 1\n"), 0o644)
	}
	nodes := flantNodes(t, dir, 2)
	var log1 bytes.Buffer
	first := exec.Command(agentBin, "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf, "--interval", "300ms", "--icmp-count", "1", "--icmp-interval", "10ms")
	first.Stderr = &log1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { first.Process.Kill(); first.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(tf, "nodeping.prom")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first agent wrote no file in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range leftovers {
		if _, err := os.Stat(filepath.Join(tf, n)); !os.IsNotExist(err) {
			t.Errorf("leftover %s not removed at start: %v", n, err)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(tf, n)); err != nil {
			t.Errorf("%s, not ours, was touched: %v", n, err)
		}
	}
	code, out := runExit(t, exec.Command(agentBin, "--once", "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf))
	want := fmt.Sprintf("textfile directory is in use by another nodeping agent: pid %d on host ", first.Process.Pid)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("second agent: exit %d, want 1 with %q; output:\n%s", code, want, out)
	}
	// SIGTERM: the first agent removes its file; the second one never touched it.
	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Errorf("first agent after SIGTERM: %v\n%s", err, log1.String())
	}
	code, out = runExit(t, exec.Command(agentBin, "--once", "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf, "--icmp-count", "1"))
	if code != 0 {
		t.Errorf("an agent after the holder's exit: exit %d:\n%s", code, out)
	}
}
