package probe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/netnstest"
	"github.com/nodeping/nodeping/internal/testutil/poll"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root, for raw ICMP sockets and receive buffers past rmem_max (CI runs as root)")
	}
}

// loopbackTargets returns n distinct addresses in 127.0.0.0/8, all answered by the loopback device.
func loopbackTargets(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.MustParseAddr(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
	}
	return out
}

func TestICMPLoopback(t *testing.T) {
	requireRoot(t)
	cfg := ICMPConfig{Count: 5, Interval: 20 * time.Millisecond, Timeout: time.Second, Size: 56}
	e := newTestEngine(t, cfg)
	targets := append(loopbackTargets(50), netip.MustParseAddr("::1"))
	for run := 0; run < 3; run++ {
		stats := mustRun(t, e, targets)
		for i, st := range stats {
			if st.Sent != cfg.Count || st.Received != cfg.Count || len(st.RTTs) != cfg.Count {
				t.Errorf("run %d target %s: sent %d received %d rtts %d, want %d each", run, targets[i], st.Sent, st.Received, len(st.RTTs), cfg.Count)
			}
			for _, r := range st.RTTs {
				if r <= 0 || r > cfg.Timeout {
					t.Errorf("target %s: rtt %s out of range", targets[i], r)
				}
			}
		}
	}
	if c := e.Counters(); c.Late != 0 || c.TableFull != 0 {
		t.Errorf("counters %+v, want no late replies on loopback", c)
	}
}

