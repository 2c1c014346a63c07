//go:build linux

package simcluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/promapi"
)

// Spec is a fault written as text, as on nodeping-sim's and scripts/demo's --fault:
// KIND:ARG:ARG..., or several joined by "+" to inject them at once.
type Spec struct {
	Kind    string
	Nodes   []string
	Zones   []string
	Percent float64
	Bytes   int
	RTT     time.Duration
	Jitter  time.Duration
	// Parts are the faults of a combined spec (Kind "+").
	Parts []Spec
	text  string
}

func (s Spec) String() string { return s.text }

// specKind is one kind of fault: its syntax and how its arguments parse.
type specKind struct {
	name, syntax string
	args         []string // node, zone, percent, bytes, duration; "?duration" is optional and last
}

var specKinds = []specKind{
	{"none", "none", nil},
	{"loss", "loss:NODE:PERCENT", []string{"node", "percent"}},
	{"blackhole", "blackhole:NODE", []string{"node"}},
	{"isolate", "isolate:NODE", []string{"node"}},
	{"link", "link:NODE:NODE[:PERCENT]", []string{"node", "node", "?percent"}},
	{"pair-loss", "pair-loss:SOURCE:DESTINATION:PERCENT", []string{"node", "node", "percent"}},
	{"zone-link", "zone-link:ZONE:ZONE[:PERCENT]", []string{"zone", "zone", "?percent"}},
	{"partition", "partition:ZONE", []string{"zone"}},
	{"mtu", "mtu:NODE:BYTES", []string{"node", "bytes"}},
	{"latency", "latency:NODE:RTT[:JITTER]", []string{"node", "duration", "?duration"}},
	{"zone-latency", "zone-latency:ZONE:ZONE:RTT[:JITTER]", []string{"zone", "zone", "duration", "?duration"}},
	{"stop-agent", "stop-agent:NODE", []string{"node"}},
	{"cordoned-blackhole", "cordoned-blackhole:NODE", []string{"node"}},
	{"background-loss", "background-loss:PERCENT", []string{"percent"}},
}

// SpecSyntax lists the accepted faults, for usage messages.
func SpecSyntax() string {
	var out []string
	for _, k := range specKinds {
		out = append(out, k.syntax)
	}
	return strings.Join(out, ", ") + "; join several with +"
}

// ParseSpec parses a fault spec. It checks the syntax only; Check checks the names against a
// cluster's.
func ParseSpec(text string) (Spec, error) {
	if strings.Contains(text, "+") {
		s := Spec{Kind: "+", text: text}
		for _, p := range strings.Split(text, "+") {
			ps, err := ParseSpec(p)
			if err != nil {
				return Spec{}, err
			}
			if ps.Kind == "none" {
				return Spec{}, fmt.Errorf("fault %q: none cannot be combined", text)
			}
			s.Parts = append(s.Parts, ps)
		}
		return s, nil
	}
	parts := strings.Split(text, ":")
	var k *specKind
	for i := range specKinds {
		if specKinds[i].name == parts[0] {
			k = &specKinds[i]
		}
	}
	if k == nil {
		return Spec{}, fmt.Errorf("fault %q: unknown kind %q; want one of %s", text, parts[0], SpecSyntax())
	}
	args := parts[1:]
	minArgs := 0
	for _, a := range k.args {
		if !strings.HasPrefix(a, "?") {
			minArgs++
		}
	}
	if len(args) < minArgs || len(args) > len(k.args) {
		return Spec{}, fmt.Errorf("fault %q: want %s", text, k.syntax)
	}
	s := Spec{Kind: k.name, text: text}
	durations := 0
	for i, a := range args {
		if a == "" {
			return Spec{}, fmt.Errorf("fault %q: empty argument %d; want %s", text, i+1, k.syntax)
		}
		switch strings.TrimPrefix(k.args[i], "?") {
		case "node":
			s.Nodes = append(s.Nodes, a)
		case "zone":
			s.Zones = append(s.Zones, a)
		case "percent":
			v, err := strconv.ParseFloat(a, 64)
			if err != nil || v <= 0 || v > 100 {
				return Spec{}, fmt.Errorf("fault %q: %q is not a percentage in (0, 100]", text, a)
			}
			s.Percent = v
		case "bytes":
			v, err := strconv.Atoi(a)
			if err != nil || v < 68 || v > 65535 {
				return Spec{}, fmt.Errorf("fault %q: %q is not a number of bytes in 68..65535", text, a)
			}
			s.Bytes = v
		case "duration":
			v, err := time.ParseDuration(a)
			if err != nil || v < 0 || v > 10*time.Second {
				return Spec{}, fmt.Errorf("fault %q: %q is not a duration in 0..10s (like 50ms)", text, a)
			}
			if durations == 0 {
				s.RTT = v
			} else {
				s.Jitter = v
			}
			durations++
		}
	}
	if ((k.name == "link" || k.name == "pair-loss") && s.Nodes[0] == s.Nodes[1]) || ((k.name == "zone-link" || k.name == "zone-latency") && s.Zones[0] == s.Zones[1]) {
		return Spec{}, fmt.Errorf("fault %q: the two ends are the same", text)
	}
	if k.name == "background-loss" && s.Percent > 10 {
		return Spec{}, fmt.Errorf("fault %q: background loss above 10%% is not background", text)
	}
	return s, nil
}

