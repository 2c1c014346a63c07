// Package results turns probe statistics into Prometheus metrics. It owns every metric name and
// HELP text the agent writes (see Families); docs/metrics.md is the reference for users, and a
// test keeps the two in step.
//
// Output is rendered straight to the text exposition format from pre-rendered label sets, the way
// kube-state-metrics does: a 1,000-node cluster gives each agent some 6,000 series per cycle, and
// building client_golang metric objects for each would cost more CPU and memory than the probing.
package results

import (
	"bufio"
	"io"
	"net/netip"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	// Maintenance maps the listed nodes that are cordoned or not Ready to the reason
	// ("cordoned", "not_ready"); rules raise no network alert for them.
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
	// ResolveErrors counts failed look-ups of external targets' host names.
	ResolveErrors uint64
	// WriteErrors counts failed textfile writes.
	WriteErrors uint64
	// ICMPModes maps an address family ("ipv4", "ipv6") to its socket mode ("raw", "dgram").
	ICMPModes map[string]string
	// ICMP holds the engine's running totals.
	ICMP probe.ICMPCounters
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

// ResponderStats counts what one of the agent's responders answered and dropped (by reason).
type ResponderStats struct {
	Protocol string
	Answered uint64
	Dropped  map[string]uint64
}

// rttBuckets are the RTT histogram's upper bounds in seconds: 50µs doubling to about 0.8s, so
// that sub-millisecond links inside a zone are resolved as well as slow cross-region ones.
var rttBuckets = []float64{
	0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
	0.1024, 0.2048, 0.4096, 0.8192,
}

type pairState struct {
	pair           Pair
	labels         string // rendered, with braces
	flantLabels    string // the same pair in Flant node-ping's labels
	sent, received uint64
	rttSum         float64
	lastReceived   int
	lastMin        float64
	lastMax        float64
	lastStddev     float64
	seen           bool // observed in the current cycle
}

type failureKey struct{ protocol, reason string }

type dnsKey struct{ resolver, name, rcode string }

// dnsBuckets are the DNS duration histogram's upper bounds in seconds: 0.5ms doubling to about 4s.
var dnsBuckets = []float64{0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096}

type histKey struct {
	zone, family, protocol string
}

type histState struct {
	labels  string   // rendered, without the closing brace, for le to follow
	count   uint64   // observations
	sum     float64  // seconds
	buckets []uint64 // non-cumulative counts per bucket; the last is +Inf
}

// Results accumulates probe statistics across cycles and renders them. It is safe for concurrent
// use.
type Results struct {
	build  BuildInfo
	compat string

	mu         sync.Mutex
	src        Source
	pairs      map[Pair]*pairState
	sorted     []*pairState // pairs in output order; nil when it must be rebuilt
	hists      map[histKey]*histState
	cycles     uint64
	overruns   uint64
	cycleDur   time.Duration
	state      AgentState
	sendErrors map[histKey]uint64
	failures   map[failureKey]uint64
	dnsCounts  map[dnsKey]uint64
	dnsHists   map[string]*histState // by resolver
	writeTime  time.Time
	buf        []byte
	// rttDetail adds the per-cycle RTT min/max/stddev gauges of every pair and the RTT histogram
	// of every protocol; without it there are no gauges and only ICMP has a histogram.
	rttDetail bool
}

// CompatFlant adds Flant node-ping's series (kube_node_ping_*, external_ping_*) to the output.
const CompatFlant = "flant"

// New returns empty results for the agent on src. compat is "" or CompatFlant.
func New(src Source, build BuildInfo, compat string) *Results {
	return &Results{
		src: src, build: build, compat: compat,
		pairs: map[Pair]*pairState{}, hists: map[histKey]*histState{}, sendErrors: map[histKey]uint64{}, failures: map[failureKey]uint64{}, dnsCounts: map[dnsKey]uint64{}, dnsHists: map[string]*histState{},
	}
}

// SetRTTDetail turns on the detailed RTT series (--rtt-detail): the per-cycle min/max/stddev
// gauges of every pair and protocol, and the RTT histogram of every protocol, not only ICMP's.
// They are off by default because no shipped rule or dashboard panel reads them and they more than
// double an agent's series (docs/scale.md). Call it before the first cycle.
func (r *Results) SetRTTDetail(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rttDetail = on
}

// SetSource changes the source labels (the node's zone can arrive with a later nodes list). The
// series of the old source are dropped.
func (r *Results) SetSource(src Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if src == r.src {
		return
	}
	r.src = src
	clear(r.pairs)
	clear(r.hists)
	r.sorted = nil
}

// BeginCycle starts a cycle: pairs not observed before EndCycle are dropped from the output.
func (r *Results) BeginCycle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.seen = false
	}
}

