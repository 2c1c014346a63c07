package results

import (
	"cmp"
	"maps"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
)

// The label names of the pair families, whose label sets are rendered once per pair and kept;
// each is declared here once, and the families carry the same slices.
var (
	nodePairLabelNames = []string{"source_node", "source_zone", "destination_node", "destination_zone", "destination_ip", "ip_family", "protocol"}
	extPairLabelNames  = []string{"source_node", "source_zone", "destination_name", "destination_host", "destination_ip", "ip_family", "protocol"}
)

// Type is a metric family's type, as the text format's TYPE line writes it.
type Type string

// The types the agent writes.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Family is one metric family the agent writes.
type Family struct {
	Name string
	Type Type
	Help string
	// Labels are the family's label names (for a histogram, without le).
	Labels []string
	// Compat, when set, is the --compat mode that adds this family; otherwise it is always written.
	Compat string
	render func(f *Family, r *Results, e *encoder)
}

// Families lists every metric family the agent can write, in output order.
func Families() []Family {
	out := make([]Family, len(families))
	for i, f := range families {
		out[i] = *f
	}
	return out
}

func (f *Family) renderTo(r *Results, e *encoder) {
	e.start(f)
	f.render(f, r, e)
}

// pairFamily renders one value of every pair of a kind.
func pairFamily(name string, typ Type, help string, kind Kind, gaugeOnly bool, v func(p *pairState) float64) *Family {
	labels := nodePairLabelNames
	if kind == KindExternal {
		labels = extPairLabelNames
	}
	return &Family{Name: name, Type: typ, Help: help, Labels: labels, render: func(f *Family, r *Results, e *encoder) {
		for _, p := range r.sorted {
			if p.pair.Kind != kind || gaugeOnly && (p.lastReceived == 0 || !r.rttDetail) {
				continue
			}
			e.sample(f.Name, "", p.labels, v(p))
		}
	}}
}

// planGauge renders one figure of the probe plan, once a list is in use.
func planGauge(name, help string, v func(p PlanState) int) *Family {
	return &Family{Name: name, Type: Gauge, Help: help, render: func(f *Family, r *Results, e *encoder) {
		if r.state.Plan.Mode != "" {
			e.sample(f.Name, "", "", float64(v(r.state.Plan)))
		}
	}}
}

// single renders one unlabelled sample.
func single(name string, typ Type, help string, v func(r *Results) float64) *Family {
	return &Family{Name: name, Type: typ, Help: help, render: func(f *Family, r *Results, e *encoder) {
		e.sample(f.Name, "", "", v(r))
	}}
}

