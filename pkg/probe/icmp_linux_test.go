package probe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for raw ICMP sockets (CI runs as root)")
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
	e, err := NewICMP(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	targets := append(loopbackTargets(50), netip.MustParseAddr("::1"))
	for run := 0; run < 3; run++ {
		stats, err := e.Run(context.Background(), targets)
		if err != nil {
			t.Fatal(err)
		}
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
