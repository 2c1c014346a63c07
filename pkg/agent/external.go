package agent

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/nodeping/nodeping/pkg/results"
)

// Resolver looks up external targets' host names; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolveExternal looks up every external target's host, in parallel, and returns one target per
// address family found. Failures are logged and counted; that target is skipped this cycle.
func (a *Agent) resolveExternal(ctx context.Context) []Target {
	ext := a.nodes.list.External
	if len(ext) == 0 {
		return nil
	}
	found := make([][]netip.Addr, len(ext))
	errs := make([]error, len(ext))
	var wg sync.WaitGroup
	for i, e := range ext {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ip, err := netip.ParseAddr(e.Host); err == nil {
				found[i] = []netip.Addr{ip.Unmap()}
				return
			}
			rctx, cancel := context.WithTimeout(ctx, a.cfg.ResolveTimeout)
			defer cancel()
			found[i], errs[i] = a.cfg.Resolver.LookupNetIP(rctx, "ip", e.Host)
		}()
	}
	wg.Wait()
	var out []Target
	for i, e := range ext {
		if errs[i] == nil && len(found[i]) == 0 {
			errs[i] = errors.New("no addresses")
		}
		if errs[i] != nil {
			a.resolveErr++
			a.log.Warn("cannot resolve external target; skipped this cycle", "name", e.Name, "host", e.Host, "err", errs[i])
			continue
		}
		var have4, have6 bool
		for _, ip := range found[i] {
			ip = ip.Unmap()
			if ip.Is4() && !have4 || ip.Is6() && !have6 {
				have4, have6 = have4 || ip.Is4(), have6 || ip.Is6()
				out = append(out, Target{Pair: results.Pair{Kind: results.KindExternal, Name: e.Name, Host: e.Host, IP: ip}})
			}
		}
	}
	return out
}
