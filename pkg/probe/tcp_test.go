package probe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/netnstest"
	"github.com/nodeping/nodeping/internal/testutil/servetest"
	"github.com/nodeping/nodeping/pkg/responder"
)

func startResponder(t *testing.T) int {
	t.Helper()
	r, err := responder.ListenTCP("127.0.0.1:0", responder.TCPConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return servetest.Serve(t, r, err, netip.MustParseAddr("127.0.0.1")).Addr().(*net.TCPAddr).Port
}

// mustRun runs p once on targets and fails the test at once when the run fails.
func mustRun(t testing.TB, p interface {
	Run(context.Context, []netip.Addr) ([]Stats, error)
}, targets []netip.Addr) []Stats {
	t.Helper()
	stats, err := p.Run(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestTCPProbe(t *testing.T) {
	cases := []struct {
		name     string
		port     int
		count    int
		received int
		failure  string
	}{
		// Many handshakes in a row: a responder that reset connections itself would race the
		// prober's connect and show as "reset" failures.
		{"responder", startResponder(t), 50, 50, ""},
		{"nothing listening", closedPort(t), 3, 0, ReasonRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewTCP(TCPConfig{Port: tc.port, Count: tc.count, Interval: time.Millisecond, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			stats := mustRun(t, p, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
			st := stats[0]
			if st.Sent != tc.count || st.Received != tc.received || len(st.RTTs) != tc.received {
				t.Errorf("sent %d received %d rtts %d (failures %v), want %d, %d", st.Sent, st.Received, len(st.RTTs), st.Failures, tc.count, tc.received)
			}
			if tc.failure != "" && st.Failures[tc.failure] != tc.count {
				t.Errorf("failures %v, want %d %s", st.Failures, tc.count, tc.failure)
			}
		})
	}
}

// TestTCPProbeTimeout drops the SYNs to one address in a namespace of the test's own: the connect
// times out, and says so.
func TestTCPProbeTimeout(t *testing.T) {
	ns := netnstest.New(t)
	ns.Nft(`table inet nodeping_tcp {
	chain input {
		type filter hook input priority 0;
		ip daddr 127.0.0.2 tcp dport 9 drop
	}
}`)
	p, err := NewTCP(TCPConfig{Port: 9, Count: 1, Interval: time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	ns.Do(func() { _, reason = p.connect(context.Background(), "127.0.0.2:9") }) // the socket is made on this thread
	if reason != ReasonTimeout {
		t.Errorf("reason %q, want %q", reason, ReasonTimeout)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTCPReason(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	cases := map[string]error{
		ReasonRefused: op(syscall.ECONNREFUSED),
		ReasonReset:   op(syscall.ECONNRESET),
		ReasonTimeout: &net.OpError{Op: "dial", Err: timeoutErr{}},
		ReasonOther:   op(syscall.EHOSTUNREACH),
	}
	for want, err := range cases {
		if got := tcpReason(err); got != want {
			t.Errorf("tcpReason(%v) = %q, want %q", err, got, want)
		}
	}
	if got := tcpReason(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)); got != ReasonTimeout {
		t.Errorf("deadline exceeded: %q", got)
	}
}

// TestPortProbesRefuseBadConfigs: the TCP and UDP probes refuse a bad port or timing with one
// message each, naming the probe.
func TestPortProbesRefuseBadConfigs(t *testing.T) {
	ok := TCPConfig{Port: 9, Count: 1, Interval: time.Millisecond, Timeout: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*TCPConfig)
		want string
	}{
		{"port 0", func(c *TCPConfig) { c.Port = 0 }, "%s probe: port must be 1..65535"},
		{"port 65536", func(c *TCPConfig) { c.Port = 65536 }, "%s probe: port must be 1..65535"},
		{"count 0", func(c *TCPConfig) { c.Count = 0 }, "%s probe: count, interval and timeout must be positive"},
		{"interval 0", func(c *TCPConfig) { c.Interval = 0 }, "%s probe: count, interval and timeout must be positive"},
		{"timeout -1", func(c *TCPConfig) { c.Timeout = -1 }, "%s probe: count, interval and timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, err := NewTCP(c); err == nil || err.Error() != fmt.Sprintf(tc.want, "tcp") {
				t.Errorf("NewTCP: %v, want %q", err, fmt.Sprintf(tc.want, "tcp"))
			}
			if _, err := NewUDP(UDPConfig{Port: c.Port, Count: c.Count, Interval: c.Interval, Timeout: c.Timeout}); err == nil || err.Error() != fmt.Sprintf(tc.want, "udp") {
				t.Errorf("NewUDP: %v, want %q", err, fmt.Sprintf(tc.want, "udp"))
			}
		})
	}
}
