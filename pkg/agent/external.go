package agent

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/results"
)

// logEvery is how often a repeated problem of one external target is logged (it is counted every
// cycle): a target that stays unresolvable or refused would otherwise log every cycle of every
// agent.
const logEvery = 10 * time.Minute

// resolveExternal finds every external target's addresses: a literal address as written, a host
// name from the cache (pkg/resolve: fully qualified, kept for its TTL, a few look-ups at a time).
// Every address, literal or resolved, goes through nodelist.RefusedTarget: a refused one is
// counted by reason, logged (at most every logEvery per target and address) and never probed.
// It returns one target per address family found. A target that does not resolve is counted,
// logged at most every logEvery, and skipped this cycle.
func (a *Agent) resolveExternal(ctx context.Context) []Target {
	ext := a.nodes.list.External
	if len(ext) == 0 {
		return nil
	}
	now := a.clock.Now()
	a.resolver.Prune()
	a.logLimit.Prune(now)
	found := make([][]netip.Addr, len(ext))
	errs := make([]error, len(ext))
	var wg sync.WaitGroup
	for i, e := range ext {
		if ip, err := netip.ParseAddr(e.Host); err == nil {
			found[i] = []netip.Addr{ip}
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, a.cfg.ResolveTimeout)
			defer cancel()
			found[i], errs[i] = a.resolver.Lookup(rctx, e.Host)
		})
	}
	wg.Wait()
	var out []Target
	for i, e := range ext {
		if errs[i] == nil && len(found[i]) == 0 {
			errs[i] = errors.New("no addresses")
		}
		if errs[i] != nil {
			a.resolveErr++
			if ok, _ := a.logLimit.Allow("resolve\x00"+e.Name, now); ok {
				a.log.Warn("cannot resolve external target; skipped until it resolves (logged at most every "+a.logLimit.Every()+", counted in nodeping_resolve_errors_total)",
					"name", e.Name, "host", e.Host, "err", errs[i])
			}
			continue
		}
		var have4, have6 bool
		for _, ip := range found[i] {
			ip = ip.Unmap()
			if why := nodelist.RefusedTarget(ip, a.nodes.loopbackOK); why != "" {
				a.refused[why]++
				if ok, _ := a.logLimit.Allow("refused\x00"+e.Name+"\x00"+ip.String(), now); ok {
					a.log.Warn("external target address refused; not probed (logged at most every "+a.logLimit.Every()+", counted in nodeping_external_addresses_refused_total)",
						"name", e.Name, "host", e.Host, "addr", ip, "reason", why)
				}
				continue
			}
			if ip.Is4() && !have4 || ip.Is6() && !have6 {
				have4, have6 = have4 || ip.Is4(), have6 || ip.Is6()
				out = append(out, Target{Pair: results.Pair{Kind: results.KindExternal, Name: e.Name, Host: e.Host, IP: ip}})
			}
		}
	}
	return out
}
