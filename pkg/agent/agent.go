// Package agent runs the probe loop: nodes list -> targets -> probes -> results -> textfile.
package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
	"github.com/nodeping/nodeping/pkg/textfile"
)

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
	// RTTDetail adds the per-pair RTT gauges and every protocol's RTT histogram (--rtt-detail).
	RTTDetail bool
	// Plan chooses the peers from each list (zero: targets.DefaultOptions()).
	Plan targets.Options
	// Build is reported by nodeping_build_info.
	Build results.BuildInfo
	// Probes run one after the other every cycle (they may share sockets), in this order.
	Probes []Registration
	// Components are the agent's other parts (engines, responders); each may be a Server (run
	// beside the loop, except with Once), a StateReporter and a ListUser. Probes may be the
	// latter two as well.
	Components []any
	// Resolver looks up external targets (nil: net.DefaultResolver).
	Resolver Resolver
	// Clock is the loop's time (nil: RealClock).
	Clock Clock
}

// Agent runs probe cycles. Build it with New; Run it once.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	results *results.Results
	probes  []probeState

	list       nodelist.List
	plan       *targets.Plan // of list
	planState  results.PlanState
	tooLarge   uint64 // lists refused for their size
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
	last        summary
}

// probeState is a registered probe and what the loop saw of its runs.
type probeState struct {
	Registration
	ran   bool
	stats results.ProbeStats
}

type targetKey struct {
	name string
	kind results.Kind
	addr netip.Addr
}

// New wires an agent.
func New(cfg Config, log *slog.Logger) *Agent {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Plan == (targets.Options{}) {
		cfg.Plan = targets.DefaultOptions()
	}
	a := &Agent{
		cfg: cfg, log: log, clock: cfg.Clock, firstSeen: map[targetKey]time.Time{},
		results: results.New(results.Source{Node: cfg.NodeName}, cfg.Build, cfg.Compat),
	}
	a.results.SetRTTDetail(cfg.RTTDetail)
	for _, r := range cfg.Probes {
		a.probes = append(a.probes, probeState{Registration: r, stats: results.ProbeStats{Protocol: r.Protocol}})
	}
	return a
}

// Run runs cycles until ctx ends (or one cycle, with Once). With Once it returns an error when no
// nodes list could be read or the file could not be written; otherwise it keeps going through
// bad lists and failed writes (logged and counted) and removes its file when ctx ends.
//
// A cycle starts every Interval. One that overruns is counted, and the next starts as soon as it
// ends; no cycle runs past twice the interval (its probes are stopped, and their pairs left out),
// so the next start is never more than one cycle late.
func (a *Agent) Run(ctx context.Context) error {
	if !a.cfg.Once {
		var wg sync.WaitGroup
		sctx, stop := context.WithCancel(ctx)
		defer func() { stop(); wg.Wait() }()
		for _, c := range a.cfg.Components {
			if s, ok := c.(Server); ok {
				wg.Go(func() {
					if err := s.Serve(sctx); err != nil && sctx.Err() == nil {
						a.log.Error("responder stopped", "err", err)
					}
				})
			}
		}
		defer func() {
			if err := textfile.Remove(a.cfg.TextfilePath); err != nil {
				a.log.Error("remove textfile on shutdown", "err", err)
			} else {
				a.log.Info("removed textfile on shutdown", "path", a.cfg.TextfilePath)
			}
		}()
	}
	for {
		start := a.clock.Now()
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
		if err := a.clock.Sleep(ctx, start.Add(a.cfg.Interval).Sub(a.clock.Now())); err != nil {
			return nil
		}
	}
}

