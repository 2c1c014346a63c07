package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
)

// listState is the nodes list in use, this node's targets in its probe plan, and what the loop
// saw of the lists it read.
type listState struct {
	list      nodelist.List
	targets   []targets.Target // this node's targets in the plan of list, planned once per list
	planState results.PlanState
	ok        bool // a list is in use
	// loopbackOK: every node address of the list is loopback (a test or a demo on one host), so
	// external targets at loopback addresses are probed too.
	loopbackOK bool
	hash       nodelist.Sum
	badHash    nodelist.Sum // of the last unusable content, so that it is logged once
	loaded     time.Time
	skipped    map[string]int
	// maintenance holds this node and its targets that are cordoned or not Ready (see maintenance).
	maintenance map[string]string
	loadErrors  uint64
	tooLarge    uint64 // lists refused for their size
	// firstSeen is when each target of the list appeared (zero: probed from the start).
	firstSeen map[targetKey]time.Time
}

// maintenance maps the nodes this agent has pairs with, its targets and itself (me; nil when it
// is not in the list), that are cordoned or not Ready to their state. The rules set a pair aside
// when either end is in maintenance, and a pair's series are all in its source's file, so that
// file holds what they need; the list's other cordoned nodes are their own probers' to report.
func maintenance(me *nodelist.Node, sel []targets.Target) map[string]string {
	m := map[string]string{}
	mark := func(n *nodelist.Node) {
		if st := n.State(); st != nodelist.StateReady {
			m[n.Name] = st
		}
	}
	if me != nil {
		mark(me)
	}
	for i := range sel {
		mark(&sel[i].Node)
	}
	return m
}

// fill adds the list's part of the agent's self-metrics.
func (s *listState) fill(st *results.AgentState) {
	st.ListNodes, st.ListSkipped, st.Maintenance = len(s.list.Nodes), s.skipped, s.maintenance
	st.ListLoadErrors, st.ListTooLarge, st.ListLoaded, st.Plan = s.loadErrors, s.tooLarge, s.loaded, s.planState
}

// load reads the nodes list and, when its content changed, decodes it. A list that does not read
// or decode is counted every cycle it stays (logged when it first appears), and the last good one
// stays in use.
func (a *Agent) load(now time.Time) error {
	// Until a list is in use the hash is the zero Sum, which no content has.
	l, skips, h, err := nodelist.LoadChanged(a.cfg.NodesFile, a.nodes.hash)
	switch {
	case errors.Is(err, nodelist.ErrUnchanged):
		return nil
	case err == nil:
		// Targets of the first good list are probed at once; later newcomers get grace.
		a.useList(l, skips, h, now, !a.nodes.ok)
		a.nodes.badHash = nodelist.Sum{}
		return nil
	case errors.Is(err, nodelist.ErrTooLarge):
		a.nodes.tooLarge++
	}
	a.nodes.loadErrors++
	repeated := h == a.nodes.badHash
	a.nodes.badHash = h
	switch {
	case repeated:
		a.log.Debug("nodes list still unusable", "err", err)
	case a.nodes.ok:
		a.log.Error("cannot load nodes list; keeping the last good one", "err", err, "nodes", len(a.nodes.list.Nodes))
	default:
		a.log.Error("cannot load nodes list; nothing to probe until it loads", "err", err)
	}
	a.results.SetAgentState(a.state(0, 0))
	return err
}

func (a *Agent) useList(l nodelist.List, skips []nodelist.Skip, h nodelist.Sum, now time.Time, first bool) {
	var over []nodelist.Skip
	l.External, over = nodelist.LimitExternal(l.External, a.cfg.MaxExternal)
	skips = append(skips, over...)
	a.nodes.skipped = map[string]int{}
	for _, s := range skips {
		a.nodes.skipped[s.Reason]++
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
	a.nodes.maintenance = maintenance(me, sel)
	if len(sel) == 0 && len(l.External) == 0 {
		a.log.Warn("nodes list has no target to probe", "path", a.cfg.NodesFile)
	}
	// Targets that are new after the first list get a grace period; targets that left are forgotten.
	seen := make(map[targetKey]time.Time, len(sel))
	for _, t := range sel {
		k := targetKey{t.Node.Name, results.KindNode, t.Addr}
		if at, ok := a.nodes.firstSeen[k]; ok || first {
			seen[k] = at
		} else {
			seen[k] = now
		}
	}
	for _, e := range l.External {
		k := targetKey{e.Name, results.KindExternal, netip.Addr{}}
		seen[k] = time.Time{}
	}
	a.nodes.firstSeen = seen
	a.nodes.list, a.nodes.targets, a.nodes.hash, a.nodes.ok, a.nodes.loaded = l, sel, h, true, now
	a.nodes.loopbackOK = l.LoopbackOnly()
	st := plan.Stats()
	a.nodes.planState = results.PlanState{
		Mode: st.Mode, SubsetPeers: st.SubsetPeers, Peers: len(plan.Peers(a.cfg.NodeName)),
		ZonePairs: st.ZonePairs, ZonePairsCovered: st.ZonePairsCovered, MinZonePairPairs: st.MinZonePairPairs,
		MinObservingZones: st.MinObservingZones,
	}
	if st.FoldedZones > 0 {
		a.log.Warn("nodes list has more zones than --max-zones: the smallest are planned as one zone, and links between them are not covered",
			"zones", st.Zones, "max_zones", plan.Options().MaxZones, "folded_zones", st.FoldedZones, "folded_nodes", st.FoldedNodes)
	}
	for _, p := range a.probes {
		if p.Fits != nil {
			if err := p.Fits(len(sel)); err != nil {
				a.log.Warn("probe may not fit the interval with this list", "protocol", p.Protocol, "targets", len(sel), "err", err)
			}
		}
	}
	for _, r := range a.cfg.Responders {
		r.UseList(l)
	}
	a.log.Info("nodes list loaded", "path", a.cfg.NodesFile, "format", l.Format, "nodes", len(l.Nodes),
		"targets", len(sel), "external", len(l.External), "skipped", len(skips), "plan", st.Mode, "subset_peers", st.SubsetPeers, "peers", a.nodes.planState.Peers,
		"zones", st.Zones, "zone_pairs_covered", fmt.Sprintf("%d/%d", st.ZonePairsCovered, st.ZonePairs),
		"min_zone_pair_pairs", st.MinZonePairPairs, "min_observing_zones", st.MinObservingZones)
}
