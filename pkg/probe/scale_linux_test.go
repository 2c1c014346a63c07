package probe

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// scaleTargets returns n distinct addresses in 127.0.0.0/8 (up to 62,500), all answered by the
// loopback device.
func scaleTargets(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, byte(1 + i/62500), byte(1 + i/250%250), byte(1 + i%250)})
	}
	return out
}

// total adds up the echoes of a run: sent, received and refused by the kernel.
func total(stats []Stats) (sent, received, sendErrors int) {
	for _, st := range stats {
		sent += st.Sent
		received += st.Received
		sendErrors += st.SendErrors
	}
	return sent, received, sendErrors
}

// TestICMPPast65536Echoes: one run of 7,000 targets x 10 echoes (70,000, more than the 65,536
// sequence numbers) on loopback loses nothing and leaves nothing uncounted. Before the shared
// in-flight table, this run counted 4,465 echoes lost.
func TestICMPPast65536Echoes(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("skipping the 70,000-echo run in -short mode")
	}
	cfg := ICMPConfig{Count: 10, Interval: time.Second, Timeout: 2 * time.Second, Size: 56}
	e := newTestEngine(t, cfg)
	targets := scaleTargets(7000)
	stats := mustRun(t, e, targets)
	sent, received, sendErrors := total(stats)
	c := e.Counters()
	t.Logf("sent %d received %d send errors %d counters %+v", sent, received, sendErrors, c)
	if sent != 70000 || received != 70000 || c.TableFull != 0 {
		t.Errorf("sent %d received %d (table full %d), want 70000 each and 0", sent, received, c.TableFull)
	}
}

// TestUDPPast65536Probes: 14,000 targets x 5 probes (70,000, past 65,536) to a loopback
// responder: every probe is counted exactly once, none is refused by the table, and every echo
// the responder sent is received. Before the shared table, 20,000 x 5 counted 65,536 of 100,000.
// (On a loaded 2-core machine the responder's socket buffer can overflow, and what it never read
// it never answered: received is compared with what it answered, and should equal sent on an
// idle machine.)
func TestUDPPast65536Probes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 70,000-probe run in -short mode")
	}
	r := startUDPResponderOn(t, "0.0.0.0:0", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, 1_000_000)
	u, err := NewUDP(UDPConfig{Port: r.Addr().(*net.UDPAddr).Port, Count: 5, Interval: 2 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	stats := mustRun(t, u, scaleTargets(14000))
	sent, received, _ := total(stats)
	c := u.Counters()
	// The responder counts an answer after it sends it: the last reply can beat its count here.
	waitFor(t, 5*time.Second, func() bool { return r.Answered() >= uint64(received) })
	t.Logf("sent %d received %d counters %+v responder answered %d dropped %v", sent, received, c, r.Answered(), r.Dropped())
	if sent != 70000 || c.TableFull != 0 || c.Late != 0 || uint64(received) != r.Answered() {
		t.Errorf("sent %d (want 70000), table full %d, late %d (want 0), received %d of %d answered", sent, c.TableFull, c.Late, received, r.Answered())
	}
	if received == 0 {
		t.Error("nothing received")
	}
}

// TestUDPTableFullCounted: a table too small for the run refuses probes, and every refused probe
// is counted (sent, send error, TableFull): none goes missing from the counters.
func TestUDPTableFullCounted(t *testing.T) {
	// A silent port: nothing is answered, so nothing leaves the table before its timeout.
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	u, err := NewUDP(UDPConfig{Port: silent.LocalAddr().(*net.UDPAddr).Port, Count: 3, Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.tab = newInflight(64, 0)
	stats := mustRun(t, u, scaleTargets(40))
	sent, received, sendErrors := total(stats)
	c := u.Counters()
	if sent != 120 || received != 0 || sendErrors != 120-64 || c.TableFull != 120-64 {
		t.Errorf("sent %d received %d send errors %d table full %d; want 120, 0, 56, 56", sent, received, sendErrors, c.TableFull)
	}
}

func ExampleTCPConfig_WorstCase() {
	cfg := TCPConfig{Count: 1, Interval: time.Second, Timeout: 900 * time.Millisecond}
	fmt.Println(cfg.WorstCase(100), cfg.WorstCase(5000))
	// Output: 2.16s 1m11.1016s
}

// TestUDP5000TargetsNoLoss: a full-mesh round of 5,000 targets x 5 probes (25,000 within about a
// second, as one node's responder sees when 5,000 peers probe it) to one responder on loopback
// loses nothing: every probe is answered, none is late, the responder drops none. Root only: the
// responder's receive buffer is forced past rmem_max with SO_RCVBUFFORCE.
func TestUDP5000TargetsNoLoss(t *testing.T) {
	requireRoot(t) // for the responder's 4 MiB receive buffer past net.core.rmem_max (SO_RCVBUFFORCE)
	if testing.Short() {
		t.Skip("skipping the 25,000-probe run in -short mode")
	}
	const targets, count = 5000, 5
	r := startUDPResponderOn(t, "0.0.0.0:0", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, 1_000_000)
	u, err := NewUDP(UDPConfig{Port: r.Addr().(*net.UDPAddr).Port, Count: count, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	start := time.Now()
	stats := mustRun(t, u, scaleTargets(targets))
	took := time.Since(start)
	sent, received, sendErrors := total(stats)
	c := u.Counters()
	// The responder counts an answer after it sends it: the last reply can beat its count here.
	waitFor(t, 5*time.Second, func() bool { return r.Answered() >= uint64(received) })
	t.Logf("took %s sent %d received %d send errors %d counters %+v responder answered %d dropped %v",
		took.Round(time.Millisecond), sent, received, sendErrors, c, r.Answered(), r.Dropped())
	if sent != targets*count || received != sent || sendErrors != 0 || c.Late != 0 || c.TableFull != 0 {
		t.Errorf("sent %d received %d (lost %d), send errors %d, late %d, table full %d; want %d sent and received, no errors",
			sent, received, sent-received, sendErrors, c.Late, c.TableFull, targets*count)
	}
	if d := r.Dropped(); len(d) != 0 {
		t.Errorf("responder dropped %v, want nothing", d)
	}
	if took > 10*time.Second {
		t.Errorf("the run took %s, want well under 10 s (1 s of sends, at most 2 s of timeout)", took)
	}
}