// load reads the nodes list and, when its content changed, decodes it. A list that does not read
// or decode is counted every cycle it stays (logged when it first appears), and the last good one
// stays in use.
func (a *Agent) load(now time.Time) error {
	data, err := nodelist.ReadFile(a.cfg.NodesFile, 0)
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
			err = nodelist.CheckSize(l, 0)
		}
		if errors.Is(err, nodelist.ErrTooLarge) {
			a.tooLarge++
		}
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
		if st := n.State(); st != nodelist.StateReady {
			a.maintenance[n.Name] = st
		}
	}
	for _, s := range skips {
		a.skipped[s.Reason]++
		a.log.Warn("nodes list entry skipped", "name", s.Name, "reason", s.Reason, "detail", s.Detail)
	}
	plan := targets.Build(l, a.cfg.Plan)
	sel, me := plan.Targets(a.cfg.NodeName)
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
	a.list, a.plan, a.listHash, a.listOK, a.listLoaded = l, plan, h, true, now
	st := plan.Stats()
	a.planState = results.PlanState{
		Mode: st.Mode, SubsetPeers: st.SubsetPeers, Peers: len(plan.Peers(a.cfg.NodeName)),
		ZonePairs: st.ZonePairs, ZonePairsCovered: st.ZonePairsCovered, MinZonePairPairs: st.MinZonePairPairs,
		MinObservingZones: st.MinObservingZones,
	}
	if st.FoldedZones > 0 {
		a.log.Warn("nodes list has more zones than --max-zones: the smallest are planned as one zone, and links between them are not covered",
			"zones", st.Zones, "max_zones", plan.Options().MaxZones, "folded_zones", st.FoldedZones, "folded_nodes", st.FoldedNodes)
	}
	for _, p := range a.probes {
		if u, ok := p.Probe.(ListUser); ok {
			u.UseList(l)
		}
		if p.Fits != nil {
			if err := p.Fits(len(sel)); err != nil {
				a.log.Warn("probe may not fit the interval with this list", "protocol", p.Protocol, "targets", len(sel), "err", err)
			}
		}
	}
	for _, c := range a.cfg.Components {
		if u, ok := c.(ListUser); ok {
			u.UseList(l)
		}
	}
	a.log.Info("nodes list loaded", "path", a.cfg.NodesFile, "format", l.Format, "nodes", len(l.Nodes),
		"targets", len(sel), "external", len(l.External), "skipped", len(skips), "plan", st.Mode, "subset_peers", st.SubsetPeers, "peers", a.planState.Peers,
		"zones", st.Zones, "zone_pairs_covered", fmt.Sprintf("%d/%d", st.ZonePairsCovered, st.ZonePairs),
		"min_zone_pair_pairs", st.MinZonePairPairs, "min_observing_zones", st.MinObservingZones)
}

