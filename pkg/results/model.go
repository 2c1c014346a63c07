package results

import (
	"net/netip"
	"time"

	"github.com/nodeping/nodeping/pkg/probe"
)

// Kind tells a cluster node from an external target.
type Kind int

const (
	// KindNode is a node of the cluster.
	KindNode Kind = iota
	// KindExternal is a target outside the cluster, named by a host.
	KindExternal
	// KindDNS is a name looked up at a resolver: Name is the name, Host the resolver (host:port).
	// It gives no pair series, only the DNS families.
	KindDNS
)

// Pair names one probed path from this node. For KindNode, Name and Zone are the destination
// node's; for KindExternal, Name and Host are the external target's.
type Pair struct {
	Kind     Kind
	Name     string
	Zone     string
	Host     string
	IP       netip.Addr
	Protocol string
}

// Sample is what one probe gave for one pair in one cycle: every probe reports through it.
type Sample struct {
	Pair  Pair
	Stats probe.Stats
	// Code is the answer's code where the protocol has one (dns: NOERROR, NXDOMAIN, ...; timeout
	// or error when none came).
	Code string
}

// Source is the node the agent runs on.
type Source struct {
	Node, Zone string
}

// BuildInfo is reported by nodeping_build_info.
type BuildInfo struct {
	Version, Revision string
}

// AgentState is the agent's view of itself at the end of a cycle.
type AgentState struct {
	// TargetsProbed and TargetsInGrace count this cycle's targets; a target in grace is new, and
	// only its answered echoes count.
	TargetsProbed, TargetsInGrace int
	// ListNodes is the number of usable nodes in the current nodes list, ListSkipped the entries
	// left out of it by reason.
	ListNodes   int
	ListSkipped map[string]int
	// Maintenance maps the nodes this agent probes, and itself, that are cordoned or not Ready
	// to the reason ("cordoned", "not_ready"); rules raise no network alert for them.
	Maintenance map[string]string
	// ListLoadErrors counts nodes-list reads or decodes that failed; the last good list stays in use.
	ListLoadErrors uint64
	// ListTooLarge counts the lists among those that were refused for their size (nodelist.MaxBytes,
	// nodelist.MaxNodes).
	ListTooLarge uint64
	// Plan describes the probe plan of the list in use; its Mode is "" before the first list.
	Plan PlanState
	// ListLoaded is when the list in use was read; zero when none has been.
	ListLoaded time.Time
	// ResolveErrors counts the cycles in which an external target's host name did not resolve,
	// once per target.
	ResolveErrors uint64
	// ExternalRefused counts external targets' addresses refused and not probed (once per cycle
	// each), by reason: nodelist.RefusedTarget's.
	ExternalRefused map[string]uint64
	// WriteErrors counts failed textfile writes.
	WriteErrors uint64
	// ICMPModes maps an address family ("ipv4", "ipv6") to the ICMP engine's socket mode ("raw",
	// "dgram"); the UDP engine's sockets have no mode.
	ICMPModes map[string]string
	// Engines are the probe engines' running totals, each labelled by its protocol.
	Engines []EngineStats
	// Responders are the agent's answers to its peers' probes.
	Responders []ResponderStats
	// Probes are the probes' own runs, in the order the agent runs them.
	Probes []ProbeStats
}

// PlanState is what the agent reports of its probe plan (pkg/targets): the mode, K, this node's
// peers and the cluster's zone coverage.
type PlanState struct {
	// Mode is "full-mesh" or "subset".
	Mode string
	// SubsetPeers is K (0 in full-mesh mode); Peers is how many nodes this one probes.
	SubsetPeers, Peers int
	// ZonePairs is the number of ordered pairs of distinct zones, ZonePairsCovered how many of
	// them are probed, MinZonePairPairs the fewest node pairs that probe one of them.
	ZonePairs, ZonePairsCovered, MinZonePairPairs int
	// MinObservingZones is the fewest zones any node is observed from.
	MinObservingZones int
}

// ProbeStats is what the agent saw of one probe's runs: the last one's duration and outcome, and
// the runs that took longer than the probe's budget.
type ProbeStats struct {
	Protocol string
	// Duration is the last run's; Success is false when it failed (its pairs were dropped).
	Duration time.Duration
	Success  bool
	Overruns uint64
}

// EngineStats are one probe engine's running totals: every engine reports the same set, the way
// node_exporter gives every collector the same success and duration series. Protocol names the
// engine, not the probes that share it: "icmp" is the batch ICMP engine, whose counters include
// the MTU probe's echoes; "udp" the UDP probe's.
type EngineStats struct {
	Protocol string
	probe.EngineCounters
}

// ResponderStats counts what one of the agent's responders answered and dropped (by reason).
type ResponderStats struct {
	Protocol string
	Answered uint64
	Dropped  map[string]uint64
}