// TestICMPMatchesProBing runs the engine and pro-bing, the reference, on the same targets with
// the same counts: both must see every echo answered, with RTTs of the same order.
func TestICMPMatchesProBing(t *testing.T) {
	requireRoot(t)
	cfg := ICMPConfig{Count: 4, Interval: 25 * time.Millisecond, Timeout: time.Second, Size: 56}
	targets := append(loopbackTargets(20), netip.MustParseAddr("::1"))
	e := newTestEngine(t, cfg)
	ours := mustRun(t, e, targets)
	pb, err := NewProBing(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRun(t, pb, targets)
	for i := range targets {
		if ours[i].Sent != ref[i].Sent || ours[i].Received != ref[i].Received {
			t.Errorf("%s: engine sent/received %d/%d, pro-bing %d/%d", targets[i], ours[i].Sent, ours[i].Received, ref[i].Sent, ref[i].Received)
		}
		_, _, oursMax, _ := RTTSummary(ours[i].RTTs)
		_, _, refMax, _ := RTTSummary(ref[i].RTTs)
		if oursMax > 100*time.Millisecond || refMax > 100*time.Millisecond {
			t.Errorf("%s: loopback RTT max engine %s, pro-bing %s: want both under 100ms", targets[i], oursMax, refMax)
		}
	}
}

// newTestEngine opens an engine, closed when the test ends.
func newTestEngine(t testing.TB, cfg ICMPConfig) *ICMP {
	e, err := NewICMP(cfg, testLogger(t))
	return closeAtEnd(t, e, err)
}

// newNetnsEngine opens an engine whose sockets live in ns, closed when the test ends.
func newNetnsEngine(t *testing.T, ns *netnstest.NS, cfg ICMPConfig) *ICMP {
	var (
		e   *ICMP
		err error
	)
	ns.Do(func() { e, err = NewICMP(cfg, testLogger(t)) })
	return closeAtEnd(t, e, err)
}

// closeAtEnd fails the test if opening e failed, and closes e when the test ends.
func closeAtEnd(t testing.TB, e *ICMP, err error) *ICMP {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestICMPBlackholeAndLoss drops, with nftables in a namespace of the test's own, every reply
// from one address, a random 30% from another, and every echo to a third before it leaves (the
// kernel then refuses the send): the blackholed target loses everything only once its deadlines
// pass, the lossy one loses about 30%, the refused one counts send errors, a healthy one nothing.
func TestICMPBlackholeAndLoss(t *testing.T) {
	ns := netnstest.New(t)
	ns.Nft(`table inet nodeping_test {
	chain input {
		type filter hook input priority 0;
		ip saddr 127.0.0.2 icmp type echo-reply drop
		ip saddr 127.0.0.3 icmp type echo-reply numgen random mod 100 < 30 drop
	}
	chain output {
		type filter hook output priority 0;
		ip daddr 127.0.0.4 icmp type echo-request drop
	}
}`)
	cfg := ICMPConfig{Count: 200, Interval: 2 * time.Millisecond, Timeout: 300 * time.Millisecond, Size: 56}
	e := newNetnsEngine(t, ns, cfg)
	targets := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")}
	start := time.Now()
	stats, err := e.Run(context.Background(), targets)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if healthy := stats[0]; healthy.Sent != 200 || healthy.Received != 200 {
		t.Errorf("healthy target: sent %d received %d, want 200/200", healthy.Sent, healthy.Received)
	}
	if bh := stats[1]; bh.Sent != 200 || bh.Received != 0 {
		t.Errorf("blackholed target: sent %d received %d, want 200/0", bh.Sent, bh.Received)
	}
	if lossy := stats[2]; lossy.Sent != 200 || lossy.Received < 100 || lossy.Received > 180 {
		t.Errorf("30%% lossy target: sent %d received %d, want 200 and about 140", lossy.Sent, lossy.Received)
	}
	if refused := stats[3]; refused.Sent != 200 || refused.Received != 0 || refused.SendErrors != 200 {
		t.Errorf("refused target: sent %d received %d send errors %d, want 200/0/200", refused.Sent, refused.Received, refused.SendErrors)
	}
	// The last echo to the blackholed target is sent after (Count-1)*Interval and is lost only
	// when its timeout has passed: the run cannot end sooner.
	if minimum := time.Duration(cfg.Count-1)*cfg.Interval + cfg.Timeout; took < minimum {
		t.Errorf("run took %s: losses were counted before their deadline (%s)", took, minimum)
	}
	t.Logf("run took %s; lossy target answered %d of 200", took, stats[2].Received)
}

// TestICMPCancelCountsNothingInFlight cancels a run while echoes to a blackhole are in flight:
// Run returns the context's error, and the next run is not confused by the old echoes.
func TestICMPCancelCountsNothingInFlight(t *testing.T) {
	ns := netnstest.New(t)
	ns.DropReplies("127.0.0.2")
	cfg := ICMPConfig{Count: 3, Interval: 10 * time.Millisecond, Timeout: 30 * time.Second, Size: 56}
	e := newNetnsEngine(t, ns, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.2")})
		done <- err
	}()
	waitFor(t, 5*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.run != nil && e.tab.len() == 3 // all three sent, none resolved
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
	stats, err := e.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil || stats[0].Sent != 3 || stats[0].Received != 3 {
		t.Errorf("run after a cancelled one: %+v, %v; want 3/3", stats, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	poll.Until(t, "the condition", within, 5*time.Millisecond, cond)
}

func TestICMPConfigValidate(t *testing.T) {
	ok := ICMPConfig{Count: 1, Interval: time.Second, Timeout: time.Second, Size: 56}
	cases := []struct {
		mod  func(*ICMPConfig)
		want string
	}{
		{func(c *ICMPConfig) {}, ""},
		{func(c *ICMPConfig) { c.Count = 0 }, "icmp count 0: must be at least 1"},
		{func(c *ICMPConfig) { c.Interval = 0 }, "icmp interval 0s: must be positive"},
		{func(c *ICMPConfig) { c.Timeout = -1 }, "icmp timeout -1ns: must be positive"},
		{func(c *ICMPConfig) { c.Size = 4 }, "icmp payload size 4: must be between 8 and 65000 bytes"},
	}
	for _, tc := range cases {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c, err, tc.want)
		}
	}
}

// TestMTUProbe drops packets longer than 1000 bytes in a namespace of the test's own: the engine's
// small echoes pass, its MTU probe (1500-byte packets with DF, on the same sockets) is lost, and
// without the drop both pass, on IPv4 and IPv6.
func TestMTUProbe(t *testing.T) {
	ns := netnstest.New(t)
	cfg := ICMPConfig{Count: 3, Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond, Size: 56, DontFragment: true, MTUSize: 1472}
	e := newNetnsEngine(t, ns, cfg)
	mtu, err := e.NewMTUProbe(1500, 2, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	targets := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}
	check := func(what string, wantMTU int) {
		t.Helper()
		small := mustRun(t, e, targets)
		large := mustRun(t, mtu, targets)
		for i := range targets {
			if small[i].Received != 3 || large[i].Sent != 2 || large[i].Received != wantMTU || large[i].SendErrors != 0 {
				t.Errorf("%s, %s: small echoes %d/3, MTU probe %d/%d (send errors %d); want 3/3 and %d/2",
					what, targets[i], small[i].Received, large[i].Received, large[i].Sent, large[i].SendErrors, wantMTU)
			}
		}
	}
	check("clean path", 2)
	ns.Nft(`table inet nodeping_mtu {
	chain input {
		type filter hook input priority 0;
		meta length > 1000 drop
	}
}`)
	check("MTU black hole", 0)

	if _, err := e.NewMTUProbe(9000, 1, time.Millisecond); err == nil {
		t.Error("NewMTUProbe accepted packets larger than the engine has room for")
	}
}
