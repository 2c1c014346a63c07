// Package agent runs the probe loop: nodes list -> targets -> probes -> results -> textfile.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nodeping/nodeping/internal/lograte"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/resolve"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
	"github.com/nodeping/nodeping/pkg/textfile"
)

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
	// ResolveTimeout bounds each external target's whole host name look-up, every nameserver
	// asked included (0: 2s); Build gives each nameserver's exchange its share.
	ResolveTimeout time.Duration
	// MaxExternal is how many external targets of a list are probed, the first ones (0 or less:
	// nodelist.MaxExternal); the others are skipped, logged and counted.
	MaxExternal int
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
	// Probes run every cycle they are due: those marked Beside start first, each in its own
	// goroutine (they share no socket); the others then run one after the other, in this order
	// (they may share sockets).
	Probes []Registration
	// Responders answer peers' probes beside the loop (not with Once); each is given every nodes
	// list the agent starts using.
	Responders []Responder
	// Engines report the probe engines' running totals with every cycle's self-metrics, one
	// schema labelled by protocol.
	Engines []Engine
	// ICMPModes maps an address family to the batch ICMP engine's socket mode ("raw", "dgram"),
	// for nodeping_icmp_socket_info; nil without that engine.
	ICMPModes map[string]string
	// Resolver looks up external targets' host names, fully qualified; its answers are kept for
	// their TTL, 30s to 10m (nil: resolve.Net on net.DefaultResolver, which tells no TTL).
	Resolver resolve.Backend
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

	nodes      listState
	cycles     uint64 // cycles run, for probes that run every Nth
	resolver   *resolve.Cache
	resolveErr uint64
	refused    map[string]uint64 // external targets' addresses refused, by reason
	logLimit   lograte.Limiter
	writeErr   uint64
	last       summary
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
		cfg.Resolver = resolve.Net{Resolver: net.DefaultResolver}
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = 2 * time.Second
	}
	if cfg.MaxExternal <= 0 {
		cfg.MaxExternal = nodelist.MaxExternal
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Plan == (targets.Options{}) {
		cfg.Plan = targets.DefaultOptions()
	}
	a := &Agent{
		cfg: cfg, log: log, clock: cfg.Clock, nodes: listState{firstSeen: map[targetKey]time.Time{}},
		results:  results.New(results.Source{Node: cfg.NodeName}, cfg.Build, cfg.Compat),
		resolver: resolve.New(cfg.Resolver, resolve.Config{Now: cfg.Clock.Now}),
		refused:  map[string]uint64{},
		logLimit: lograte.Limiter{Period: logEvery},
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
		for _, r := range a.cfg.Responders {
			wg.Go(func() {
				if err := r.Serve(sctx); err != nil && sctx.Err() == nil {
					a.log.Error("responder stopped", "err", err)
				}
			})
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
		if a.cfg.Once && !a.nodes.ok {
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

// cycle probes every target once and records the results.
func (a *Agent) cycle(ctx context.Context, start time.Time) error {
	var (
		all   []Target
		grace = map[targetKey]bool{}
	)
	for _, t := range a.nodes.targets { // none until a list loads
		k := targetKey{t.Node.Name, results.KindNode, t.Addr}
		if at := a.nodes.firstSeen[k]; !at.IsZero() && start.Sub(at) < a.cfg.Grace {
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

// state is the agent's self-metrics: the cycle's targets, the list's, the probes' runs, and the
// engines' and responders' running totals.
func (a *Agent) state(probed, grace int) results.AgentState {
	st := results.AgentState{TargetsProbed: probed, TargetsInGrace: grace, ResolveErrors: a.resolveErr,
		ExternalRefused: a.refused, WriteErrors: a.writeErr, ICMPModes: a.cfg.ICMPModes}
	a.nodes.fill(&st)
	for _, p := range a.probes {
		if p.ran {
			st.Probes = append(st.Probes, p.stats)
		}
	}
	for _, e := range a.cfg.Engines {
		st.Engines = append(st.Engines, results.EngineStats{Protocol: e.Protocol, EngineCounters: e.Counters()})
	}
	for _, r := range a.cfg.Responders {
		st.Responders = append(st.Responders, r.Stats())
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
