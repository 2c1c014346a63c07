package responder

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/poll"
	"github.com/nodeping/nodeping/internal/testutil/servetest"
	"github.com/nodeping/nodeping/pkg/udpecho"
)

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func serveTCP(t *testing.T, cfg TCPConfig, allow ...netip.Addr) *TCP {
	t.Helper()
	r, err := ListenTCP("127.0.0.1:0", cfg, quiet())
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
	if r.Answered() != 0 {
		t.Errorf("answered %d, want 0", r.Answered())
	}

	c, err = dialFrom(lo1, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	await(t, "the listed connection held", func() bool { return r.Open() == 1 })
	c.Close()
	await(t, "the listed connection released", func() bool { return r.Open() == 0 })
	if r.Answered() != 1 {
		t.Errorf("answered %d, want 1", r.Answered())
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

func serveUDP(t *testing.T, lim Limit, allow ...netip.Addr) *UDP {
	t.Helper()
	r, err := ListenUDP("127.0.0.1:0", lim, quiet())
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

// testCookie is the tests' prober cookie.
const testCookie = "resptest"

// probe is a well-formed probe with serial i.
func probe(i int) []byte {
	b := make([]byte, udpecho.Len)
	udpecho.PutProbe(b, [8]byte([]byte(testCookie)), uint32(i))
	return b
}

// echo sends probe i and reports whether its echo came back within wait.
func echo(c *net.UDPConn, i int, wait time.Duration) bool {
	msg := probe(i)
	if _, err := c.Write(msg); err != nil {
		return false
	}
	udpecho.MakeEcho(msg) // what comes back
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
	if _, err := udpFrom(t, lo2, r.Addr()).Write(probe(0)); err != nil {
		t.Fatal(err)
	}
	// A drop sends nothing: once it is counted, no answer can follow.
	await(t, "the unlisted probe dropped as not_a_node", func() bool { return r.Dropped()[DropNotANode] == 1 })
	if r.Answered() != 0 {
		t.Error("an unlisted source (127.0.0.2) got an answer")
	}
	if !echo(udpFrom(t, lo1, r.Addr()), 1, 5*time.Second) {
		t.Error("a listed source got no answer")
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
		msg := probe(0)
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
	}
}

// The flood test runs the responder in a child process (this test binary again) whose
// RLIMIT_NOFILE is low, writing a file every 10 ms like the agent does, and reporting its state
// on stdout; the parent floods it with connections.
const helperEnv = "NODEPING_RESPONDER_FLOOD_HELPER"
