package responder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/poll"
	"github.com/nodeping/nodeping/internal/testutil/servetest"
)

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func serveTCP(t *testing.T, cfg TCPConfig, allow ...netip.Addr) *TCP {
	t.Helper()
	r, err := ListenTCPConfig("127.0.0.1:0", cfg, quiet())
	return servetest.Serve(t, r, err, allow...)
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(src netip.Addr, addr net.Addr) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	return d.Dial("tcp", addr.String())
}

// await polls cond until it holds or 10 s pass.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 10*time.Second, 5*time.Millisecond, cond)
}

// TestTCPAnswersOnlyListedAddresses: a listed peer's connection is held until it closes; an
// unlisted one (127.0.0.2) is reset at once, counted, and never held.
func TestTCPAnswersOnlyListedAddresses(t *testing.T) {
	r := serveTCP(t, TCPConfig{}, lo1)

	// The reset may come before the dial returns, or on the first read.
	start := time.Now()
	c, err := dialFrom(lo2, r.Addr())
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("unlisted peer: read gave %v, want a reset", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("unlisted peer held for %s", d)
	}
	await(t, "the unlisted connection counted", func() bool { return r.Dropped()[DropNotANode] == 1 })
	if r.Accepted() != 0 {
		t.Errorf("accepted %d, want 0", r.Accepted())
	}

	c, err = dialFrom(lo1, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	await(t, "the listed connection held", func() bool { return r.Open() == 1 })
	c.Close()
	await(t, "the listed connection released", func() bool { return r.Open() == 0 })
	if r.Accepted() != 1 {
		t.Errorf("accepted %d, want 1", r.Accepted())
	}

	// A reload that drops 127.0.0.1 takes effect at once.
	r.SetAllowed([]netip.Addr{lo2})
	if c, err = dialFrom(lo1, r.Addr()); err == nil {
		defer c.Close()
	}
	await(t, "127.0.0.1 refused after the reload", func() bool { return r.Dropped()[DropNotANode] == 2 })
}

// TestTCPDeadline: a peer that never closes is dropped after ConnDeadline.
func TestTCPDeadline(t *testing.T) {
	r := serveTCP(t, TCPConfig{ConnDeadline: 100 * time.Millisecond}, lo1)
	c, err := dialFrom(lo1, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from the responder")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("held an idle connection %s with a 100ms deadline", d)
	}
	await(t, "the connection released", func() bool { return r.Open() == 0 })
}

func TestMaxConnsCeiling(t *testing.T) {
	for _, tc := range []struct {
		cfg  TCPConfig
		want int
	}{
		{TCPConfig{NoFileLimit: 1 << 20}, DefaultMaxConns},
		{TCPConfig{MaxConns: 5000, NoFileLimit: 4096}, 1024},
		{TCPConfig{NoFileLimit: 256}, 64},
		{TCPConfig{NoFileLimit: 140}, 12},
		{TCPConfig{NoFileLimit: 100}, 1},
		{TCPConfig{MaxConns: 10, NoFileLimit: 1 << 20}, 10},
	} {
		if got := tc.cfg.effectiveMaxConns(); got != tc.want {
			t.Errorf("%+v: max conns %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter{period: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		ok             bool
		wantSuppressed int
	}{{0, true, 0}, {time.Second, false, 0}, {5 * time.Second, false, 0}, {10 * time.Second, true, 2}, {11 * time.Second, false, 0}, {30 * time.Second, true, 1}}
	for _, s := range steps {
		ok, n := l.allow(t0.Add(s.at))
		if ok != s.ok || n != s.wantSuppressed {
			t.Errorf("at %s: allow %v (%d suppressed), want %v (%d)", s.at, ok, n, s.ok, s.wantSuppressed)
		}
	}
}

func serveUDP(t *testing.T, lim Limit, allow ...netip.Addr) *UDP {
	t.Helper()
	r, err := ListenUDPLimit("127.0.0.1:0", lim, quiet())
	return servetest.Serve(t, r, err, allow...)
}

func udpFrom(t *testing.T, src netip.Addr, to net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, to.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo sends one probe and reports whether it came back within wait.
func echo(c *net.UDPConn, i int, wait time.Duration) bool {
	msg := []byte(fmt.Sprintf("probe-%06d", i))
	if _, err := c.Write(msg); err != nil {
		return false
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == string(msg) {
			return true
		}
	}
}

func TestUDPAnswersOnlyListedAddresses(t *testing.T) {
	r := serveUDP(t, Limit{Rate: 100, Burst: 100}, lo1)
	if echo(udpFrom(t, lo2, r.Addr()), 0, 300*time.Millisecond) {
		t.Error("an unlisted source (127.0.0.2) got an answer")
	}
	if !echo(udpFrom(t, lo1, r.Addr()), 1, 5*time.Second) {
		t.Error("a listed source got no answer")
	}
	if d := r.Dropped()[DropNotANode]; d != 1 {
		t.Errorf("not_a_node drops %d, want 1", d)
	}
	r.SetAllowed([]netip.Addr{lo1, lo2})
	if !echo(udpFrom(t, lo2, r.Addr()), 2, 5*time.Second) {
		t.Error("127.0.0.2 got no answer once listed")
	}
}

// TestUDPNoisySourceCostsOthersNothing: one source floods the responder far above its limit; the
// other source, probing as a healthy peer does meanwhile, gets every answer.
func TestUDPNoisySourceCostsOthersNothing(t *testing.T) {
	lim := Limit{Rate: 20, Burst: 20}
	r := serveUDP(t, lim, lo1, lo2)
	noisy, healthy := udpFrom(t, lo2, r.Addr()), udpFrom(t, lo1, r.Addr())
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msg := []byte("noise")
		for i := 0; i < 200000 && !stop.Load(); i++ {
			if _, err := noisy.Write(msg); err == nil {
				sent.Add(1)
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	await(t, "the flood to start", func() bool { return sent.Load() > 1000 })
	start := time.Now()
	const probes = 20
	got := 0
	for i := 0; i < probes; i++ {
		if echo(healthy, i, 5*time.Second) {
			got++
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if got != probes {
		t.Errorf("healthy source: %d of %d answered during the flood", got, probes)
	}
	limited := r.Dropped()[DropRateLimited]
	noisyAnswered := int64(r.Answered()) - int64(got)
	maxNoisy := int64(lim.Burst) + int64((elapsed.Seconds()+5)*lim.Rate)
	t.Logf("noisy source: %d sent, %d answered, %d rate-limited; healthy: %d/%d in %s", sent.Load(), noisyAnswered, limited, got, probes, elapsed.Round(time.Millisecond))
	if noisyAnswered > maxNoisy || limited == 0 {
		t.Errorf("noisy source answered %d (limit allows %d), %d rate-limited", noisyAnswered, maxNoisy, limited)
	}
}

// TestLimiter: a bucket per source, refilled at the rate up to the burst; idle buckets expire;
// the table never holds more than its maximum.
func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiter(Limit{Rate: 2, Burst: 3}, 2)
	a, b, c := lo1, lo2, netip.MustParseAddr("127.0.0.3")
	take := func(src netip.Addr, at time.Duration, n int) int {
		ok := 0
		for i := 0; i < n; i++ {
			if l.take(src, t0.Add(at)) {
				ok++
			}
		}
		return ok
	}
	if got := take(a, 0, 10); got != 3 {
		t.Errorf("a's burst: %d, want 3", got)
	}
	if got := take(b, 0, 10); got != 3 {
		t.Errorf("b's burst despite a's flood: %d, want 3", got)
	}
	if got := take(a, time.Second, 10); got != 2 {
		t.Errorf("a after 1s at 2/s: %d, want 2", got)
	}
	// The table is full (2): c shares the overflow bucket until a and b go idle.
	if got := take(c, time.Second, 10); got != 3 {
		t.Errorf("c in the overflow bucket: %d, want its burst of 3", got)
	}
	if l.len() != 2 {
		t.Errorf("table holds %d sources, want at most 2", l.len())
	}
	if got := take(c, time.Second+SourceIdle, 10); got != 3 || l.len() != 1 {
		t.Errorf("after a and b went idle: c got %d (want 3), table %d (want 1)", got, l.len())
	}
	var allowed allowList
	allowed.set([]netip.Addr{a})
	l.keepOnly(&allowed)
	if l.len() != 0 {
		t.Errorf("table holds %d after c left the list, want 0", l.len())
	}
}

func TestDefaultPerSourceLimit(t *testing.T) {
	for _, tc := range []struct {
		probes   int
		interval time.Duration
		want     Limit
	}{
		{5, 15 * time.Second, Limit{Rate: 2, Burst: 20}},
		{10, 15 * time.Second, Limit{Rate: 40.0 / 15, Burst: 40}},
		{50, 5 * time.Second, Limit{Rate: 40, Burst: 200}},
		{1, 300 * time.Millisecond, Limit{Rate: 20 / 0.3, Burst: 20}},
		{5, 0, Limit{Rate: MinRate, Burst: 20}},
	} {
		if got := DefaultPerSourceLimit(tc.probes, tc.interval); got != tc.want {
			t.Errorf("DefaultPerSourceLimit(%d, %s) = %+v, want %+v", tc.probes, tc.interval, got, tc.want)
		}
		if got := DefaultPerSourceRate(tc.probes, tc.interval); got != tc.want.Rate {
			t.Errorf("DefaultPerSourceRate(%d, %s) = %v, want %v", tc.probes, tc.interval, got, tc.want.Rate)
		}
	}
}

// The flood test runs the responder in a child process (this test binary again) whose
// RLIMIT_NOFILE is low, writing a file every 10 ms like the agent does, and reporting its state
// on stdout; the parent floods it with connections.
const helperEnv = "NODEPING_RESPONDER_FLOOD_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(floodHelper(os.Getenv(helperEnv)))
	}
	os.Exit(m.Run())
}

// floodHelper serves TCP on 127.0.0.1 with a 1,024-descriptor limit, writes a file into dir every
// 10 ms, and prints "open=N max=N writes=N write_errors=N accept_errors=N not_a_node=N
// over_capacity=N" every 50 ms. With "burn" in mode it first takes all but 3 free descriptors,
// to force accept errors, and frees them when stdin says "free".
func floodHelper(arg string) int {
	mode, dir, _ := strings.Cut(arg, ":")
	lim := syscall.Rlimit{Cur: 1024, Max: 1024}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	r, err := ListenTCPConfig("127.0.0.1:0", TCPConfig{ConnDeadline: time.Minute}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r.SetAllowed([]netip.Addr{lo1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Serve(ctx)
	var burned []*os.File
	if mode == "burn" {
		for {
			f, err := os.Open(os.DevNull)
			if err != nil {
				fmt.Fprintf(os.Stderr, "burned %d descriptors: %v\n", len(burned), err)
				break
			}
			burned = append(burned, f)
		}
		for _, f := range burned[len(burned)-3:] {
			f.Close()
		}
		burned = burned[:len(burned)-3]
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			for _, f := range burned {
				f.Close()
			}
		}()
	}
	fmt.Printf("addr=%s cap=%d\n", r.Addr(), r.MaxConns())
	var writes, writeErrs, maxOpen int
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		<-tick.C
		// What the agent does every cycle: a new file, written, synced, renamed; a list read.
		p := filepath.Join(dir, "out.prom")
		if err := os.WriteFile(p+".tmp", []byte("x 1\n"), 0o644); err != nil {
			writeErrs++
		} else if err := os.Rename(p+".tmp", p); err != nil {
			writeErrs++
		} else {
			writes++
		}
		maxOpen = max(maxOpen, r.Open())
		if i%5 == 0 {
			d := r.Dropped()
			fmt.Printf("open=%d max=%d writes=%d write_errors=%d accept_errors=%d not_a_node=%d over_capacity=%d accepted=%d\n",
				r.Open(), maxOpen, writes, writeErrs, d[DropAcceptError], d[DropNotANode], d[DropOverCapacity], r.Accepted())
		}
	}
}

// helperState is the child's last report.
type helperState struct {
	mu    sync.Mutex
	cap   int
	addr  string
	state map[string]int
	lines int
}

func (h *helperState) get(k string) int { h.mu.Lock(); defer h.mu.Unlock(); return h.state[k] }

func startHelper(t *testing.T, mode string) (*helperState, *exec.Cmd, io.WriteCloser, *os.File) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("flood helper's log:\n%s", b)
		}
	})
	h := &helperState{state: map[string]int{}}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.mu.Lock()
			for _, f := range strings.Fields(sc.Text()) {
				k, v, _ := strings.Cut(f, "=")
				if k == "addr" {
					h.addr = v
					continue
				}
				n, _ := strconv.Atoi(v)
				if k == "cap" {
					h.cap = n
					close(ready)
					continue
				}
				h.state[k] = n
			}
			h.lines++
			h.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("flood helper did not start")
	}
	return h, cmd, stdin, logf
}

// TestTCPFloodIsBounded opens 6,000 connections to a responder whose process may hold 1,024
// descriptors, 1,000 of them from an unlisted address: the responder never holds more than its
// cap, every one of its file writes succeeds meanwhile, and it logs nothing.
func TestTCPFloodIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 6,000-connection flood in -short mode")
	}
	h, _, _, logf := startHelper(t, "plain")
	if h.cap >= 1024-ReservedFDs {
		t.Fatalf("cap %d leaves fewer than %d of 1,024 descriptors", h.cap, ReservedFDs)
	}
	addr, _ := net.ResolveTCPAddr("tcp", h.addr)
	const total, unlisted = 6000, 1000
	var (
		mu      sync.Mutex
		conns   []net.Conn
		dialErr atomic.Int64
		wg      sync.WaitGroup
		next    atomic.Int64
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				src := lo1
				if i%(total/unlisted) == 0 {
					src = lo2
				}
				c, err := dialFrom(src, addr)
				if err != nil {
					dialErr.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	await(t, "the responder to see every connection", func() bool {
		return h.get("accepted")+h.get("not_a_node")+h.get("over_capacity") >= total-int(dialErr.Load())
	})
	w0 := h.get("writes")
	await(t, "20 more file writes", func() bool { return h.get("writes") >= w0+20 })
	logged, _ := os.ReadFile(logf.Name())
	t.Logf("cap %d: accepted %d, over capacity %d, not a node %d, dial errors (reset before the dial returned) %d, max open %d, writes %d, write errors %d, log lines %d",
		h.cap, h.get("accepted"), h.get("over_capacity"), h.get("not_a_node"), dialErr.Load(), h.get("max"), h.get("writes"), h.get("write_errors"), strings.Count(string(logged), "\n"))
	if h.get("max") > h.cap {
		t.Errorf("held %d connections at once, cap %d", h.get("max"), h.cap)
	}
	if h.get("accepted") != h.cap {
		t.Errorf("accepted %d (all held), want exactly the cap %d", h.get("accepted"), h.cap)
	}
	if h.get("not_a_node") != unlisted {
		t.Errorf("refused %d unlisted, want %d", h.get("not_a_node"), unlisted)
	}
	if h.get("write_errors") != 0 {
		t.Errorf("%d file writes failed during the flood", h.get("write_errors"))
	}
	if len(logged) != 0 {
		t.Errorf("the responder logged during the flood:\n%s", logged)
	}
}

// TestTCPAcceptErrorsBackOff: with every descriptor taken, accept fails with EMFILE; the
// responder backs off (a few attempts a second, not a busy loop) and logs one line, and serves
// again once descriptors are free.
func TestTCPAcceptErrorsBackOff(t *testing.T) {
	h, _, stdin, logf := startHelper(t, "burn")
	addr, _ := net.ResolveTCPAddr("tcp", h.addr)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := dialFrom(lo1, addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	await(t, "accept errors", func() bool { return h.get("accept_errors") > 0 })
	time.Sleep(3 * time.Second) // the window over which the error rate is measured
	errs := h.get("accept_errors")
	logged, _ := os.ReadFile(logf.Name())
	lines := strings.Count(string(logged), "accept failed")
	t.Logf("in ~3 s with no free descriptor: %d accept errors, %d log lines", errs, lines)
	if errs > 30 {
		t.Errorf("%d accept errors in ~3 s: no backoff", errs)
	}
	if lines != 1 {
		t.Errorf("%d 'accept failed' lines, want 1 per %s:\n%s", lines, LogEvery, logged)
	}
	fmt.Fprintln(stdin, "free")
	await(t, "the held connections accepted once descriptors are free", func() bool { return h.get("accepted") >= 20 })
}
