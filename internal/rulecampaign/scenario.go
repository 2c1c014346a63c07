package rulecampaign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// Timeline of every case, in 15s steps (one probe cycle and one scrape each).
const (
	StepSeconds = 15
	FaultStep   = 20 // the fault starts at 5m, after a healthy baseline
	Steps       = 36 // the run ends at 9m: 4 minutes of fault
	EchoesPer   = 10 // ICMP echoes per pair per cycle (the agent's --icmp-count)
)

// Alert is an alert by name and the labels that say what it names.
type Alert struct {
	Name   string
	Labels map[string]string
}

// identifying lists, per alert, the labels that name its culprit.
var identifying = map[string][]string{
	"NodePingNodeUnreachable":  {"node"},
	"NodePingNodeIsolated":     {"node"},
	"NodePingHighLatency":      {"node"},
	"NodePingMTUBlackhole":     {"node"},
	"NodePingAgentMissing":     {"node"},
	"NodePingZoneIsolated":     {"zone"},
	"NodePingZoneLinkDegraded": {"source_zone", "destination_zone"},
	"NodePingZoneLinkLatency":  {"source_zone", "destination_zone"},
	"NodePingPairLoss":         {"source_node", "destination_node"},

	"NodePingTCPUnreachable":                {"node"},
	"NodePingUDPUnreachable":                {"node"},
	"NodePingNodeDNSFailing":                {"node"},
	"NodePingDNSFailing":                    {},
	"NodePingNodeDNSSlow":                   {"node"},
	"NodePingExternalTargetUnreachable":     {"destination_name"},
	"NodePingNodeExternalTargetUnreachable": {"node"},
	"NodePingNoData":                        {},
}

// Key is the alert's name and identifying labels, e.g. NodePingNodeUnreachable{node="node-2"}.
func (a Alert) Key() string {
	keys := identifying[a.Name]
	if keys == nil {
		keys = make([]string, 0, len(a.Labels))
		for k := range a.Labels {
			if k != "alertname" && k != "alertstate" && k != "severity" && k != "case" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, a.Labels[k]))
	}
	return a.Name + "{" + strings.Join(parts, ",") + "}"
}

// Effects are what a fault does to the counters from FaultStep on.
type Effects struct {
	// Loss is the share of echoes from s to d lost by the fault (on top of the background).
	Loss func(s, d int) float64
	// MTULoss is the share of full-size echoes from s to d lost.
	MTULoss func(s, d int) float64
	// Delay is the round-trip time the fault adds to echoes from s to d, in seconds.
	Delay func(s, d int) float64
	// Silent nodes are no longer scraped (their series go stale); Stopped agents remove their
	// file (the same, but the node still answers); Frozen agents crashed and left their file.
	Silent, Stopped, Frozen map[int]bool
	// Maintenance nodes are cordoned in every agent's nodes list, from the start; each agent
	// reports those among itself and the nodes it probes (nodeping_node_maintenance).
	Maintenance map[int]bool
	// Jittery nodes answer a third of their cycles 5-30ms late, with no fault (no alert due).
	Jittery map[int]bool

	// PortLoss is the share of the port probes (protocol "tcp" or "udp") from s to d lost.
	PortLoss func(protocol string, s, d int) float64
	// DNSFail is the share of node s's look-ups that time out.
	DNSFail func(s int) float64
	// DNSSlow multiplies the time node s's look-ups take to be answered (0 means 1).
	DNSSlow func(s int) float64
	// ExternalLoss is the share of node s's echoes to external target t lost.
	ExternalLoss func(s, t int) float64
	// NoFiles: node-exporter no longer reads the agents' files (another directory, or none):
	// every nodeping series ends, node-exporter's own go on; NoDir: the directory it reads does
	// not exist (node_textfile_scrape_error 1).
	NoFiles, NoDir bool
}

