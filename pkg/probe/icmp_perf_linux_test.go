package probe

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestICMPLateBetweenRuns: between runs the receivers, paused while a run sends, read the socket
// again: a reply that comes when no run is in progress counts late at once, not at the next run,
// and the next run is not disturbed by it.
func TestICMPLateBetweenRuns(t *testing.T) {
	requireRoot(t)
	cfg := ICMPConfig{Count: 3, Interval: 10 * time.Millisecond, Timeout: time.Second, Size: 56}
	e := newTestEngine(t, cfg)
	targets := loopbackTargets(20)
	mustRun(t, e, targets)
	if c := e.Counters(); c.Late != 0 {
		t.Fatalf("late %d after a loopback run, want 0", c.Late)
	}
	// An echo with the engine's ID and cookie from another socket: its reply passes the engine's
	// filter and matches nothing in flight.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	pkt := echoTemplate(false, cfg.Size, e.cookie)
	putEcho(pkt, e.socks[0].id, 12345, true)
	if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return e.Counters().Late == 1 })
	for i, st := range mustRun(t, e, targets) {
		if st.Sent != cfg.Count || st.Received != cfg.Count {
			t.Errorf("target %s: sent %d received %d, want %d each", targets[i], st.Sent, st.Received, cfg.Count)
		}
	}
	if c := e.Counters(); c.Late != 1 {
		t.Errorf("late %d, want 1", c.Late)
	}
}

// TestICMPCloseDuringRun: Close returns at once while a run sends (its receivers are paused),
// and the run still ends.
func TestICMPCloseDuringRun(t *testing.T) {
	requireRoot(t)
	cfg := ICMPConfig{Count: 5, Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, Size: 56}
	e, err := NewICMP(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(t.Context(), loopbackTargets(20))
		done <- err
	}()
	// Wait until the run is sending, with its receivers paused.
	waitFor(t, 5*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.run != nil && e.paused != nil
	})
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return within 2s of a run in progress")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the run did not end within 5s of Close")
	}
}

// BenchmarkICMPEcho is the engine's per-echo path on loopback: each op is one run of 10 echoes
// to each of 1,000 targets in 127.0.0.0/8, 10ms apart. It reports the process's CPU time (user
// and system, so the kernel's loopback work too) and heap allocations per echo; wall time per op
// is mostly the run's schedule. Needs root (raw sockets).
func BenchmarkICMPEcho(b *testing.B) {
	requireRoot(b)
	const n, count = 1000, 10
	cfg := ICMPConfig{Count: count, Interval: 10 * time.Millisecond, Timeout: time.Second, Size: 56}
	e := newTestEngine(b, cfg)
	targets := scaleTargets(n)
	var (
		ms0, ms1 runtime.MemStats
		ru0, ru1 syscall.Rusage
		echoes   int
	)
	runtime.ReadMemStats(&ms0)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		stats, err := e.Run(b.Context(), targets)
		if err != nil {
			b.Fatal(err)
		}
		sent, received, _ := total(stats)
		if sent != n*count || received != sent {
			b.Fatalf("sent %d received %d, want %d each", sent, received, n*count)
		}
		echoes += sent
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&ms1)
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(echoes), "cpu-ns/echo")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(echoes), "allocs/echo")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(echoes), "B/echo")
}
