package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	probing "github.com/prometheus-community/pro-bing"
)

// ProBing sends the same echoes as ICMP with pro-bing, one privileged Pinger per target. It costs
// far more per echo than the ICMP engine (a socket, goroutines and tickers per target), so it
// serves low-rate probes and is the reference the engine is tested against.
type ProBing struct {
	cfg ICMPConfig
	// Parallel caps the Pingers running at once.
	Parallel int
}

// NewProBing returns a pro-bing runner for cfg.
func NewProBing(cfg ICMPConfig) (*ProBing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ProBing{cfg: cfg, Parallel: 256}, nil
}

// Run pings every target and returns its statistics, indexed like targets.
func (p *ProBing) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	out := make([]Stats, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, max(p.Parallel, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = p.ping(ctx, t)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			out[i] = Stats{Sent: p.cfg.Count, SendErrors: p.cfg.Count}
		}
	}
	return out, nil
}

func (p *ProBing) ping(ctx context.Context, t netip.Addr) (Stats, error) {
	pg := probing.New("")
	pg.SetIPAddr(&net.IPAddr{IP: t.AsSlice()})
	pg.SetPrivileged(true)
	pg.Count = p.cfg.Count
	pg.Interval = p.cfg.Interval
	pg.Timeout = p.cfg.Span()
	pg.Size = p.cfg.Size
	pg.SetDoNotFragment(p.cfg.DontFragment)
	if err := pg.RunWithContext(ctx); err != nil {
		return Stats{}, fmt.Errorf("pro-bing %s: %w", t, err)
	}
	s := pg.Statistics()
	return Stats{Sent: s.PacketsSent, Received: s.PacketsRecv, RTTs: s.Rtts}, nil
}