// KeepProtocol keeps this cycle the pairs of a probe that did not run (it runs every Nth cycle).
func (r *Results) KeepProtocol(protocol string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pairs {
		if k.Protocol == protocol {
			p.seen = true
		}
	}
}

// Observe adds one cycle's sample of a pair; every probe's results arrive through it.
func (r *Results) Observe(sm Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sm.Pair.Kind == KindDNS {
		r.observeDNS(sm)
		return
	}
	p, st := sm.Pair, sm.Stats
	ps, ok := r.pairs[p]
	if !ok {
		ps = &pairState{pair: p, labels: r.pairLabels(p), flantLabels: flantLabels(p)}
		r.pairs[p] = ps
		r.sorted = nil
	}
	ps.seen = true
	ps.sent += uint64(st.Sent)
	ps.received += uint64(st.Received)
	sum, mn, mx, sd := probe.RTTSummary(st.RTTs)
	ps.rttSum += sum.Seconds()
	ps.lastReceived = st.Received
	ps.lastMin, ps.lastMax, ps.lastStddev = mn.Seconds(), mx.Seconds(), sd.Seconds()

	fam := family(p.IP)
	if st.SendErrors > 0 {
		r.sendErrors[histKey{family: fam, protocol: p.Protocol}] += uint64(st.SendErrors)
	}
	for reason, n := range st.Failures {
		r.failures[failureKey{p.Protocol, reason}] += uint64(n)
	}
	if p.Kind != KindNode || len(st.RTTs) == 0 || !r.rttDetail && p.Protocol != "icmp" {
		return
	}
	hk := histKey{zone: p.Zone, family: fam, protocol: p.Protocol}
	h, ok := r.hists[hk]
	if !ok {
		h = &histState{labels: famRTT.open(r.src.Node, r.src.Zone, p.Zone, fam, p.Protocol), buckets: make([]uint64, len(rttBuckets)+1)}
		r.hists[hk] = h
	}
	for _, d := range st.RTTs {
		h.observe(rttBuckets, d.Seconds())
	}
}

// observeDNS counts one query by its code, and its time to an answer (any code) by resolver.
func (r *Results) observeDNS(sm Sample) {
	resolver, name := sm.Pair.Host, sm.Pair.Name
	r.dnsCounts[dnsKey{resolver, name, sm.Code}]++
	if sm.Stats.Received == 0 {
		return
	}
	h, ok := r.dnsHists[resolver]
	if !ok {
		h = &histState{labels: famDNSDuration.open(r.src.Node, resolver), buckets: make([]uint64, len(dnsBuckets)+1)}
		r.dnsHists[resolver] = h
	}
	for _, d := range sm.Stats.RTTs {
		h.observe(dnsBuckets, d.Seconds())
	}
}

func (h *histState) observe(bounds []float64, v float64) {
	h.count++
	h.sum += v
	h.buckets[sort.SearchFloat64s(bounds, v)]++
}

// renderHist writes one histogram series: cumulative buckets, +Inf, sum and count.
func renderHist(e *encoder, name string, h *histState, bounds []float64) {
	var cum uint64
	for i, ub := range bounds {
		cum += h.buckets[i]
		e.sample(name, "_bucket", h.labels+`,le="`+strconv.FormatFloat(ub, 'g', -1, 64)+`"}`, float64(cum))
	}
	e.sample(name, "_bucket", h.labels+`,le="+Inf"}`, float64(h.count))
	e.sample(name, "_sum", h.labels+"}", h.sum)
	e.sample(name, "_count", h.labels+"}", float64(h.count))
}

// EndCycle drops pairs that were not observed in this cycle and records the cycle's duration.
func (r *Results) EndCycle(d time.Duration, overrun bool, st AgentState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pairs {
		if !p.seen {
			delete(r.pairs, k)
			r.sorted = nil
		}
	}
	r.cycles++
	if overrun {
		r.overruns++
	}
	r.cycleDur = d
	r.state = st
}