// Probes are the agent's probes besides ICMP that a case's agents run and write; each costs
// promtool its series, so a class turns on those it needs.
type Probes struct {
	MTU bool // full-size echoes to every peer, one a cycle
	// TCP and UDP probe every peer's port: 1 handshake and 5 echoes a cycle (the DaemonSet's
	// --tcp-count and --udp-count).
	TCP, UDP bool
	DNS      bool // one name at the cluster resolver, every cycle
	External int  // external targets every agent probes, 10 echoes a cycle each
	// Files adds node-exporter's own series (what NodePingNoData counts) and the time each
	// agent last wrote its file (what NodePingTextfileStale reads).
	Files bool
}

// Case is one run: a cluster, a fault and the alerts that name it.
type Case struct {
	ID      int
	Class   string
	Clean   bool // a clean fault: the 60s time-to-alert goal applies
	Gray    bool // a gray (1-3%) loss fault: the 120s goal applies
	Latency bool // a slow node or zone link: the 90s goal applies
	Detail  string
	Cluster Cluster
	Seed    uint64
	// Background is the cluster's background loss; each pair gets 0.5-1.5 times it.
	Background float64
	Probes
	// FromStart faults are there from the first sample (nodeping or Prometheus started on a
	// broken cluster): no healthy history, no baseline.
	FromStart bool
	// Scrape is the seconds between Prometheus's scrapes and its rule evaluations: StepSeconds
	// (0 means that) or a multiple of it (30: kube-prometheus-stack's defaults). The agents still
	// cycle every StepSeconds; a scrape sees the counters of every cycle since the last one.
	Scrape int
	// Steps is the length of the run (0 means the package's Steps): classes whose rules judge
	// 5-minute windows get a longer fault.
	Steps int
	Effects
	Want []Alert
}

// Fault is the step the fault starts at: FaultStep, or 0 for a fault from the start.
func (cs Case) Fault() int {
	if cs.FromStart {
		return 0
	}
	return FaultStep
}

// RunSteps is Steps with its default.
func (cs Case) RunSteps() int {
	if cs.Steps <= 0 {
		return Steps
	}
	return cs.Steps
}

// ScrapeSeconds is Scrape with its default.
func (cs Case) ScrapeSeconds() int {
	if cs.Scrape <= 0 {
		return StepSeconds
	}
	return cs.Scrape
}

// FaultSeconds is Fault in seconds from the start of the run.
func (cs Case) FaultSeconds() float64 { return float64(cs.Fault() * StepSeconds) }

// Class is a fault class: Make builds a case on a cluster, or returns false when the cluster
// cannot hold it (e.g. zone faults on a cluster without zones).
type Class struct {
	Name     string
	Clean    bool
	Gray     bool
	Latency  bool
	Silence  bool // no alert is due
	MinZones int
	Make     func(r *rand.Rand, c Cluster, cs *Case) bool
}

func nodeAlert(name string, c Cluster, i int) Alert {
	return Alert{Name: name, Labels: map[string]string{"node": c.Nodes[i].Name}}
}

func zoneLink(name, a, b string) Alert {
	return Alert{Name: name, Labels: map[string]string{"source_zone": a, "destination_zone": b}}
}

// observedNode picks a node that some node probes.
func observedNode(r *rand.Rand, c Cluster, except ...int) int {
	for {
		i := r.IntN(len(c.Nodes))
		ok := c.Observed(i)
		for _, e := range except {
			ok = ok && i != e
		}
		if ok {
			return i
		}
	}
}

func twoZones(r *rand.Rand, c Cluster) (string, string) {
	zs := c.Zones()
	i := r.IntN(len(zs))
	j := (i + 1 + r.IntN(len(zs)-1)) % len(zs)
	return zs[i], zs[j]
}

func zoneOf(c Cluster, i int) string { return c.Nodes[i].Zone }

