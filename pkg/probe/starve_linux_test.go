package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// starveResult is what the child of TestStarvedEngineCountsNoLoss reports.
type starveResult struct {
	Sent, Received int
	Late           uint64
	MaxRTT         time.Duration
}

const starveEnv = "NODEPING_STARVE_CHILD"

// TestStarvedChild is the child process of TestStarvedEngineCountsNoLoss; it does nothing unless
// that test started it.
func TestStarvedChild(t *testing.T) {
	probe, out := os.Getenv(starveEnv), os.Getenv(starveEnv+"_OUT")
	if probe == "" {
		t.Skip("run by TestStarvedEngineCountsNoLoss")
	}
	targets := scaleTargets(200)
	var (
		run  func() ([]Stats, error)
		late func() uint64
	)
	switch probe {
	case "icmp":
		e, err := NewICMP(ICMPConfig{Count: 10, Interval: 200 * time.Millisecond, Timeout: time.Second, Size: 56}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		run = func() ([]Stats, error) { return e.Run(context.Background(), targets) }
		late = func() uint64 { return e.Counters().Late }
	case "udp":
		port, _ := strconv.Atoi(os.Getenv(starveEnv + "_PORT"))
		u, err := NewUDP(UDPConfig{Port: port, Count: 10, Interval: 200 * time.Millisecond, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		run = func() ([]Stats, error) { return u.Run(context.Background(), targets) }
		late = func() uint64 { return u.Counters().Late }
	}
	if err := os.WriteFile(out+".started", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stats, err := run()
	if err != nil {
		t.Fatal(err)
	}
	var r starveResult
	for _, st := range stats {
		r.Sent += st.Sent
		r.Received += st.Received
		for _, rtt := range st.RTTs {
			r.MaxRTT = max(r.MaxRTT, rtt)
		}
	}
	r.Late = late()
	b, _ := json.Marshal(r)
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStarvedEngineCountsNoLoss stops the process running a burst (SIGSTOP) for 3 s, three times
// the echoes' timeout, then lets it go on: every echo was answered in time by the kernel, so none
// may count as lost, and RTTs (from kernel receive timestamps) must stay loopback RTTs, not the
// time the process was stopped. This is the CPU-starved agent of a loaded node, at its worst.
func TestStarvedEngineCountsNoLoss(t *testing.T) {
	if os.Getenv(starveEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("skipping the 3 s stop in -short mode")
	}
	for _, probe := range []string{"icmp", "udp"} {
		t.Run(probe, func(t *testing.T) {
			if probe == "icmp" {
				requireRoot(t)
			}
			out := filepath.Join(t.TempDir(), "result.json")
			cmd := exec.Command(os.Args[0], "-test.run=^TestStarvedChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), starveEnv+"="+probe, starveEnv+"_OUT="+out)
			if probe == "udp" {
				// The responder runs here, in the process that is not stopped.
				r := startUDPResponderOn(t, "0.0.0.0:0", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, 1_000_000)
				cmd.Env = append(cmd.Env, starveEnv+"_PORT="+strconv.Itoa(r.Addr().(*net.UDPAddr).Port))
			}
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			defer func() { _ = syscall.Kill(pid, syscall.SIGCONT); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			// Wait for the burst to start, then stop the child in the middle of it (the burst
			// lasts 2 s: 10 echoes 200 ms apart).
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(out + ".started"); err == nil {
					break
				} else if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
					t.Fatalf("child did not start its burst: %v", err)
				}
			}
			time.Sleep(700 * time.Millisecond)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("child: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("child did not finish within 60 s")
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var r starveResult
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s after a 3 s stop: %+v", probe, r)
			if r.Sent != 2000 || r.Received != 2000 || r.Late != 0 {
				t.Errorf("sent %d received %d late %d; want 2000, 2000, 0", r.Sent, r.Received, r.Late)
			}
			if r.MaxRTT > 200*time.Millisecond {
				t.Errorf("max RTT %s: the stop leaked into the RTTs", r.MaxRTT)
			}
		})
	}
}
