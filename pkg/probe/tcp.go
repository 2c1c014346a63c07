package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// TCP reasons a connect fails.
const (
	ReasonRefused = "refused"
	ReasonTimeout = "timeout"
	ReasonReset   = "reset"
	ReasonOther   = "other"
)

// TCPConfig sets the TCP probe.
type TCPConfig struct {
	// Port is the peers' responder port.
	Port int
	// Count is the connects per target per run, Interval the time between two to one target.
	Count    int
	Interval time.Duration
	// Timeout bounds each connect.
	Timeout time.Duration
	// Parallel caps the connects in progress at once.
	Parallel int
}

// TCP measures handshake time: each echo is a connect to the target's responder port, closed at
// once. Sent counts attempts, Received completed handshakes, RTTs their connect times; failures
// are counted by reason (refused, timeout, reset, other).
type TCP struct {
	cfg TCPConfig
}

// NewTCP returns a TCP prober.
func NewTCP(cfg TCPConfig) (*TCP, error) {
	switch {
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, errors.New("tcp probe: port must be 1..65535")
	case cfg.Count < 1 || cfg.Timeout <= 0 || cfg.Interval <= 0:
		return nil, errors.New("tcp probe: count, interval and timeout must be positive")
	}
	if cfg.Parallel < 1 {
		cfg.Parallel = 64
	}
	return &TCP{cfg: cfg}, nil
}

// Run connects Count times to every target, the targets' attempts spread over the interval.
func (p *TCP) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	out := make([]Stats, len(targets))
	sem := make(chan struct{}, p.cfg.Parallel)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	port := strconv.Itoa(p.cfg.Port)
	start := time.Now()
	n := len(targets)
	for k := 0; k < p.cfg.Count; k++ {
		for i, t := range targets {
			at := start.Add(time.Duration(k)*p.cfg.Interval + time.Duration(int64(p.cfg.Interval)*int64(i)/int64(max(n, 1))))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					wg.Wait()
					return nil, ctx.Err()
				case <-time.After(d):
				}
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rtt, reason := p.connect(ctx, net.JoinHostPort(t.String(), port))
				mu.Lock()
				defer mu.Unlock()
				st := &out[i]
				st.Sent++
				if reason == "" {
					st.Received++
					st.RTTs = append(st.RTTs, rtt)
					return
				}
				if st.Failures == nil {
					st.Failures = map[string]int{}
				}
				st.Failures[reason]++
			}()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *TCP) connect(ctx context.Context, addr string) (time.Duration, string) {
	d := net.Dialer{Timeout: p.cfg.Timeout}
	t0 := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	rtt := time.Since(t0)
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		return rtt, ""
	}
	return 0, tcpReason(err)
}

func tcpReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET):
		return ReasonReset
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	}
	return ReasonOther
}