// Names returns the node and zone names a cluster of that size has.
func Names(nodes, zones int) (nodeNames, zoneNames []string) {
	for z := 0; z < zones; z++ {
		zoneNames = append(zoneNames, zoneName(z))
	}
	for i := 0; i < nodes; i++ {
		nodeNames = append(nodeNames, fmt.Sprintf("node-%d", i+1))
	}
	return nodeNames, zoneNames
}

// Check says whether every node and zone the spec names exists.
func (s Spec) Check(nodes, zones []string) error {
	for _, p := range s.Parts {
		if err := p.Check(nodes, zones); err != nil {
			return err
		}
	}
	has := func(list []string, x string) bool {
		for _, y := range list {
			if x == y {
				return true
			}
		}
		return false
	}
	for _, n := range s.Nodes {
		if !has(nodes, n) {
			return fmt.Errorf("fault %q: no node %q (the cluster has %s..%s)", s.text, n, nodes[0], nodes[len(nodes)-1])
		}
	}
	for _, z := range s.Zones {
		if !has(zones, z) {
			return fmt.Errorf("fault %q: no zone %q (the cluster has %s)", s.text, z, strings.Join(zones, ", "))
		}
	}
	return nil
}

// pct turns an optional percentage into a whole one: 100 when not given.
func pct(p float64) int {
	if p == 0 {
		return 100
	}
	return max(1, int(p+0.5))
}

// Inject injects the fault a spec describes. A "none" spec injects nothing and returns nil.
func (c *Cluster) Inject(s Spec) (*Fault, error) {
	n := func(i int) string { return s.Nodes[i] }
	z := func(i int) string { return s.Zones[i] }
	switch s.Kind {
	case "none":
		return nil, nil
	case "+":
		var fs []*Fault
		for _, p := range s.Parts {
			f, err := c.Inject(p)
			if err != nil {
				for _, g := range fs {
					g.Clear()
				}
				return nil, err
			}
			fs = append(fs, f)
		}
		return Combine(fs...), nil
	case "loss":
		return c.GrayLoss(n(0), s.Percent)
	case "blackhole":
		return c.Blackhole(n(0))
	case "isolate":
		return c.Isolate(n(0))
	case "link":
		return c.LossyLink(n(0), n(1), pct(s.Percent))
	case "pair-loss":
		return c.PairLoss(n(0), n(1), pct(s.Percent))
	case "zone-link":
		return c.LossyZoneLink(z(0), z(1), pct(s.Percent))
	case "partition":
		return c.Partition(z(0))
	case "mtu":
		return c.MTUBlackhole(n(0), s.Bytes)
	case "latency":
		return c.Latency(n(0), s.RTT, s.Jitter)
	case "zone-latency":
		return c.ZoneLatency(z(0), z(1), s.RTT, s.Jitter)
	case "stop-agent":
		return c.StopAgent(n(0))
	case "cordoned-blackhole":
		return c.CordonedBlackhole(n(0))
	case "background-loss":
		return c.BackgroundLoss(s.Percent)
	}
	return nil, fmt.Errorf("simcluster: fault kind %q not injectable", s.Kind)
}