// oneWayEach is the share of an echo round trip lost when a node drops p of the packets it
// receives and p of those it sends.
func oneWayEach(p float64) float64 { return 1 - (1-p)*(1-p) }

// nodeLossy makes the cases in which an observed node drops a share of the packets it receives
// and of those it sends, the share drawn from ps.
func nodeLossy(ps ...float64) func(r *rand.Rand, c Cluster, cs *Case) bool {
	return func(r *rand.Rand, c Cluster, cs *Case) bool {
		x := observedNode(r, c)
		p := ps[r.IntN(len(ps))]
		cs.MTU = true // a lossy node loses full-size echoes too: no MTU alert for that
		cs.Loss = func(s, d int) float64 { return b2f(s == x || d == x) * oneWayEach(p) }
		cs.Want = []Alert{nodeAlert("NodePingNodeUnreachable", c, x)}
		cs.Detail = fmt.Sprintf("%s %.0f%% each way", c.Nodes[x].Name, 100*p)
		return true
	}
}

// Classes are the fault classes of issue 12, an agent that stops (issue 14), and the faults the
// other probes' rules name (ports, DNS, external targets, node-exporter not reading the files).
func Classes() []Class {
	return []Class{
		{Name: "healthy", Silence: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			cs.Probes = Probes{MTU: true, TCP: true, UDP: true, DNS: true, External: 3, Files: true}
			if r.IntN(2) == 0 {
				cs.Jittery = map[int]bool{r.IntN(len(c.Nodes)): true}
				cs.Detail = "one jittery node"
			}
			return true
		}},
		{Name: "cordoned-blackhole", Silence: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			cs.Loss = func(s, d int) float64 { return b2f(s == x || d == x) }
			cs.Silent = map[int]bool{x: true}
			cs.Maintenance = map[int]bool{x: true}
			cs.Detail = c.Nodes[x].Name
			return true
		}},
		{Name: "node-blackhole", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			cs.Loss = func(s, d int) float64 { return b2f(s == x || d == x) }
			cs.Silent = map[int]bool{x: true}
			cs.Want = []Alert{nodeAlert("NodePingNodeUnreachable", c, x)}
			cs.Detail = c.Nodes[x].Name
			return true
		}},
		{Name: "node-gray-1-3pct", Gray: true, Make: nodeLossy(0.01, 0.02, 0.03)},
		{Name: "node-lossy-5-30pct", Clean: true, Make: nodeLossy(0.05, 0.1, 0.2, 0.3)},
		{Name: "node-own-echoes-dropped", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			if len(c.Plan[x]) == 0 {
				return false
			}
			cs.Loss = func(s, d int) float64 { return b2f(s == x) }
			cs.Want = []Alert{nodeAlert("NodePingNodeIsolated", c, x)}
			cs.Detail = c.Nodes[x].Name
			return true
		}},
		{Name: "zone-link-down", Clean: true, MinZones: 2, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			a, b := twoZones(r, c)
			cs.Loss = func(s, d int) float64 {
				return b2f(zoneOf(c, s) == a && zoneOf(c, d) == b || zoneOf(c, s) == b && zoneOf(c, d) == a)
			}
			cs.Want = []Alert{zoneLink("NodePingZoneLinkDegraded", a, b), zoneLink("NodePingZoneLinkDegraded", b, a)}
			cs.Detail = a + "<->" + b
			return true
		}},
		{Name: "zone-link-lossy", Clean: true, MinZones: 2, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			a, b := twoZones(r, c)
			p := []float64{0.05, 0.1, 0.3}[r.IntN(3)]
			cs.Loss = func(s, d int) float64 {
				return p * b2f(zoneOf(c, s) == a && zoneOf(c, d) == b || zoneOf(c, s) == b && zoneOf(c, d) == a)
			}
			cs.Want = []Alert{zoneLink("NodePingZoneLinkDegraded", a, b), zoneLink("NodePingZoneLinkDegraded", b, a)}
			cs.Detail = fmt.Sprintf("%s<->%s %.0f%%", a, b, 100*p)
			return true
		}},
		{Name: "zone-partition", Clean: true, MinZones: 3, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			zs := c.Zones()
			z := zs[r.IntN(len(zs))]
			cs.Loss = func(s, d int) float64 { return b2f((zoneOf(c, s) == z) != (zoneOf(c, d) == z)) }
			cs.Want = []Alert{{Name: "NodePingZoneIsolated", Labels: map[string]string{"zone": z}}}
			cs.Detail = z
			return true
		}},
		{Name: "pair-lossy-one-way", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			s0 := r.IntN(len(c.Nodes))
			if len(c.Plan[s0]) == 0 {
				return false
			}
			d0 := c.Plan[s0][r.IntN(len(c.Plan[s0]))]
			p := []float64{0.2, 0.5, 1}[r.IntN(3)]
			cs.Loss = func(s, d int) float64 { return p * b2f(s == s0 && d == d0) }
			cs.Want = []Alert{{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": c.Nodes[s0].Name, "destination_node": c.Nodes[d0].Name}}}
			cs.Detail = fmt.Sprintf("%s->%s %.0f%%", c.Nodes[s0].Name, c.Nodes[d0].Name, 100*p)
			return true
		}},
		{Name: "pair-lossy-both-ways", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			// A pair both ends of which probe each other.
			var pairs [][2]int
			for s, ds := range c.Plan {
				for _, d := range ds {
					if s < d && slices.Contains(c.Plan[d], s) {
						pairs = append(pairs, [2]int{s, d})
					}
				}
			}
			if len(pairs) == 0 {
				return false
			}
			pr := pairs[r.IntN(len(pairs))]
			p := []float64{0.2, 0.5, 1}[r.IntN(3)]
			cs.Loss = func(s, d int) float64 { return p * b2f(s == pr[0] && d == pr[1] || s == pr[1] && d == pr[0]) }
			a, b := c.Nodes[pr[0]].Name, c.Nodes[pr[1]].Name
			cs.Want = []Alert{
				{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": a, "destination_node": b}},
				{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": b, "destination_node": a}},
			}
			cs.Detail = fmt.Sprintf("%s<->%s %.0f%%", a, b, 100*p)
			return true
		}},
		{Name: "mtu-blackhole", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			cs.MTU = true
			cs.MTULoss = func(s, d int) float64 { return b2f(s == x || d == x) }
			cs.Want = []Alert{nodeAlert("NodePingMTUBlackhole", c, x)}
			cs.Detail = c.Nodes[x].Name
			return true
		}},
		{Name: "two-node-faults", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			y := observedNode(r, c, x)
			p := []float64{0.1, 0.3, 1}[r.IntN(3)]
			cs.Loss = func(s, d int) float64 {
				switch {
				case s == x || d == x:
					return 1
				case s == y || d == y:
					return oneWayEach(p)
				}
				return 0
			}
			cs.Silent = map[int]bool{x: true}
			cs.Want = []Alert{nodeAlert("NodePingNodeUnreachable", c, x), nodeAlert("NodePingNodeUnreachable", c, y)}
			cs.Detail = fmt.Sprintf("%s blackholed, %s %.0f%% each way", c.Nodes[x].Name, c.Nodes[y].Name, 100*p)
			return true
		}},
		{Name: "node-latency", Latency: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			ms := []float64{2, 5, 10, 20}[r.IntN(4)]
			cs.Delay = func(s, d int) float64 { return b2f(s == x || d == x) * ms / 1000 }
			cs.Want = []Alert{nodeAlert("NodePingHighLatency", c, x)}
			cs.Detail = fmt.Sprintf("%s +%.0fms", c.Nodes[x].Name, ms)
			return true
		}},
		{Name: "zone-link-latency", Latency: true, MinZones: 2, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			a, b := twoZones(r, c)
			ms := []float64{2, 5, 10, 20}[r.IntN(4)]
			cs.Delay = func(s, d int) float64 {
				return ms / 1000 * b2f(zoneOf(c, s) == a && zoneOf(c, d) == b || zoneOf(c, s) == b && zoneOf(c, d) == a)
			}
			cs.Want = []Alert{zoneLink("NodePingZoneLinkLatency", a, b), zoneLink("NodePingZoneLinkLatency", b, a)}
			cs.Detail = fmt.Sprintf("%s<->%s +%.0fms", a, b, ms)
			return true
		}},
		{Name: "node-blackhole-from-start", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			cs.FromStart = true
			cs.Loss = func(s, d int) float64 { return b2f(s == x || d == x) }
			cs.Silent = map[int]bool{x: true}
			cs.Want = []Alert{nodeAlert("NodePingNodeUnreachable", c, x)}
			cs.Detail = c.Nodes[x].Name + " from the start"
			return true
		}},
		{Name: "node-lossy-50pct-from-start", Clean: true, Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			p := []float64{0.5, 0.7, 0.9}[r.IntN(3)]
			cs.FromStart = true
			cs.Loss = func(s, d int) float64 { return b2f(s == x || d == x) * p }
			cs.Want = []Alert{nodeAlert("NodePingNodeUnreachable", c, x)}
			cs.Detail = fmt.Sprintf("%s %.0f%% of its echoes from the start", c.Nodes[x].Name, 100*p)
			return true
		}},
		{Name: "agent-missing", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := observedNode(r, c)
			if r.IntN(2) == 0 {
				cs.Stopped = map[int]bool{x: true}
				cs.Detail = c.Nodes[x].Name + " stopped"
			} else {
				cs.Frozen = map[int]bool{x: true}
				cs.Detail = c.Nodes[x].Name + " crashed"
			}
			// The agent is its node's TCP and UDP responder too: its ports go with it, and only
			// NodePingAgentMissing may name it.
			cs.TCP, cs.UDP = true, true
			cs.Want = []Alert{nodeAlert("NodePingAgentMissing", c, x)}
			return true
		}},
		{Name: "tcp-responder-dead", Make: portDead("tcp", "NodePingTCPUnreachable")},
		{Name: "udp-only-filter", Make: portDead("udp", "NodePingUDPUnreachable")},
		{Name: "dns-node-failing", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := r.IntN(len(c.Nodes))
			cs.DNS, cs.Steps = true, dnsSteps
			cs.DNSFail = func(s int) float64 { return b2f(s == x) }
			cs.Want = []Alert{nodeAlert("NodePingNodeDNSFailing", c, x)}
			cs.Detail = c.Nodes[x].Name + "'s look-ups time out"
			return true
		}},
		{Name: "dns-all-failing", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			cs.DNS, cs.Steps = true, dnsSteps
			cs.DNSFail = func(int) float64 { return 1 }
			cs.Want = []Alert{{Name: "NodePingDNSFailing"}}
			cs.Detail = "every look-up times out"
			return true
		}},
		{Name: "dns-node-slow", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			x := r.IntN(len(c.Nodes))
			cs.DNS, cs.Steps = true, dnsSteps
			cs.DNSSlow = func(s int) float64 { return 1 + 9*b2f(s == x) }
			cs.Want = []Alert{nodeAlert("NodePingNodeDNSSlow", c, x)}
			cs.Detail = c.Nodes[x].Name + "'s answers 10x slower"
			return true
		}},
		{Name: "external-target-down", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			cs.External = 3
			t := r.IntN(cs.External)
			cs.ExternalLoss = func(_, u int) float64 { return b2f(u == t) }
			cs.Want = []Alert{{Name: "NodePingExternalTargetUnreachable", Labels: map[string]string{"destination_name": externalTargets[t].name}}}
			cs.Detail = externalTargets[t].name + " lost by all"
			return true
		}},
		{Name: "external-one-node", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			cs.External = 3
			x, t := r.IntN(len(c.Nodes)), r.IntN(cs.External)
			cs.ExternalLoss = func(s, u int) float64 { return b2f(s == x && u == t) }
			cs.Want = []Alert{nodeAlert("NodePingNodeExternalTargetUnreachable", c, x)}
			cs.Detail = fmt.Sprintf("%s loses %s", c.Nodes[x].Name, externalTargets[t].name)
			return true
		}},
		{Name: "textfile-dir-missing", Make: func(r *rand.Rand, c Cluster, cs *Case) bool {
			cs.Files, cs.NoFiles = true, true
			cs.FromStart = r.IntN(2) == 0
			cs.NoDir = r.IntN(2) == 0
			cs.Want = []Alert{{Name: "NodePingNoData"}}
			cs.Detail = map[bool]string{true: "a directory that does not exist", false: "a directory the agents do not write"}[cs.NoDir]
			if cs.FromStart {
				cs.Detail += ", from the start"
			}
			return true
		}},
	}
}

