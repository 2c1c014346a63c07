package responder

import (
	"errors"
	"maps"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/servetest"
	"github.com/nodeping/nodeping/pkg/udpecho"
)

// TestUDPVerdict: what the UDP responder answers and what it drops, and under which reason.
func TestUDPVerdict(t *testing.T) {
	u := serveUDP(t, Limit{Rate: 1, Burst: 1}, lo1)
	own := u.port
	echoed := probe(1)
	udpecho.MakeEcho(echoed)
	noMarker := probe(1)
	noMarker[0] = 'X'
	cases := []struct {
		name string
		src  netip.AddrPort
		b    []byte
		want string
	}{
		{"a probe from a listed node", netip.AddrPortFrom(lo1, 40000), probe(1), ""},
		{"an unlisted node", netip.AddrPortFrom(lo2, 40000), probe(1), DropNotANode},
		{"an IPv4-mapped listed node", netip.AddrPortFrom(netip.AddrFrom16(lo1.As16()), 40001), probe(1), DropRateLimited},
		{"a privileged source port", netip.AddrPortFrom(lo1, 1023), probe(1), DropSourcePort},
		{"port 0", netip.AddrPortFrom(lo1, 0), probe(1), DropSourcePort},
		{"the responder's own port", netip.AddrPortFrom(lo1, own), probe(1), DropSourcePort},
		{"longer than a probe", netip.AddrPortFrom(lo1, 40000), append(probe(1), 0), DropOversized},
		{"shorter than a probe", netip.AddrPortFrom(lo1, 40000), probe(1)[:udpecho.Len-1], DropMalformed},
		{"empty", netip.AddrPortFrom(lo1, 40000), nil, DropMalformed},
		{"no marker", netip.AddrPortFrom(lo1, 40000), noMarker, DropMalformed},
		{"an echo", netip.AddrPortFrom(lo1, 40000), echoed, DropMalformed},
	}
	// The cases run in order: the first takes the only token, the mapped one finds none left.
	for _, tc := range cases {
		if got := u.verdict(tc.src, tc.b); got != tc.want {
			t.Errorf("%s: verdict %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestUDPRespondersNeverAnswerEachOther: a probe forged from one responder's socket to another's
// is answered at most once, by its echo, which the first drops as malformed; from the same port
// (as every agent of a cluster listens on) it is not answered at all.
func TestUDPRespondersNeverAnswerEachOther(t *testing.T) {
	cases := []struct {
		name     string
		samePort bool
		// What the second responder (the forged probe's target) answers, and what the first
		// (the forged sender) then drops.
		answered   uint64
		firstDrops map[string]uint64
		drops      map[string]uint64
	}{
		{"different ports", false, 1, map[string]uint64{DropMalformed: 1}, map[string]uint64{}},
		{"the same port", true, 0, map[string]uint64{}, map[string]uint64{DropSourcePort: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first := serveUDP(t, Limit{Rate: 100, Burst: 100}, lo1, lo2)
			addr := "127.0.0.2:0"
			if tc.samePort {
				addr = netip.AddrPortFrom(lo2, first.port).String()
			}
			second, err := ListenUDP(addr, Limit{Rate: 100, Burst: 100}, quiet())
			second = servetest.Serve(t, second, err, lo1, lo2)
			if _, err := first.conn.WriteToUDPAddrPort(probe(7), second.conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
				t.Fatal(err)
			}
			await(t, "the forged probe handled", func() bool {
				return second.Answered()+sum(second.Dropped()) == 1 && first.Answered()+sum(first.Dropped()) == tc.answered
			})
			// Each has now handled the last packet the other sent: a drop sends nothing, so nothing
			// is in flight any more.
			if second.Answered() != tc.answered || !maps.Equal(second.Dropped(), tc.drops) || first.Answered() != 0 || !maps.Equal(first.Dropped(), tc.firstDrops) {
				t.Errorf("second answered %d dropped %v, first answered %d dropped %v; want %d %v, 0 %v",
					second.Answered(), second.Dropped(), first.Answered(), first.Dropped(), tc.answered, tc.drops, tc.firstDrops)
			}
		})
	}
}

// TestUDPAnswersFromUnprivilegedPortsOnly: a probe from a privileged source port gets no answer
// (root only: binding one needs privilege).
func TestUDPAnswersFromUnprivilegedPortsOnly(t *testing.T) {
	r := serveUDP(t, Limit{Rate: 100, Burst: 100}, lo1)
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: lo1.AsSlice(), Port: 1000}, r.Addr().(*net.UDPAddr))
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("skipping: cannot bind 127.0.0.1:1000 (needs root and a free port): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(probe(1)); err != nil {
		t.Fatal(err)
	}
	// A drop sends nothing: once it is counted, no answer can follow.
	await(t, "the probe from port 1000 dropped as source_port", func() bool { return r.Dropped()[DropSourcePort] == 1 })
	if r.Answered() != 0 {
		t.Error("a probe from port 1000 got an answer")
	}
	if !echo(udpFrom(t, lo1, r.Addr()), 2, 5*time.Second) {
		t.Error("a probe from an ephemeral port got no answer")
	}
}

// TestUDPAnswersFromTheProbedAddress: the answer leaves from the address the probe was sent to,
// not the one the kernel would pick (127.0.0.1 for every loopback address), on a dual-stack
// wildcard socket (as the agent's) and on an IPv4 one.
func TestUDPAnswersFromTheProbedAddress(t *testing.T) {
	probed := netip.MustParseAddr("127.0.0.5")
	for _, listen := range []string{"0.0.0.0:0", "127.0.0.5:0"} {
		t.Run(listen, func(t *testing.T) {
			r, err := ListenUDP(listen, Limit{Rate: 100, Burst: 100}, quiet())
			r = servetest.Serve(t, r, err, lo1)
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo1, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			to := netip.AddrPortFrom(probed, uint16(r.Addr().(*net.UDPAddr).Port))
			if _, err := c.WriteToUDPAddrPort(probe(3), to); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("no answer: %v (dropped %v)", err, r.Dropped())
			}
			if got := from.Addr().Unmap(); got != probed || from.Port() != to.Port() {
				t.Errorf("answer from %s, want %s", from, to)
			}
			if serial, ok := udpecho.ParseEcho(buf[:n], [8]byte([]byte(testCookie))); !ok || serial != 3 {
				t.Errorf("answer %q is not the echo of probe 3", buf[:n])
			}
		})
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
