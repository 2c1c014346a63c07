// Package agent runs the probe loop: nodes list -> targets -> probes -> results -> textfile.
package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
	"github.com/nodeping/nodeping/pkg/textfile"
)

// Pinger sends echoes to targets; probe.ICMP and probe.ProBing are Pingers.
type Pinger interface {
	Run(ctx context.Context, targets []netip.Addr) ([]probe.Stats, error)
}

// Probe is one kind of probe the agent runs every cycle.
type Probe struct {
	// Protocol labels its series: "icmp", or "mtu" for echoes at the path MTU with DF set.
	Protocol string
	Pinger   Pinger
	// NodesOnly leaves external targets out (the MTU of an outside path is not the cluster's).
	NodesOnly bool
	// Every runs the probe every Nth cycle only (0 or 1: every cycle); its series stay between runs.
	Every int
}

func due(every int, cycle uint64) bool { return every <= 1 || cycle%uint64(every) == 0 }

// Resolver looks up external targets' host names; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is what the agent does.
type Config struct {
	// NodeName is this node's name in the nodes list; it is not probed.
	NodeName string
	// NodesFile is the nodes list, re-read every cycle and used anew when its content changes.
	NodesFile string
	// TextfilePath is the file written every cycle, and removed when Run returns (unless Once).
	TextfilePath string
	// Interval is the time from one cycle's start to the next's.
	Interval time.Duration
	// Grace is how long a target that appears in a reloaded list is exempt from loss.
	Grace time.Duration
	// ResolveTimeout bounds each external target's host name look-up.
	ResolveTimeout time.Duration
	// Once runs one cycle, writes the file and returns.
	Once bool
	// Compat is "" or results.CompatFlant, to add Flant node-ping's series.
	Compat string
	// OnList, when set, is given every nodes list the agent starts using (the UDP responder
	// answers only its addresses).
	OnList func(nodelist.List)
	// Responders, when set, reports the agent's responders for its self-metrics.
	Responders func() []results.ResponderStats
	// DNS, when set, resolves its names every DNSEvery cycles (0 or 1: every cycle).
	DNS      DNSProber
	DNSEvery int
}

// DNSProber resolves names against resolvers; probe.DNS is one.
type DNSProber interface {
	Run(ctx context.Context) []probe.DNSResult
}

// Agent runs probe cycles. Build it with New; Run it once.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	probes   []Probe
	resolver Resolver
	results  *results.Results
	modes    map[string]string
	counters func() probe.ICMPCounters

	list       nodelist.List
	listOK     bool
	listHash   [sha256.Size]byte
	badHash    [sha256.Size]byte // of the last unusable content, so that it is logged once
	cycles     uint64            // cycles run, for probes that run every Nth
	listLoaded time.Time
	skipped    map[string]int
	// maintenance holds the listed nodes that are cordoned or not Ready.
	maintenance map[string]string
	loadErrors  uint64
	firstSeen   map[targetKey]time.Time
	resolveErr  uint64
	writeErr    uint64
}

type targetKey struct {
	name string
	kind results.Kind
	addr netip.Addr
}

// New wires an agent. modes and counters describe the ICMP engine for the self-metrics; counters
// may be nil.
func New(cfg Config, log *slog.Logger, probes []Probe, resolver Resolver, build results.BuildInfo, modes map[string]string, counters func() probe.ICMPCounters) *Agent {
	res := results.New(results.Source{Node: cfg.NodeName}, build, cfg.Compat)
	if counters == nil {
		counters = func() probe.ICMPCounters { return probe.ICMPCounters{} }
	}
	return &Agent{
		cfg: cfg, log: log, probes: probes, resolver: resolver, results: res,
		modes: modes, counters: counters, firstSeen: map[targetKey]time.Time{},
	}
}