// cycle probes every target once and records the results.
func (a *Agent) cycle(ctx context.Context, start time.Time) error {
	var (
		all   []Target
		grace = map[targetKey]bool{}
	)
	var sel []targets.Target
	if a.plan != nil { // nil until a list loads
		sel, _ = a.plan.Targets(a.cfg.NodeName)
	}
	for _, t := range sel {
		k := targetKey{t.Node.Name, results.KindNode, t.Addr}
		if !a.firstSeen[k].IsZero() && start.Sub(a.firstSeen[k]) < a.cfg.Grace {
			grace[k] = true
		}
		all = append(all, Target{Pair: results.Pair{Kind: results.KindNode, Name: t.Node.Name, Zone: t.Node.Zone, IP: t.Addr}})
	}
	nodeTargets := len(all)
	cctx := ctx
	if !a.cfg.Once {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, 2*a.cfg.Interval)
		defer cancel()
	}
	all = append(all, a.resolveExternal(cctx)...)
	scoped := map[Scope][]Target{AllTargets: all, NodesOnly: all[:nodeTargets], NoTargets: nil}

	a.results.BeginCycle()
	a.last = summary{targets: len(all)}
	runs := make([]probeRun, len(a.probes))
	var wg sync.WaitGroup
	for i := range a.probes { // the probes that run beside the others start first
		if p := &a.probes[i]; p.Beside && p.due(a.cycles) {
			wg.Go(func() { runs[i] = a.run(cctx, p, scoped[p.Scope], grace) })
		}
	}
	for i := range a.probes { // the others one after the other: they may share sockets
		if p := &a.probes[i]; !p.Beside && p.due(a.cycles) {
			runs[i] = a.run(cctx, p, scoped[p.Scope], grace)
			if err := ctx.Err(); err != nil {
				wg.Wait()
				return err
			}
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range a.probes {
		p := &a.probes[i]
		if !p.due(a.cycles) {
			a.results.KeepProtocol(p.Protocol) // not due this cycle: its last results stay
			continue
		}
		a.record(p, runs[i])
	}
	a.cycles++
	d := a.clock.Now().Sub(start)
	overrun := !a.cfg.Once && d > a.cfg.Interval
	if overrun {
		a.log.Warn("probe cycle overran the interval", "took", d, "interval", a.cfg.Interval)
	}
	a.last.took = d
	a.results.EndCycle(d, overrun, a.state(len(all)-len(grace), len(grace)))
	a.log.Debug("cycle done", "targets", len(all), "took", d)
	return nil
}

// probeRun is one probe's run in a cycle.
type probeRun struct {
	rep  *report
	err  error
	took time.Duration
}

// run runs one probe over its targets, timed.
func (a *Agent) run(ctx context.Context, p *probeState, targets []Target, grace map[targetKey]bool) probeRun {
	rep := &report{protocol: p.Protocol, grace: grace}
	t0 := a.clock.Now()
	err := p.Probe.Run(ctx, targets, rep)
	return probeRun{rep: rep, err: err, took: a.clock.Now().Sub(t0)}
}

// record adds a probe's run to the results, with its duration, success and overrun (node_exporter's
// wrapper around every collector); a failed run's samples are dropped.
func (a *Agent) record(p *probeState, r probeRun) {
	p.ran, p.stats.Duration, p.stats.Success = true, r.took, r.err == nil
	if p.Budget > 0 && r.took > p.Budget {
		p.stats.Overruns++
		a.log.Warn("probe overran its budget", "protocol", p.Protocol, "took", r.took, "budget", p.Budget)
	}
	if r.err != nil {
		// This probe's pairs drop out of the file this cycle; the others stay.
		a.log.Error("probe failed", "protocol", p.Protocol, "err", r.err)
		return
	}
	ps := protocolSummary{protocol: p.Protocol}
	for _, s := range r.rep.samples {
		ps.sent += s.Stats.Sent
		ps.received += s.Stats.Received
		a.results.Observe(s)
	}
	a.last.protocols = append(a.last.protocols, ps)
}

// report is the loop's Reporter for one probe's run: it keeps the samples until the run ends
// (an error drops them all), with the protocol set and new targets' losses forgiven.
type report struct {
	protocol string
	grace    map[targetKey]bool
	samples  []results.Sample
}

func (r *report) Report(s results.Sample) {
	s.Pair.Protocol = r.protocol
	if s.Pair.Kind == results.KindNode && r.grace[targetKey{s.Pair.Name, results.KindNode, s.Pair.IP}] {
		// New target: answered echoes count, lost ones do not yet.
		s.Stats.Sent = s.Stats.Received
		s.Stats.SendErrors = 0
	}
	r.samples = append(r.samples, s)
}

// summary is what the last cycle did, for the one line --once prints.
type summary struct {
	targets   int
	took      time.Duration
	protocols []protocolSummary
}

type protocolSummary struct {
	protocol       string
	sent, received int
}

// Summary tells in one line what the last cycle did.
func (a *Agent) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d targets in %s", a.last.targets, a.last.took.Round(time.Millisecond))
	for _, p := range a.last.protocols {
		fmt.Fprintf(&b, ", %s %d/%d answered", p.protocol, p.received, p.sent)
	}
	for _, p := range a.probes {
		if p.ran && !p.stats.Success {
			fmt.Fprintf(&b, ", %s failed", p.Protocol)
		}
	}
	fmt.Fprintf(&b, "; wrote %s", a.cfg.TextfilePath)
	return b.String()
}

// resolveExternal looks up every external target's host, in parallel, and returns one target per
// address family found. Failures are logged and counted; that target is skipped this cycle.
func (a *Agent) resolveExternal(ctx context.Context) []Target {
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

func (a *Agent) state(probed, grace int) results.AgentState {
	st := results.AgentState{
		TargetsProbed: probed, TargetsInGrace: grace,
		ListNodes: len(a.list.Nodes), ListSkipped: a.skipped, Maintenance: a.maintenance, ListLoadErrors: a.loadErrors, ListLoaded: a.listLoaded,
		ListTooLarge: a.tooLarge, Plan: a.planState,
		ResolveErrors: a.resolveErr, WriteErrors: a.writeErr,
	}
	for _, p := range a.probes {
		if p.ran {
			st.Probes = append(st.Probes, p.stats)
		}
		if s, ok := p.Probe.(StateReporter); ok {
			s.ReportState(&st)
		}
	}
	for _, c := range a.cfg.Components {
		if s, ok := c.(StateReporter); ok {
			s.ReportState(&st)
		}
	}
	return st
}

// write renders the results into the textfile; a failure is logged and counted.
func (a *Agent) write() error {
	a.results.SetWriteTime(a.clock.Now())
	err := textfile.Write(a.cfg.TextfilePath, a.results.WriteText)
	if err != nil {
		a.writeErr++
		a.log.Error("cannot write textfile", "err", err)
	}
	return err
}