// SetAgentState updates the agent's self-metrics outside a cycle (a failed list load, say).
func (r *Results) SetAgentState(st AgentState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = st
}

// SetWriteTime sets nodeping_last_write_timestamp_seconds for the next render.
func (r *Results) SetWriteTime(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeTime = t
}

// The label names of the families whose label sets are rendered once per pair or key and kept;
// each is declared here once, and the families carry the same slices.
var (
	nodePairLabelNames  = []string{"source_node", "source_zone", "destination_node", "destination_zone", "destination_ip", "ip_family", "protocol"}
	extPairLabelNames   = []string{"source_node", "source_zone", "destination_name", "destination_host", "destination_ip", "ip_family", "protocol"}
	flantNodeLabelNames = []string{"destination_node", "destination_node_ip_address"}
	flantExtLabelNames  = []string{"destination_name", "destination_host"}
)

func (r *Results) pairLabels(p Pair) string {
	if p.Kind == KindExternal {
		return renderLabels(extPairLabelNames, []string{r.src.Node, r.src.Zone, p.Name, p.Host, p.IP.String(), family(p.IP), p.Protocol}, true)
	}
	return renderLabels(nodePairLabelNames, []string{r.src.Node, r.src.Zone, p.Name, p.Zone, p.IP.String(), family(p.IP), p.Protocol}, true)
}

func flantLabels(p Pair) string {
	if p.Kind == KindExternal {
		return renderLabels(flantExtLabelNames, []string{p.Name, p.Host}, true)
	}
	return renderLabels(flantNodeLabelNames, []string{p.Name, p.IP.String()}, true)
}

func family(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "ipv6"
	}
	return "ipv4"
}

// labels renders a label set of the family from its values, given in the order of f.Labels.
func (f *Family) labels(values ...string) string { return renderLabels(f.Labels, values, true) }

// open renders a histogram's label set of the family without the closing brace, for le to follow.
func (f *Family) open(values ...string) string { return renderLabels(f.Labels, values, false) }

// renderLabels renders {a="x",b="y"} with values escaped as the text format requires; without
// the closing brace when closed is false.
func renderLabels(names, values []string, closed bool) string {
	if len(names) != len(values) {
		panic("results: " + strconv.Itoa(len(values)) + " label values for " + strings.Join(names, ","))
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(values[i]))
		b.WriteByte('"')
	}
	if closed {
		b.WriteByte('}')
	}
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// WriteText renders every metric in the text exposition format (0.0.4), families in name order,
// without timestamps (node-exporter's textfile collector rejects them).
func (r *Results) WriteText(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sorted == nil {
		r.sorted = make([]*pairState, 0, len(r.pairs))
		for _, p := range r.pairs {
			r.sorted = append(r.sorted, p)
		}
		sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i].labels < r.sorted[j].labels })
	}
	e := &encoder{w: bufio.NewWriterSize(w, 32<<10), b: r.buf[:0]}
	for _, f := range families {
		if f.Compat != "" && f.Compat != r.compat {
			continue
		}
		f.renderTo(r, e)
	}
	r.buf = e.b
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// encoder writes exposition text a line at a time through a reused line buffer.
type encoder struct {
	w      *bufio.Writer
	b      []byte  // the line being built
	err    error   // the first write error
	family *Family // whose header is pending until its first sample
}

func (e *encoder) flushLine() {
	if e.err == nil {
		_, e.err = e.w.Write(e.b)
	}
	e.b = e.b[:0]
}

func (e *encoder) start(f *Family) { e.family = f }

func (e *encoder) header() {
	if e.family == nil {
		return
	}
	f := e.family
	e.family = nil
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, f.Name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, helpEscaper.Replace(f.Help)...)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, f.Name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, f.Type...)
	e.b = append(e.b, '\n')
	e.flushLine()
}

func (e *encoder) sample(name, suffix, labels string, v float64) {
	e.header()
	e.b = append(e.b, name...)
	e.b = append(e.b, suffix...)
	e.b = append(e.b, labels...)
	e.b = append(e.b, ' ')
	e.b = strconv.AppendFloat(e.b, v, 'g', -1, 64)
	e.b = append(e.b, '\n')
	e.flushLine()
}

