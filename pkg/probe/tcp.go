package probe

import (
	"context"
	"errors"
	"fmt"
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
	// Parallel caps the connects in progress at once; default DefaultTCPParallel. A connect that
	// finds every slot taken waits for one, so against dark peers (every connect timing out) a
	// run can take longer than Count*Interval: see WorstCase.
	Parallel int
}

// DefaultTCPParallel is TCPConfig.Parallel's default.
const DefaultTCPParallel = 64

// parallel is Parallel with its default applied.
func (c TCPConfig) parallel() int {
	if c.Parallel < 1 {
		return DefaultTCPParallel
	}
	return c.Parallel
}

// Span is how long a run to n targets takes when every peer answers at once: the last connect's
// scheduled start plus its timeout.
func (c TCPConfig) Span() time.Duration {
	return span(c.Count, c.Interval, c.Timeout)
}

// WorstCase is the longest a run to n targets can take: every connect times out, so at most
// Parallel are in progress in any Timeout. Each connect starts at its time on the shared send
// schedule (spread) or, when all Parallel slots are taken, as soon as one frees. An agent budgets
// its cycle with this (and can raise Parallel or lower Timeout until it fits); it is at least
// Span. It costs O(n*Count) time and O(Parallel) memory.
func (c TCPConfig) WorstCase(n int) time.Duration {
	if n <= 0 || c.Count <= 0 {
		return 0
	}
	p := c.parallel()
	total := n * c.Count
	slot := int64(c.Interval) / int64(n)
	// start[j] = max(latest scheduled start of j, start[j-p] + Timeout): a ring of the last p starts.
	starts := make([]int64, min(p, total))
	var last int64
	for j := range total {
		k, q := j/n, j%n
		at := int64(k)*int64(c.Interval) + int64(q+1)*slot // jitter < slot
		if j >= p {
			at = max(at, starts[j%p]+int64(c.Timeout))
		}
		starts[j%p] = at
		last = max(last, at)
	}
	return max(time.Duration(last)+c.Timeout, c.Span())
}

// TCP measures handshake time: each echo is a connect to the target's responder port, closed at
// once. Sent counts attempts, Received completed handshakes, RTTs their connect times; failures
// are counted by reason (refused, timeout, reset, other).
type TCP struct {
	cfg TCPConfig
}

// checkPortProbe is the one check of a probe that sends to a peer's port: a valid port, and a
// positive count, interval and timeout.
func checkPortProbe(protocol string, port, count int, interval, timeout time.Duration) error {
	switch {
	case port < 1 || port > 65535:
		return fmt.Errorf("%s probe: port must be 1..65535", protocol)
	case count < 1 || interval <= 0 || timeout <= 0:
		return fmt.Errorf("%s probe: count, interval and timeout must be positive", protocol)
	}
	return nil
}

// NewTCP returns a TCP prober.
func NewTCP(cfg TCPConfig) (*TCP, error) {
	if err := checkPortProbe("tcp", cfg.Port, cfg.Count, cfg.Interval, cfg.Timeout); err != nil {
		return nil, err
	}
	cfg.Parallel = cfg.parallel()
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
	sp := newSpread(len(targets), p.cfg.Count, p.cfg.Interval, newRand())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for j := range sp.total() {
		at, i, _ := sp.at(j)
		t := targets[i]
		if lag := time.Since(start.Add(time.Duration(at))); lag > time.Duration(maxLag(p.cfg.Interval)) {
			start = start.Add(lag) // after a stall, keep the spacing (see rebase)
		}
		if d := time.Until(start.Add(time.Duration(at))); d > 0 {
			if err := sleep(ctx, timer, d, nil); err != nil {
				wg.Wait()
				return nil, err
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