// Run runs cycles until ctx ends (or one cycle, with Once). With Once it returns an error when no
// nodes list could be read or the file could not be written; otherwise it keeps going through
// bad lists and failed writes (logged and counted) and removes its file when ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if !a.cfg.Once {
		defer func() {
			if err := textfile.Remove(a.cfg.TextfilePath); err != nil {
				a.log.Error("remove textfile on shutdown", "err", err)
			} else {
				a.log.Info("removed textfile on shutdown", "path", a.cfg.TextfilePath)
			}
		}()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		start := time.Now()
		loadErr := a.load(start)
		if a.cfg.Once && !a.listOK {
			return loadErr
		}
		err := a.cycle(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.log.Error("probe cycle failed", "err", err)
		}
		writeErr := a.write()
		if a.cfg.Once {
			return writeErr
		}
		timer.Reset(time.Until(start.Add(a.cfg.Interval)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// load reads the nodes list and, when its content changed, decodes it. A list that does not read
// or decode is counted every cycle it stays (logged when it first appears), and the last good one
// stays in use.
func (a *Agent) load(now time.Time) error {
	data, err := os.ReadFile(a.cfg.NodesFile)
	h := sha256.Sum256(data)
	if err != nil {
		err = fmt.Errorf("read nodes file: %w", err)
	} else {
		if a.listOK && h == a.listHash {
			return nil
		}
		var (
			l     nodelist.List
			skips []nodelist.Skip
		)
		l, skips, err = nodelist.Decode(data)
		if err == nil {
			// Targets of the first good list are probed at once; later newcomers get grace.
			a.useList(l, skips, h, now, !a.listOK)
			a.badHash = [sha256.Size]byte{}
			return nil
		}
		if errors.Is(err, nodelist.ErrEmpty) {
			err = fmt.Errorf("nodes file %s: %w", a.cfg.NodesFile, err)
		} else {
			err = fmt.Errorf("nodes file %s: malformed: %w", a.cfg.NodesFile, err)
		}
	}
	a.loadErrors++
	repeated := h == a.badHash
	a.badHash = h
	switch {
	case repeated:
		a.log.Debug("nodes list still unusable", "err", err)
	case a.listOK:
		a.log.Error("cannot load nodes list; keeping the last good one", "err", err, "nodes", len(a.list.Nodes))
	default:
		a.log.Error("cannot load nodes list; nothing to probe until it loads", "err", err)
	}
	a.results.SetAgentState(a.state(0, 0))
	return err
}

func (a *Agent) useList(l nodelist.List, skips []nodelist.Skip, h [sha256.Size]byte, now time.Time, first bool) {
	a.skipped = map[string]int{}
	a.maintenance = map[string]string{}
	for _, n := range l.Nodes {
		switch {
		case !n.Ready:
			a.maintenance[n.Name] = "not_ready"
		case !n.Schedulable:
			a.maintenance[n.Name] = "cordoned"
		}
	}
	for _, s := range skips {
		a.skipped[s.Reason]++
		a.log.Warn("nodes list entry skipped", "name", s.Name, "reason", s.Reason, "detail", s.Detail)
	}
	sel, me := targets.Select(l, a.cfg.NodeName)
	zone := ""
	if me != nil {
		zone = me.Zone
	} else {
		a.log.Warn("this node is not in the nodes list; probing every node in it", "node", a.cfg.NodeName)
	}
	a.results.SetSource(results.Source{Node: a.cfg.NodeName, Zone: zone})
	if len(sel) == 0 && len(l.External) == 0 {
		a.log.Warn("nodes list has no target to probe", "path", a.cfg.NodesFile)
	}
	// Targets that are new after the first list get a grace period; targets that left are forgotten.
	seen := make(map[targetKey]time.Time, len(sel))
	for _, t := range sel {
		k := targetKey{t.Node.Name, results.KindNode, t.Addr}
		if at, ok := a.firstSeen[k]; ok || first {
			seen[k] = at
		} else {
			seen[k] = now
		}
	}
	for _, e := range l.External {
		k := targetKey{e.Name, results.KindExternal, netip.Addr{}}
		seen[k] = time.Time{}
	}
	a.firstSeen = seen
	a.list, a.listHash, a.listOK, a.listLoaded = l, h, true, now
	if a.cfg.OnList != nil {
		a.cfg.OnList(l)
	}
	a.log.Info("nodes list loaded", "path", a.cfg.NodesFile, "format", l.Format, "nodes", len(l.Nodes),
		"targets", len(sel), "external", len(l.External), "skipped", len(skips))
}

// probeTarget is one address probed in a cycle, with the pair it reports under.
type probeTarget struct {
	pair    results.Pair
	inGrace bool
}

// cycle probes every target once and records the results.
func (a *Agent) cycle(ctx context.Context, start time.Time) error {
	var pts []probeTarget
	sel, _ := targets.Select(a.list, a.cfg.NodeName)
	grace := 0
	for _, t := range sel {
		k := targetKey{t.Node.Name, results.KindNode, t.Addr}
		in := !a.firstSeen[k].IsZero() && start.Sub(a.firstSeen[k]) < a.cfg.Grace
		if in {
			grace++
		}
		pts = append(pts, probeTarget{
			pair:    results.Pair{Kind: results.KindNode, Name: t.Node.Name, Zone: t.Node.Zone, IP: t.Addr},
			inGrace: in,
		})
	}
	nodeTargets := len(pts)
	pts = append(pts, a.resolveExternal(ctx)...)
	addrs := make([]netip.Addr, len(pts))
	for i, pt := range pts {
		addrs[i] = pt.pair.IP
	}
	// The probes run one after the other: they may share sockets.
	stats := make([][]probe.Stats, len(a.probes))
	errs := make([]error, len(a.probes))
	for i, p := range a.probes {
		if !due(p.Every, a.cycles) {
			continue
		}
		n := len(pts)
		if p.NodesOnly {
			n = nodeTargets
		}
		stats[i], errs[i] = p.Pinger.Run(ctx, addrs[:n])
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	var dnsResults []probe.DNSResult
	if a.cfg.DNS != nil && due(a.cfg.DNSEvery, a.cycles) {
		dnsResults = a.cfg.DNS.Run(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	a.results.BeginCycle()
	a.results.ObserveDNS(dnsResults)
	a.cycles++
	for i, p := range a.probes {
		if stats[i] == nil && errs[i] == nil {
			a.results.KeepProtocol(p.Protocol) // not due this cycle: its last results stay
			continue
		}
		if errs[i] != nil {
			// This probe's pairs drop out of the file this cycle; the others stay.
			a.log.Error("probe failed", "protocol", p.Protocol, "err", errs[i])
			continue
		}
		for j, st := range stats[i] {
			if pts[j].inGrace {
				// New target: answered echoes count, lost ones do not yet.
				st.Sent = st.Received
				st.SendErrors = 0
			}
			pair := pts[j].pair
			pair.Protocol = p.Protocol
			a.results.Observe(pair, st)
		}
	}
	d := time.Since(start)
	overrun := !a.cfg.Once && d > a.cfg.Interval
	if overrun {
		a.log.Warn("probe cycle overran the interval", "took", d, "interval", a.cfg.Interval)
	}
	a.results.EndCycle(d, overrun, a.state(len(pts)-grace, grace))
	a.log.Debug("cycle done", "targets", len(pts), "took", d)
	return nil
}

// resolveExternal looks up every external target's host, in parallel, and returns one target per
// address family found. Failures are logged and counted; that target is skipped this cycle.
func (a *Agent) resolveExternal(ctx context.Context) []probeTarget {
	ext := a.list.External
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
			found[i], errs[i] = a.resolver.LookupNetIP(rctx, "ip", e.Host)
		}()
	}
	wg.Wait()
	var out []probeTarget
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
				out = append(out, probeTarget{pair: results.Pair{Kind: results.KindExternal, Name: e.Name, Host: e.Host, IP: ip}})
			}
		}
	}
	return out
}

func (a *Agent) state(probed, grace int) results.AgentState {
	st := results.AgentState{
		TargetsProbed: probed, TargetsInGrace: grace,
		ListNodes: len(a.list.Nodes), ListSkipped: a.skipped, Maintenance: a.maintenance, ListLoadErrors: a.loadErrors, ListLoaded: a.listLoaded,
		ResolveErrors: a.resolveErr, WriteErrors: a.writeErr, ICMPModes: a.modes, ICMP: a.counters(),
	}
	if a.cfg.Responders != nil {
		st.Responders = a.cfg.Responders()
	}
	return st
}

// write renders the results into the textfile; a failure is logged and counted.
func (a *Agent) write() error {
	a.results.SetWriteTime(time.Now())
	err := textfile.Write(a.cfg.TextfilePath, a.results.WriteText)
	if err != nil {
		a.writeErr++
		a.log.Error("cannot write textfile", "err", err)
	}
	return err
}
