package agent

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/results"
)

// Probe is the one contract every probe meets (node_exporter's Collector): Run is given the
// cycle's targets (as its Scope selects them) and reports each result through rep. When Run
// returns an error, everything it reported this cycle is dropped. The loop, not the probe, times
// each run and writes its duration, success and overruns.
type Probe interface {
	Run(ctx context.Context, targets []Target, rep Reporter) error
}

// Target is one address probed in a cycle, with the pair its results report under (Protocol is
// left empty: the loop sets it).
type Target struct {
	Pair results.Pair
}

// Reporter takes a probe's results: one sample per target, or per query for a probe that has no
// targets. The loop sets the protocol, and applies the grace of new targets.
type Reporter interface {
	Report(s results.Sample)
}

// Scope says which of the cycle's targets a probe is given.
type Scope int

const (
	// AllTargets: the listed nodes and the external targets.
	AllTargets Scope = iota
	// NodesOnly: the listed nodes (the MTU, TCP and UDP of an outside path are not the cluster's).
	NodesOnly
	// NoTargets: the probe has its own (the DNS probe's resolvers).
	NoTargets
)

// Registration is one probe as the agent runs it; every probe is registered the same way.
type Registration struct {
	// Protocol labels its series (probe.ProtocolICMP, ...); Build stamps it from the probe's
	// options.
	Protocol string
	Probe    Probe
	Scope    Scope
	// Every runs the probe every Nth cycle only (0 or 1: every cycle); its series stay between runs.
	Every int
	// Budget is the longest one run should take for the cycle to fit the interval (see Budget);
	// a longer run is counted in nodeping_probe_overruns_total. 0: not checked.
	Budget time.Duration
	// Beside runs the probe beside the others instead of after them (it shares no socket with
	// them): its budget is the whole cycle's.
	Beside bool
	// Fits, when set, tells whether a run over this many node targets still fits the budget
	// (a probe whose run time grows with the targets); the agent warns on a list that does not.
	Fits func(targets int) error
}

func (r Registration) due(cycle uint64) bool { return r.Every <= 1 || cycle%uint64(r.Every) == 0 }

// Responder answers peers' probes beside the loop until ctx ends (the TCP and UDP responders).
// It answers the addresses of the nodes list in use only, and adds what it answered and dropped
// to the agent's self-metrics.
type Responder interface {
	Serve(ctx context.Context) error
	UseList(l nodelist.List)
	Stats() results.ResponderStats
}

// Engine is a probe engine whose running totals the agent adds to its self-metrics at the end of
// every cycle. Every engine gives the same set (probe.EngineCounters), labelled by Protocol: the
// builder stamps probe.ProtocolICMP on the batch ICMP engine, which the MTU probe shares (its
// counters include the MTU probe's echoes), and probe.ProtocolUDP on the UDP probe's. The pro-bing
// ICMP engine counts none of them, and is no Engine.
type Engine struct {
	Protocol string
	Counters func() probe.EngineCounters
}

// AddrProber is the shape of the engines that take addresses and give statistics indexed like
// them: probe.ICMP, probe.MTUProbe, probe.ProBing, probe.TCP and probe.UDP.
type AddrProber interface {
	Run(ctx context.Context, targets []netip.Addr) ([]probe.Stats, error)
}

// AddrProbe adapts an AddrProber to the Probe contract.
func AddrProbe(p AddrProber) Probe { return addrProbe{p} }

type addrProbe struct{ p AddrProber }

func (a addrProbe) Run(ctx context.Context, targets []Target, rep Reporter) error {
	addrs := make([]netip.Addr, len(targets))
	for i, t := range targets {
		addrs[i] = t.Pair.IP
	}
	stats, err := a.p.Run(ctx, addrs)
	if err != nil {
		return err
	}
	for i, st := range stats {
		rep.Report(results.Sample{Pair: targets[i].Pair, Stats: st})
	}
	return nil
}

// everyFlag defines --<name>-every, which runs the probe only every Nth cycle.
func everyFlag(fs *flag.FlagSet, every *int, name string) {
	fs.IntVar(every, name+"-every", 1, "run the "+strings.ToUpper(name)+" probe every N cycles")
}

// checkEvery rejects a --<name>-every below 1.
func checkEvery(name string, every int) error {
	if every < 1 {
		return fmt.Errorf("--%s-every %d: must be at least 1", name, every)
	}
	return nil
}