// dnsSteps is the run of the DNS classes: their rules judge 5-minute windows and wait up to 2
// minutes more, so the fault lasts 7 minutes.
const dnsSteps = FaultStep + 28

// portDead makes the cases in which an observed node's port probe of protocol is lost by every
// source while its echoes pass (its responder dead, or the port filtered); the cases run both
// port probes, so the other must stay silent.
func portDead(protocol, alert string) func(r *rand.Rand, c Cluster, cs *Case) bool {
	return func(r *rand.Rand, c Cluster, cs *Case) bool {
		x := observedNode(r, c)
		cs.TCP, cs.UDP = true, true
		cs.PortLoss = func(p string, s, d int) float64 { return b2f(p == protocol && d == x) }
		cs.Want = []Alert{nodeAlert(alert, c, x)}
		cs.Detail = fmt.Sprintf("%s's %s port", c.Nodes[x].Name, protocol)
		return true
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Clusters are the shapes a campaign draws from: 12 and 38 nodes in 3 zones with some nodes
// without a zone (full mesh), and 60 nodes in 5 zones probing a ring subset of K=8 (issue 10).
func Clusters() []Cluster {
	return []Cluster{
		FullMesh("12n-3z", NewNodes(12, 3, 2)),
		FullMesh("38n-3z", NewNodes(38, 3, 4)),
		RingSubset("60n-5z-k8", NewNodes(60, 5, 0), 8),
	}
}

// pick draws a cluster: the first (small) shape most of the time, since promtool's cost grows
// with the number of pairs; each other shape gets a seventh of the cases when there are three.
func pick(r *rand.Rand, clusters []Cluster) Cluster {
	if len(clusters) == 1 || r.Float64() < 0.7 {
		return clusters[0]
	}
	return clusters[1+r.IntN(len(clusters)-1)]
}

// Generate draws n cases from seed: classes round robin (so every class gets its share), a
// cluster, a background loss of 0.1-0.5% and the fault's parameters at random.
func Generate(seed uint64, n int, clusters []Cluster, classes []Class) []Case {
	r := rand.New(rand.NewPCG(seed, 0x6e6f646570696e67))
	var out []Case
	for i := 0; len(out) < n && i < 100*n; i++ {
		cl := classes[len(out)%len(classes)]
		c := pick(r, clusters)
		if len(c.Zones()) < cl.MinZones {
			continue
		}
		cs := Case{ID: len(out) + 1, Class: cl.Name, Clean: cl.Clean, Gray: cl.Gray, Latency: cl.Latency, Cluster: c, Seed: r.Uint64(),
			Background: 0.001 + 0.004*r.Float64()}
		if !cl.Make(r, c, &cs) {
			continue
		}
		out = append(out, cs)
	}
	return out
}