// pairFamilies are the per-pair families of a kind, named with prefix; what names the
// destination in their HELP texts.
func pairFamilies(prefix, what string, kind Kind) []*Family {
	return []*Family{
		pairFamily(prefix+"packets_received_total", Counter, "Probe packets answered by "+what+" within the timeout.", kind, false,
			func(p *pairState) float64 { return float64(p.received) }),
		pairFamily(prefix+"packets_sent_total", Counter, "Probe packets sent to "+what+" whose outcome is known (answered, timed out, or failed to send); packets in flight are not counted.", kind, false,
			func(p *pairState) float64 { return float64(p.sent) }),
		pairFamily(prefix+"rtt_max_seconds", Gauge, "Largest round-trip time to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastMax }),
		pairFamily(prefix+"rtt_min_seconds", Gauge, "Smallest round-trip time to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastMin }),
		pairFamily(prefix+"rtt_seconds_total", Counter, "Sum of the round-trip times of the answered probe packets to "+what+".", kind, false,
			func(p *pairState) float64 { return p.rttSum }),
		pairFamily(prefix+"rtt_stddev_seconds", Gauge, "Population standard deviation of the round-trip times to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastStddev }),
	}
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// The families that render label sets outside their render function.
var (
	famRTT = &Family{Name: "nodeping_rtt_seconds", Type: Histogram, Help: "Round-trip times of answered probe packets, per destination zone; ICMP only unless --rtt-detail.",
		Labels: []string{"source_node", "source_zone", "destination_zone", "ip_family", "protocol"},
		render: func(f *Family, r *Results, e *encoder) {
			keys := make([]histKey, 0, len(r.hists))
			for k := range r.hists {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return r.hists[keys[i]].labels < r.hists[keys[j]].labels })
			for _, k := range keys {
				renderHist(e, f.Name, r.hists[k], rttBuckets)
			}
		}}
	famDNSDuration = &Family{Name: "nodeping_dns_request_duration_seconds", Type: Histogram, Help: "Time to an answer from each resolver (any response code), for the DNS probe.",
		Labels: []string{"source_node", "resolver"},
		render: func(f *Family, r *Results, e *encoder) {
			keys := make([]string, 0, len(r.dnsHists))
			for k := range r.dnsHists {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				renderHist(e, f.Name, r.dnsHists[k], dnsBuckets)
			}
		}}
)

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ipFamilies are the values of ip_family, in output order.
var ipFamilies = []string{"ipv4", "ipv6"}

// byProtocol renders one value of each item of a list of the agent's state, labelled by the
// item's protocol: every probe, engine or responder gets the same series.
func byProtocol[T interface{ protocol() string }](name string, typ Type, help string, list func(st *AgentState) []T, v func(x T) float64) *Family {
	return &Family{Name: name, Type: typ, Help: help, Labels: []string{"protocol"},
		render: func(f *Family, r *Results, e *encoder) {
			for _, x := range list(&r.state) {
				e.sample(f.Name, "", f.labels(x.protocol()), v(x))
			}
		}}
}

func (p ProbeStats) protocol() string     { return p.Protocol }
func (e EngineStats) protocol() string    { return e.Protocol }
func (r ResponderStats) protocol() string { return r.Protocol }

// perProbe renders one value of every probe the agent ran.
func perProbe(name string, typ Type, help string, v func(p ProbeStats) float64) *Family {
	return byProtocol(name, typ, help, func(st *AgentState) []ProbeStats { return st.Probes }, v)
}

// perEngine renders one of the running totals of every probe engine the agent runs, from its
// start (at 0).
func perEngine(name, help string, v func(c probe.EngineCounters) uint64) *Family {
	return byProtocol(name, Counter, help, func(st *AgentState) []EngineStats { return st.Engines },
		func(e EngineStats) float64 { return float64(v(e.EngineCounters)) })
}

// families is the fixed table of what the agent writes, sorted by name.
var families = func() []*Family {
	fs := []*Family{
		{Name: "nodeping_build_info", Type: Gauge, Help: "The agent's version, revision and Go version; always 1.", Labels: []string{"goversion", "revision", "version"},
			render: func(f *Family, r *Results, e *encoder) {
				e.sample(f.Name, "", f.labels(runtime.Version(), r.build.Revision, r.build.Version), 1)
			}},
		single("nodeping_cycle_duration_seconds", Gauge, "How long the last probe cycle took, from its start to its last result.",
			func(r *Results) float64 { return r.cycleDur.Seconds() }),
		single("nodeping_cycle_overruns_total", Counter, "Probe cycles that took longer than the interval, so that the next one started late.",
			func(r *Results) float64 { return float64(r.overruns) }),
		single("nodeping_cycles_total", Counter, "Probe cycles completed.",
			func(r *Results) float64 { return float64(r.cycles) }),
		famDNSDuration,
		{Name: "nodeping_external_addresses_refused_total", Type: Counter, Help: "Addresses of external targets, written or resolved, that are never probed, once per cycle each, by reason: loopback, unspecified, link-local, multicast, metadata (a cloud metadata endpoint such as 169.254.169.254).", Labels: []string{"reason"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, k := range nodelist.RefusedReasons { // each from the start, at 0
					e.sample(f.Name, "", f.labels(k), float64(r.state.ExternalRefused[k]))
				}
			}},
		{Name: "nodeping_dns_responses_total", Type: Counter, Help: "DNS probe queries by resolver, name and response code (NOERROR, NXDOMAIN, SERVFAIL, ...; timeout or error when none came).", Labels: []string{"source_node", "resolver", "name", "rcode"},
			render: func(f *Family, r *Results, e *encoder) {
				keys := make([]dnsKey, 0, len(r.dnsCounts))
				for k := range r.dnsCounts {
					keys = append(keys, k)
				}
				sort.Slice(keys, func(i, j int) bool {
					a, b := keys[i], keys[j]
					return a.resolver+"\x00"+a.name+"\x00"+a.rcode < b.resolver+"\x00"+b.name+"\x00"+b.rcode
				})
				for _, k := range keys {
					e.sample(f.Name, "", f.labels(r.src.Node, k.resolver, k.name, k.rcode), float64(r.dnsCounts[k]))
				}
			}},
		{Name: "nodeping_icmp_socket_info", Type: Gauge, Help: "How the ICMP socket of each address family is opened: raw (CAP_NET_RAW) or dgram (unprivileged ping socket); always 1.", Labels: []string{"ip_family", "mode"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, fam := range ipFamilies {
					if m, ok := r.state.ICMPModes[fam]; ok {
						e.sample(f.Name, "", f.labels(fam, m), 1)
					}
				}
			}},
		perEngine("nodeping_inflight_table_full_total", "Probes an engine did not send because 65536 of its probes were already in flight; each also counts as a send error.",
			func(c probe.EngineCounters) uint64 { return c.TableFull }),
		single("nodeping_last_write_timestamp_seconds", Gauge, "When this file was written, in seconds since the Unix epoch.",
			func(r *Results) float64 { return unixSeconds(r.writeTime) }),
		perEngine("nodeping_late_replies_total", "Replies that matched no probe in flight, by engine (icmp: echo replies, the MTU probe's included; udp: echoes): after their deadline, duplicated, or from another address.",
			func(c probe.EngineCounters) uint64 { return c.Late }),
		single("nodeping_nodes_list_last_load_timestamp_seconds", Gauge, "When the nodes list in use was read, in seconds since the Unix epoch; 0 when none has been.",
			func(r *Results) float64 { return unixSeconds(r.state.ListLoaded) }),
		single("nodeping_nodes_list_load_errors_total", Counter, "Failed reads or decodes of the nodes list; the last good list stays in use.",
			func(r *Results) float64 { return float64(r.state.ListLoadErrors) }),
		single("nodeping_nodes_list_too_large_total", Counter, "Nodes lists refused for their size (more bytes or nodes than the agent accepts); each is also a load error, and the last good list stays in use.",
			func(r *Results) float64 { return float64(r.state.ListTooLarge) }),
		single("nodeping_nodes_list_nodes", Gauge, "Usable nodes in the nodes list in use.",
			func(r *Results) float64 { return float64(r.state.ListNodes) }),
		{Name: "nodeping_nodes_list_skipped_entries", Type: Gauge, Help: "Entries of the nodes list in use that were left out, by reason.", Labels: []string{"reason"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, k := range sortedKeys(r.state.ListSkipped) {
					e.sample(f.Name, "", f.labels(k), float64(r.state.ListSkipped[k]))
				}
			}},
		{Name: "nodeping_probe_plan_info", Type: Gauge, Help: "The probe plan of the nodes list in use: full-mesh or subset (K ring peers plus zone coverage); always 1.", Labels: []string{"mode"},
			render: func(f *Family, r *Results, e *encoder) {
				if r.state.Plan.Mode != "" {
					e.sample(f.Name, "", f.labels(r.state.Plan.Mode), 1)
				}
			}},
		planGauge("nodeping_probe_plan_min_observing_zones", "The fewest zones any listed node is observed from, under the probe plan.",
			func(p PlanState) int { return p.MinObservingZones }),
		planGauge("nodeping_probe_plan_min_zone_pair_pairs", "The fewest node pairs that probe one ordered pair of zones, under the probe plan.",
			func(p PlanState) int { return p.MinZonePairPairs }),
		planGauge("nodeping_probe_plan_peers", "How many nodes this node probes under the probe plan.",
			func(p PlanState) int { return p.Peers }),
		planGauge("nodeping_probe_plan_subset_peers", "K, the ring peers each node probes in subset mode; 0 in full-mesh mode.",
			func(p PlanState) int { return p.SubsetPeers }),
		planGauge("nodeping_probe_plan_zone_pairs", "Ordered pairs of distinct zones in the nodes list.",
			func(p PlanState) int { return p.ZonePairs }),
		planGauge("nodeping_probe_plan_zone_pairs_covered", "Ordered pairs of distinct zones that the probe plan probes (all of them, by design).",
			func(p PlanState) int { return p.ZonePairsCovered }),
		perProbe("nodeping_probe_duration_seconds", Gauge, "How long each probe's last run took.",
			func(p ProbeStats) float64 { return p.Duration.Seconds() }),
		{Name: "nodeping_probe_failures_total", Type: Counter, Help: "Lost probes by reason, for probes that can tell why (tcp: refused, timeout, reset, other).", Labels: []string{"protocol", "reason"},
			render: func(f *Family, r *Results, e *encoder) {
				keys := make([]failureKey, 0, len(r.failures))
				for k := range r.failures {
					keys = append(keys, k)
				}
				sort.Slice(keys, func(i, j int) bool { return keys[i].protocol+keys[i].reason < keys[j].protocol+keys[j].reason })
				for _, k := range keys {
					e.sample(f.Name, "", f.labels(k.protocol, k.reason), float64(r.failures[k]))
				}
			}},
		perProbe("nodeping_probe_overruns_total", Counter, "Probe runs that took longer than the probe's share of the interval (its budget).",
			func(p ProbeStats) float64 { return float64(p.Overruns) }),
		perProbe("nodeping_probe_success", Gauge, "Whether each probe's last run succeeded (1) or failed (0: its pairs are left out of this file).",
			func(p ProbeStats) float64 {
				if p.Success {
					return 1
				}
				return 0
			}),
		perEngine("nodeping_receive_errors_total", "Errors reading each engine's probe sockets.",
			func(c probe.EngineCounters) uint64 { return c.RecvErrors }),
		byProtocol("nodeping_responder_answered_total", Counter, "Peers' probes the agent's responders answered.",
			func(st *AgentState) []ResponderStats { return st.Responders },
			func(rs ResponderStats) float64 { return float64(rs.Answered) }),
		{Name: "nodeping_responder_dropped_total", Type: Counter, Help: "Packets the agent's responders dropped, by reason: not_a_node (source not in the nodes list); UDP: source_port (privileged, below 1024, or the responder's own), oversized (longer than a probe), malformed (not a nodeping probe: too short, or without the marker and probe kind, as an echo), rate_limited; TCP: over_capacity, accept_error.", Labels: []string{"protocol", "reason"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, rs := range r.state.Responders {
					for _, k := range sortedKeys(rs.Dropped) {
						e.sample(f.Name, "", f.labels(rs.Protocol, k), float64(rs.Dropped[k]))
					}
				}
			}},
		single("nodeping_resolve_errors_total", Counter, "External targets skipped in a cycle because their host name did not resolve, once per target and cycle (a failed look-up is kept, not retried, for its negative TTL within 30s..10m; 30s when it tells none, as a timeout).",
			func(r *Results) float64 { return float64(r.state.ResolveErrors) }),
		famRTT,
		{Name: "nodeping_send_errors_total", Type: Counter, Help: "Probe packets the kernel refused to send (no route, for example); each also counts as sent and lost.", Labels: []string{"ip_family", "protocol"},
			render: func(f *Family, r *Results, e *encoder) {
				// Every engine's from its start (at 0), for both families; other probes' from
				// their first.
				counts := maps.Clone(r.sendErrors)
				for _, en := range r.state.Engines {
					for _, fam := range ipFamilies {
						counts[histKey{family: fam, protocol: en.Protocol}] += 0
					}
				}
				keys := slices.SortedFunc(maps.Keys(counts), func(a, b histKey) int {
					return cmp.Compare(a.protocol+a.family, b.protocol+b.family)
				})
				for _, k := range keys {
					e.sample(f.Name, "", f.labels(k.family, k.protocol), float64(counts[k]))
				}
			}},
		{Name: "nodeping_targets", Type: Gauge, Help: "Targets of the last cycle by state: probed, or in grace (new, so only answered packets count).", Labels: []string{"state"},
			render: func(f *Family, r *Results, e *encoder) {
				e.sample(f.Name, "", f.labels("grace"), float64(r.state.TargetsInGrace))
				e.sample(f.Name, "", f.labels("probed"), float64(r.state.TargetsProbed))
			}},
		single("nodeping_textfile_write_errors_total", Counter, "Failed writes of this file.",
			func(r *Results) float64 { return float64(r.state.WriteErrors) }),
	}
	fs = append(fs, flantFamilies("kube_node_ping_", KindNode)...)
	fs = append(fs, flantFamilies("external_ping_", KindExternal)...)
	fs = append(fs, &Family{Name: "nodeping_node_maintenance", Type: Gauge, Help: "This node and the nodes it probes, when cordoned or not Ready, by reason; always 1. Rules raise no network alert for them.", Labels: []string{"destination_node", "reason"},
		render: func(f *Family, r *Results, e *encoder) {
			for _, n := range sortedKeys(r.state.Maintenance) {
				e.sample(f.Name, "", f.labels(n, r.state.Maintenance[n]), 1)
			}
		}})
	fs = append(fs, pairFamilies("nodeping_", "the destination node", KindNode)...)
	fs = append(fs, pairFamilies("nodeping_external_", "the external target", KindExternal)...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return fs
}()