// Class names the fault class a spec belongs to, for the campaign's figures. The names are
// those of the synthetic campaign (internal/rulecampaign), so that the two tables compare.
func (s Spec) Class() string {
	switch s.Kind {
	case "+":
		return "two-node-faults"
	case "none", "background-loss":
		return "healthy"
	case "loss":
		if s.Percent <= 3 {
			return "node-gray-1-3pct"
		}
		return "node-lossy-5-30pct"
	case "blackhole":
		return "node-blackhole"
	case "isolate":
		return "node-own-echoes-dropped"
	case "zone-link":
		if s.Percent > 0 && s.Percent < 100 {
			return "zone-link-lossy"
		}
		return "zone-link-down"
	case "partition":
		return "zone-partition"
	case "pair-loss":
		return "pair-lossy-one-way"
	case "link":
		return "pair-lossy-both-ways"
	case "mtu":
		return "mtu-blackhole"
	case "latency":
		return "node-latency"
	case "zone-latency":
		return "zone-link-latency"
	case "stop-agent":
		return "agent-missing"
	}
	return s.Kind
}

// Alert is an alert by its name and the labels that identify what it names.
type Alert = promapi.Alert

// Expected returns the alerts the shipped rules must fire for the fault, sorted by String,
// and nothing else. zoneOf gives a node's zone.
//
// NodePingZoneIsolated, NodePingAgentMissing and NodePingZoneLinkLatency come with the second
// round of rules (issue 12); NeedsRound2 says whether a spec's expectations use them.
func (s Spec) Expected(zoneOf func(node string) string) []Alert {
	var out []Alert
	node := func(name string, i int) Alert {
		return Alert{Name: name, Labels: map[string]string{"node": s.Nodes[i], "zone": zoneOf(s.Nodes[i])}}
	}
	both := func(name string, l map[string]string, swap func(map[string]string) map[string]string) {
		out = append(out, Alert{Name: name, Labels: l}, Alert{Name: name, Labels: swap(l)})
	}
	zoneSwap := func(l map[string]string) map[string]string {
		return map[string]string{"source_zone": l["destination_zone"], "destination_zone": l["source_zone"]}
	}
	switch s.Kind {
	case "+":
		for _, p := range s.Parts {
			out = append(out, p.Expected(zoneOf)...)
		}
	case "loss", "blackhole":
		out = append(out, node("NodePingNodeUnreachable", 0))
	case "isolate":
		out = append(out, node("NodePingNodeIsolated", 0))
	case "mtu":
		out = append(out, node("NodePingMTUBlackhole", 0))
	case "latency":
		out = append(out, node("NodePingHighLatency", 0))
	case "stop-agent":
		// The rule names the node only: the zone comes from the node's own series, which are gone.
		out = append(out, Alert{Name: "NodePingAgentMissing", Labels: map[string]string{"node": s.Nodes[0]}})
	case "partition":
		out = append(out, Alert{Name: "NodePingZoneIsolated", Labels: map[string]string{"zone": s.Zones[0]}})
	case "zone-link":
		both("NodePingZoneLinkDegraded", map[string]string{"source_zone": s.Zones[0], "destination_zone": s.Zones[1]}, zoneSwap)
	case "zone-latency":
		both("NodePingZoneLinkLatency", map[string]string{"source_zone": s.Zones[0], "destination_zone": s.Zones[1]}, zoneSwap)
	case "pair-loss":
		a, b := s.Nodes[0], s.Nodes[1]
		out = append(out, Alert{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": a, "destination_node": b, "source_zone": zoneOf(a), "destination_zone": zoneOf(b)}})
	case "link":
		a, b := s.Nodes[0], s.Nodes[1]
		out = append(out,
			Alert{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": a, "destination_node": b, "source_zone": zoneOf(a), "destination_zone": zoneOf(b)}},
			Alert{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": b, "destination_node": a, "source_zone": zoneOf(b), "destination_zone": zoneOf(a)}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// NeedsRound2 says whether the spec's expected alerts, or their absence, hold only with the
// second round of rules (issue 12): new alerts, gray loss, silence on a planned drain.
func (s Spec) NeedsRound2() bool {
	for _, p := range s.Parts {
		if p.NeedsRound2() {
			return true
		}
	}
	switch s.Kind {
	case "partition", "zone-latency", "stop-agent", "background-loss", "cordoned-blackhole", "latency":
		return true
	case "loss":
		return s.Percent < 5
	case "link", "zone-link", "pair-loss":
		return s.Percent > 0 && s.Percent < 100
	}
	return false
}
