package probe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/poll"
	"github.com/nodeping/nodeping/internal/testutil/servetest"
	"github.com/nodeping/nodeping/pkg/responder"
	"github.com/nodeping/nodeping/pkg/udpecho"
)

func startUDPResponder(t *testing.T, allow []netip.Addr, rate int) *responder.UDP {
	t.Helper()
	return startUDPResponderOn(t, "127.0.0.1:0", allow, rate)
}

func startUDPResponderOn(t *testing.T, addr string, allow []netip.Addr, rate int) *responder.UDP {
	t.Helper()
	r, err := responder.ListenUDP(addr, responder.Limit{Rate: float64(rate), Burst: rate}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return servetest.Serve(t, r, err, allow...)
}

func newUDP(t *testing.T, port int) *UDP {
	t.Helper()
	u, err := NewUDP(UDPConfig{Port: port, Count: 4, Interval: 5 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func TestUDPProbeAndResponder(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name     string
		allow    []netip.Addr
		received int
		dropped  string
	}{
		{"source in the nodes list", []netip.Addr{lo}, 4, ""},
		{"source not in the nodes list", []netip.Addr{netip.MustParseAddr("127.0.0.9")}, 0, responder.DropNotANode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startUDPResponder(t, tc.allow, 1000)
			u := newUDP(t, r.Addr().(*net.UDPAddr).Port)
			stats := mustRun(t, u, []netip.Addr{lo})
			if st := stats[0]; st.Sent != 4 || st.Received != tc.received || len(st.RTTs) != tc.received {
				t.Errorf("sent %d received %d rtts %d; want 4 and %d", st.Sent, st.Received, len(st.RTTs), tc.received)
			}
			if tc.dropped != "" && r.Dropped()[tc.dropped] != 4 {
				t.Errorf("dropped %v, want 4 %s", r.Dropped(), tc.dropped)
			}
		})
	}
}

// TestUDPResponderLimits: never more bytes than received, nothing longer than a probe, and a
// rate limit.
func TestUDPResponderLimits(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	r := startUDPResponder(t, []netip.Addr{lo}, 5)
	c, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(make([]byte, udpecho.Len+1))
	probe := make([]byte, udpecho.Len)
	udpecho.PutProbe(probe, [8]byte{}, 1)
	for range 20 {
		c.Write(probe)
	}
	// Every datagram is answered or dropped: wait until the responder has counted all 21, then
	// read the answers it sent.
	poll.Until(t, "the responder to count all 21 datagrams", 10*time.Second, time.Millisecond, func() bool {
		n := r.Answered()
		for _, v := range r.Dropped() {
			n += v
		}
		return n == 21
	})
	buf := make([]byte, 4096)
	got := 0
	for range r.Answered() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound for a lost answer, not a wait
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", got+1, r.Answered(), err)
		}
		if n != udpecho.Len {
			t.Errorf("answered with %d bytes to a %d-byte probe", n, udpecho.Len)
		}
		got++
	}
	d := r.Dropped()
	if d[responder.DropOversized] != 1 {
		t.Errorf("oversized drops %d, want 1", d[responder.DropOversized])
	}
	if got < 1 || got > 6 || d[responder.DropRateLimited] < 14 {
		t.Errorf("answered %d of 20 at 5/s (rate-limited drops %d); want at most a burst of 5 or so", got, d[responder.DropRateLimited])
	}
}

// TestUDPEchoFromAnotherAddress: an echo counts only when it comes from the address its probe
// was sent to; one node cannot answer another's probes (they are late, never received).
func TestUDPEchoFromAnotherAddress(t *testing.T) {
	target, other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	cases := []struct {
		name     string
		from     netip.Addr
		received int
		late     uint64
	}{
		{"from the probed address", target, 4, 0},
		{"from another node's address", other, 0, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The probes arrive on target; their echoes leave from tc.from.
			in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(target, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			out := in
			if tc.from != target {
				if out, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.from, 0))); err != nil {
					t.Fatal(err)
				}
				defer out.Close()
			}
			go func() {
				buf := make([]byte, 64)
				for range 4 {
					n, from, err := in.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if udpecho.IsProbe(buf[:n]) {
						udpecho.MakeEcho(buf[:n])
						out.WriteToUDPAddrPort(buf[:n], from)
					}
				}
			}()
			u := newUDP(t, in.LocalAddr().(*net.UDPAddr).Port)
			stats := mustRun(t, u, []netip.Addr{target})
			if st := stats[0]; st.Sent != 4 || st.Received != tc.received {
				t.Errorf("sent %d received %d, want 4 and %d", st.Sent, st.Received, tc.received)
			}
			if c := u.Counters(); c.Late != tc.late {
				t.Errorf("late %d, want %d", c.Late, tc.late)
			}
		})
	}
}

// TestUDPSourcePortsVary: a burst to one target leaves from several source ports.
func TestUDPSourcePortsVary(t *testing.T) {
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	var (
		mu    sync.Mutex
		ports = map[int]bool{}
	)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			ports[from.Port] = true
			mu.Unlock()
			udpecho.MakeEcho(buf[:n])
			echo.WriteToUDP(buf[:n], from)
		}
	}()
	u := newUDP(t, echo.LocalAddr().(*net.UDPAddr).Port)
	stats, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil || stats[0].Received != 4 {
		t.Fatalf("run: %v, %+v", err, stats)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ports) != 4 {
		t.Errorf("4 probes left from %d source ports, want 4", len(ports))
	}
}