// Family is one metric family the agent writes.
type Family struct {
	Name, Type, Help string
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
func pairFamily(name, typ, help string, kind Kind, gaugeOnly bool, v func(p *pairState) float64) *Family {
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

// single renders one unlabelled sample.
// planGauge renders one figure of the probe plan, once a list is in use.
func planGauge(name, help string, v func(p PlanState) int) *Family {
	return &Family{Name: name, Type: "gauge", Help: help, render: func(f *Family, r *Results, e *encoder) {
		if r.state.Plan.Mode != "" {
			e.sample(f.Name, "", "", float64(v(r.state.Plan)))
		}
	}}
}

func single(name, typ, help string, v func(r *Results) float64) *Family {
	return &Family{Name: name, Type: typ, Help: help, render: func(f *Family, r *Results, e *encoder) {
		e.sample(f.Name, "", "", v(r))
	}}
}

func pairFamilies(prefix, what string, kind Kind) []*Family {
	return []*Family{
		pairFamily(prefix+"packets_received_total", "counter", "Probe packets answered by "+what+" within the timeout.", kind, false,
			func(p *pairState) float64 { return float64(p.received) }),
		pairFamily(prefix+"packets_sent_total", "counter", "Probe packets sent to "+what+" whose outcome is known (answered, timed out, or failed to send); packets in flight are not counted.", kind, false,
			func(p *pairState) float64 { return float64(p.sent) }),
		pairFamily(prefix+"rtt_max_seconds", "gauge", "Largest round-trip time to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastMax }),
		pairFamily(prefix+"rtt_min_seconds", "gauge", "Smallest round-trip time to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastMin }),
		pairFamily(prefix+"rtt_seconds_total", "counter", "Sum of the round-trip times of the answered probe packets to "+what+".", kind, false,
			func(p *pairState) float64 { return p.rttSum }),
		pairFamily(prefix+"rtt_stddev_seconds", "gauge", "Population standard deviation of the round-trip times to "+what+" in the last cycle; absent when nothing was answered (only with --rtt-detail).", kind, true,
			func(p *pairState) float64 { return p.lastStddev }),
	}
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// flantFamilies are Flant node-ping's series, with its names, labels, HELP texts and units
// (milliseconds; per-cycle gauges are 0 when nothing came back), so that its dashboards and its
// NodePingPacketLoss alert keep working. Their source is the ICMP probe only (they are "ICMP
// packets" to Flant's users, never TCP or MTU counters), over IPv4 only: Flant had one series
// per node, and its labels for an external target cannot tell two addresses apart.
func flantFamilies(prefix string, kind Kind) []*Family {
	labels := flantNodeLabelNames
	if kind == KindExternal {
		labels = flantExtLabelNames
	}
	fam := func(name, typ, help string, v func(p *pairState) float64) *Family {
		return &Family{Name: prefix + name, Type: typ, Help: help, Labels: labels, Compat: CompatFlant,
			render: func(f *Family, r *Results, e *encoder) {
				last := ""
				for _, p := range r.sorted {
					if p.pair.Kind != kind || !flantSource(p.pair) || p.pair.Name == last {
						continue
					}
					last = p.pair.Name // one series per node or target, as Flant had
					e.sample(f.Name, "", p.flantLabels, v(p))
				}
			}}
	}
	ms := func(s float64) float64 { return s * 1000 }
	return []*Family{
		fam("packets_received_total", "counter", "ICMP packets received", func(p *pairState) float64 { return float64(p.received) }),
		fam("packets_sent_total", "counter", "ICMP packets sent", func(p *pairState) float64 { return float64(p.sent) }),
		fam("rtt_max", "gauge", "maximum round-trip time", func(p *pairState) float64 { return ms(p.lastMax) }),
		fam("rtt_mdev", "gauge", "mean deviation of round-trip times", func(p *pairState) float64 { return ms(p.lastStddev) }),
		fam("rtt_milliseconds_total", "counter", "round-trip time", func(p *pairState) float64 { return ms(p.rttSum) }),
		fam("rtt_min", "gauge", "minimum round-trip time", func(p *pairState) float64 { return ms(p.lastMin) }),
	}
}

// flantSource tells the pairs Flant's series are taken from: ICMP over IPv4.
func flantSource(p Pair) bool { return p.Protocol == "icmp" && family(p.IP) == "ipv4" }

// The families that render label sets outside their render function.
var (
	famRTT = &Family{Name: "nodeping_rtt_seconds", Type: "histogram", Help: "Round-trip times of answered probe packets, per destination zone; ICMP only unless --rtt-detail.",
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
	famDNSDuration = &Family{Name: "nodeping_dns_request_duration_seconds", Type: "histogram", Help: "Time to an answer from each resolver (any response code), for the DNS probe.",
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

// perProbe renders one value of every probe the agent ran.
func perProbe(name, typ, help string, v func(p ProbeStats) float64) *Family {
	return &Family{Name: name, Type: typ, Help: help, Labels: []string{"protocol"},
		render: func(f *Family, r *Results, e *encoder) {
			for _, p := range r.state.Probes {
				e.sample(f.Name, "", f.labels(p.Protocol), v(p))
			}
		}}
}

// families is the fixed table of what the agent writes, sorted by name.
var families = func() []*Family {
	fs := []*Family{
		{Name: "nodeping_build_info", Type: "gauge", Help: "The agent's version, revision and Go version; always 1.", Labels: []string{"goversion", "revision", "version"},
			render: func(f *Family, r *Results, e *encoder) {
				e.sample(f.Name, "", f.labels(runtime.Version(), r.build.Revision, r.build.Version), 1)
			}},
		single("nodeping_cycle_duration_seconds", "gauge", "How long the last probe cycle took, from its start to its last result.",
			func(r *Results) float64 { return r.cycleDur.Seconds() }),
		single("nodeping_cycle_overruns_total", "counter", "Probe cycles that took longer than the interval, so that the next one started late.",
			func(r *Results) float64 { return float64(r.overruns) }),
		single("nodeping_cycles_total", "counter", "Probe cycles completed.",
			func(r *Results) float64 { return float64(r.cycles) }),
		famDNSDuration,
		{Name: "nodeping_dns_responses_total", Type: "counter", Help: "DNS probe queries by resolver, name and response code (NOERROR, NXDOMAIN, SERVFAIL, ...; timeout or error when none came).", Labels: []string{"source_node", "resolver", "name", "rcode"},
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
		{Name: "nodeping_icmp_socket_info", Type: "gauge", Help: "How the ICMP socket of each address family is opened: raw (CAP_NET_RAW) or dgram (unprivileged ping socket); always 1.", Labels: []string{"ip_family", "mode"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, fam := range []string{"ipv4", "ipv6"} {
					if m, ok := r.state.ICMPModes[fam]; ok {
						e.sample(f.Name, "", f.labels(fam, m), 1)
					}
				}
			}},
		single("nodeping_inflight_table_full_total", "counter", "Echoes not sent because 65536 were already in flight.",
			func(r *Results) float64 { return float64(r.state.ICMP.TableFull) }),
		single("nodeping_last_write_timestamp_seconds", "gauge", "When this file was written, in seconds since the Unix epoch.",
			func(r *Results) float64 { return unixSeconds(r.writeTime) }),
		single("nodeping_late_replies_total", "counter", "Echo replies that matched no echo in flight: after their deadline, duplicated, or from another address.",
			func(r *Results) float64 { return float64(r.state.ICMP.Late) }),
		single("nodeping_nodes_list_last_load_timestamp_seconds", "gauge", "When the nodes list in use was read, in seconds since the Unix epoch; 0 when none has been.",
			func(r *Results) float64 { return unixSeconds(r.state.ListLoaded) }),
		single("nodeping_nodes_list_load_errors_total", "counter", "Failed reads or decodes of the nodes list; the last good list stays in use.",
			func(r *Results) float64 { return float64(r.state.ListLoadErrors) }),
		single("nodeping_nodes_list_too_large_total", "counter", "Nodes lists refused for their size (more bytes or nodes than the agent accepts); each is also a load error, and the last good list stays in use.",
			func(r *Results) float64 { return float64(r.state.ListTooLarge) }),
		single("nodeping_nodes_list_nodes", "gauge", "Usable nodes in the nodes list in use.",
			func(r *Results) float64 { return float64(r.state.ListNodes) }),
		{Name: "nodeping_nodes_list_skipped_entries", Type: "gauge", Help: "Entries of the nodes list in use that were left out, by reason.", Labels: []string{"reason"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, k := range sortedKeys(r.state.ListSkipped) {
					e.sample(f.Name, "", f.labels(k), float64(r.state.ListSkipped[k]))
				}
			}},
		{Name: "nodeping_probe_plan_info", Type: "gauge", Help: "The probe plan of the nodes list in use: full-mesh or subset (K ring peers plus zone coverage); always 1.", Labels: []string{"mode"},
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
		perProbe("nodeping_probe_duration_seconds", "gauge", "How long each probe's last run took.",
			func(p ProbeStats) float64 { return p.Duration.Seconds() }),
		{Name: "nodeping_probe_failures_total", Type: "counter", Help: "Lost probes by reason, for probes that can tell why (tcp: refused, timeout, reset, other).", Labels: []string{"protocol", "reason"},
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
		perProbe("nodeping_probe_overruns_total", "counter", "Probe runs that took longer than the probe's share of the interval (its budget).",
			func(p ProbeStats) float64 { return float64(p.Overruns) }),
		perProbe("nodeping_probe_success", "gauge", "Whether each probe's last run succeeded (1) or failed (0: its pairs are left out of this file).",
			func(p ProbeStats) float64 {
				if p.Success {
					return 1
				}
				return 0
			}),
		single("nodeping_receive_errors_total", "counter", "Errors reading the probe sockets.",
			func(r *Results) float64 { return float64(r.state.ICMP.RecvErrors) }),
		{Name: "nodeping_responder_answered_total", Type: "counter", Help: "Peers' probes the agent's responders answered.", Labels: []string{"protocol"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, rs := range r.state.Responders {
					e.sample(f.Name, "", f.labels(rs.Protocol), float64(rs.Answered))
				}
			}},
		{Name: "nodeping_responder_dropped_total", Type: "counter", Help: "Packets the agent's responders dropped, by reason: not_a_node (source not in the nodes list), oversized, rate_limited.", Labels: []string{"protocol", "reason"},
			render: func(f *Family, r *Results, e *encoder) {
				for _, rs := range r.state.Responders {
					for _, k := range sortedKeys(rs.Dropped) {
						e.sample(f.Name, "", f.labels(rs.Protocol, k), float64(rs.Dropped[k]))
					}
				}
			}},
		single("nodeping_resolve_errors_total", "counter", "Failed look-ups of external targets' host names.",
			func(r *Results) float64 { return float64(r.state.ResolveErrors) }),
		famRTT,
		{Name: "nodeping_send_errors_total", Type: "counter", Help: "Probe packets the kernel refused to send (no route, for example); each also counts as sent and lost.", Labels: []string{"ip_family", "protocol"},
			render: func(f *Family, r *Results, e *encoder) {
				keys := []histKey{{family: "ipv4", protocol: "icmp"}, {family: "ipv6", protocol: "icmp"}}
				for k := range r.sendErrors {
					if k.protocol != "icmp" {
						keys = append(keys, k)
					}
				}
				sort.Slice(keys, func(i, j int) bool {
					return keys[i].protocol+keys[i].family < keys[j].protocol+keys[j].family
				})
				for _, k := range keys {
					e.sample(f.Name, "", f.labels(k.family, k.protocol), float64(r.sendErrors[k]))
				}
			}},
		{Name: "nodeping_targets", Type: "gauge", Help: "Targets of the last cycle by state: probed, or in grace (new, so only answered packets count).", Labels: []string{"state"},
			render: func(f *Family, r *Results, e *encoder) {
				e.sample(f.Name, "", f.labels("grace"), float64(r.state.TargetsInGrace))
				e.sample(f.Name, "", f.labels("probed"), float64(r.state.TargetsProbed))
			}},
		single("nodeping_textfile_write_errors_total", "counter", "Failed writes of this file.",
			func(r *Results) float64 { return float64(r.state.WriteErrors) }),
	}
	fs = append(fs, flantFamilies("kube_node_ping_", KindNode)...)
	fs = append(fs, flantFamilies("external_ping_", KindExternal)...)
	fs = append(fs, &Family{Name: "nodeping_node_maintenance", Type: "gauge", Help: "Listed nodes that are cordoned or not Ready, by reason; always 1. Rules raise no network alert for them.", Labels: []string{"destination_node", "reason"},
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
