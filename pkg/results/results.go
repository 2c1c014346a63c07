// Package results turns probe statistics into Prometheus metrics. It owns every metric name and
// HELP text the agent writes; docs/metrics.md is the reference for users and a test keeps the two
// in step.
package results

import (
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodeping/nodeping/pkg/probe"
)

// Kind tells a cluster node from an external target.
type Kind int

const (
	// KindNode is a node of the cluster.
	KindNode Kind = iota
	// KindExternal is a target outside the cluster, named by a host.
	KindExternal
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
	// ListLoadErrors counts nodes-list reads or decodes that failed; the last good list stays in use.
	ListLoadErrors uint64
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
}

// rttBuckets are the RTT histogram's upper bounds: 50µs doubling to about 0.8s, so that
// sub-millisecond links inside a zone are resolved as well as slow cross-region ones.
var rttBuckets = prometheus.ExponentialBuckets(0.00005, 2, 15)

const (
	labelSourceNode = "source_node"
	labelSourceZone = "source_zone"
	labelProtocol   = "protocol"
	labelIPFamily   = "ip_family"
)

var (
	nodePairLabels = []string{labelSourceNode, labelSourceZone, "destination_node", "destination_zone", "destination_ip", labelIPFamily, labelProtocol}
	extPairLabels  = []string{labelSourceNode, labelSourceZone, "destination_name", "destination_host", "destination_ip", labelIPFamily, labelProtocol}
	histLabels     = []string{labelSourceNode, labelSourceZone, "destination_zone", labelIPFamily, labelProtocol}
)

// pairDescs are the per-pair metric descriptors of one kind of target.
type pairDescs struct {
	sent, received, rttSum, rttMin, rttMax, rttStddev *prometheus.Desc
}

func newPairDescs(prefix, what string, labels []string) pairDescs {
	return pairDescs{
		sent:      prometheus.NewDesc(prefix+"packets_sent_total", "Probe packets sent to "+what+" whose outcome is known (answered, timed out, or failed to send); packets in flight are not counted.", labels, nil),
		received:  prometheus.NewDesc(prefix+"packets_received_total", "Probe packets answered by "+what+" within the timeout.", labels, nil),
		rttSum:    prometheus.NewDesc(prefix+"rtt_seconds_total", "Sum of the round-trip times of the answered probe packets to "+what+".", labels, nil),
		rttMin:    prometheus.NewDesc(prefix+"rtt_min_seconds", "Smallest round-trip time to "+what+" in the last cycle; absent when nothing was answered.", labels, nil),
		rttMax:    prometheus.NewDesc(prefix+"rtt_max_seconds", "Largest round-trip time to "+what+" in the last cycle; absent when nothing was answered.", labels, nil),
		rttStddev: prometheus.NewDesc(prefix+"rtt_stddev_seconds", "Population standard deviation of the round-trip times to "+what+" in the last cycle; absent when nothing was answered.", labels, nil),
	}
}

type pairState struct {
	pair                 Pair
	labels               []string
	sent, received       uint64
	rttSum               float64
	last                 probe.Stats // this cycle's, for the gauges
	seen                 bool        // observed in the current cycle
	lastMin, lastMax, sd float64
}

type histKey struct {
	zone, family, protocol string
}

type histState struct {
	labels  []string
	count   uint64
	sum     float64
	buckets []uint64 // non-cumulative counts per bucket; the last is +Inf
}

// Results accumulates probe statistics across cycles and exposes them as a prometheus.Collector.
// It is safe for concurrent use.
type Results struct {
	src   Source
	build BuildInfo

	node, ext pairDescs
	rtt       *prometheus.Desc
	buildInfo, cycleDuration, cycles, overruns, targets, lastWrite,
	listNodes, listSkipped, listLoadErrors, listLoaded, resolveErrors, writeErrors,
	socketInfo, late, recvErrors, tableFull, sendErrors *prometheus.Desc

	mu            sync.Mutex
	pairs         map[Pair]*pairState
	hists         map[histKey]*histState
	cycleCount    uint64
	overrunCount  uint64
	cycleDur      time.Duration
	state         AgentState
	sendErrCounts map[histKey]uint64
	writeTime     time.Time
}

// New returns empty results for the agent on src.
func New(src Source, build BuildInfo) *Results {
	g := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("nodeping_"+name, help, labels, nil)
	}
	return &Results{
		src:   src,
		build: build,
		node:  newPairDescs("nodeping_", "the destination node", nodePairLabels),
		ext:   newPairDescs("nodeping_external_", "the external target", extPairLabels),
		rtt: g("rtt_seconds", "Round-trip times of answered probe packets, per destination zone.",
			histLabels...),
		buildInfo:      g("build_info", "The agent's version, revision and Go version; always 1.", "version", "revision", "goversion"),
		cycleDuration:  g("cycle_duration_seconds", "How long the last probe cycle took, from its start to its last result."),
		cycles:         g("cycles_total", "Probe cycles completed."),
		overruns:       g("cycle_overruns_total", "Probe cycles that took longer than the interval, so that the next one started late."),
		targets:        g("targets", "Targets of the last cycle by state: probed, or in grace (new, so only answered packets count).", "state"),
		lastWrite:      g("last_write_timestamp_seconds", "When this file was written, in seconds since the Unix epoch."),
		listNodes:      g("nodes_list_nodes", "Usable nodes in the nodes list in use."),
		listSkipped:    g("nodes_list_skipped_entries", "Entries of the nodes list in use that were left out, by reason.", "reason"),
		listLoadErrors: g("nodes_list_load_errors_total", "Failed reads or decodes of the nodes list; the last good list stays in use."),
		listLoaded:     g("nodes_list_last_load_timestamp_seconds", "When the nodes list in use was read, in seconds since the Unix epoch; 0 when none has been."),
		resolveErrors:  g("resolve_errors_total", "Failed look-ups of external targets' host names."),
		writeErrors:    g("textfile_write_errors_total", "Failed writes of this file."),
		socketInfo:     g("icmp_socket_info", "How the ICMP socket of each address family is opened: raw (CAP_NET_RAW) or dgram (unprivileged ping socket); always 1.", labelIPFamily, "mode"),
		late:           g("late_replies_total", "Echo replies that matched no echo in flight: after their deadline, duplicated, or from another address.", labelProtocol),
		recvErrors:     g("receive_errors_total", "Errors reading the probe sockets.", labelProtocol),
		tableFull:      g("inflight_table_full_total", "Echoes not sent because 65536 were already in flight.", labelProtocol),
		sendErrors:     g("send_errors_total", "Probe packets the kernel refused to send (no route, for example); each also counts as sent and lost.", labelIPFamily, labelProtocol),
		pairs:          map[Pair]*pairState{},
		hists:          map[histKey]*histState{},
		sendErrCounts:  map[histKey]uint64{},
	}
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
}

// BeginCycle starts a cycle: pairs not observed before EndCycle are dropped from the output.
func (r *Results) BeginCycle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.seen = false
	}
}

// Observe adds one cycle's statistics for a pair.
func (r *Results) Observe(p Pair, st probe.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps, ok := r.pairs[p]
	if !ok {
		ps = &pairState{pair: p, labels: r.pairLabels(p)}
		r.pairs[p] = ps
	}
	ps.seen = true
	ps.sent += uint64(st.Sent)
	ps.received += uint64(st.Received)
	sum, mn, mx, sd := probe.RTTSummary(st.RTTs)
	ps.rttSum += sum.Seconds()
	ps.last = probe.Stats{Sent: st.Sent, Received: st.Received}
	ps.lastMin, ps.lastMax, ps.sd = mn.Seconds(), mx.Seconds(), sd.Seconds()

	fam := family(p.IP)
	if st.SendErrors > 0 {
		r.sendErrCounts[histKey{family: fam, protocol: p.Protocol}] += uint64(st.SendErrors)
	}
	if p.Kind != KindNode || len(st.RTTs) == 0 {
		return
	}
	hk := histKey{zone: p.Zone, family: fam, protocol: p.Protocol}
	h, ok := r.hists[hk]
	if !ok {
		h = &histState{
			labels:  []string{r.src.Node, r.src.Zone, p.Zone, fam, p.Protocol},
			buckets: make([]uint64, len(rttBuckets)+1),
		}
		r.hists[hk] = h
	}
	for _, d := range st.RTTs {
		s := d.Seconds()
		h.count++
		h.sum += s
		h.buckets[sort.SearchFloat64s(rttBuckets, s)]++
	}
}

// EndCycle drops pairs that were not observed in this cycle and records the cycle's duration.
func (r *Results) EndCycle(d time.Duration, overrun bool, st AgentState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pairs {
		if !p.seen {
			delete(r.pairs, k)
		}
	}
	r.cycleCount++
	if overrun {
		r.overrunCount++
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

// SetWriteTime sets nodeping_last_write_timestamp_seconds for the next write.
func (r *Results) SetWriteTime(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeTime = t
}

func (r *Results) pairLabels(p Pair) []string {
	if p.Kind == KindExternal {
		return []string{r.src.Node, r.src.Zone, p.Name, p.Host, p.IP.String(), family(p.IP), p.Protocol}
	}
	return []string{r.src.Node, r.src.Zone, p.Name, p.Zone, p.IP.String(), family(p.IP), p.Protocol}
}

func family(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "ipv6"
	}
	return "ipv4"
}

// Describe implements prometheus.Collector.
func (r *Results) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []pairDescs{r.node, r.ext} {
		for _, dd := range []*prometheus.Desc{d.sent, d.received, d.rttSum, d.rttMin, d.rttMax, d.rttStddev} {
			ch <- dd
		}
	}
	for _, d := range []*prometheus.Desc{r.rtt, r.buildInfo, r.cycleDuration, r.cycles, r.overruns, r.targets, r.lastWrite,
		r.listNodes, r.listSkipped, r.listLoadErrors, r.listLoaded, r.resolveErrors, r.writeErrors,
		r.socketInfo, r.late, r.recvErrors, r.tableFull, r.sendErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Results) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		d := r.node
		if p.pair.Kind == KindExternal {
			d = r.ext
		}
		ch <- prometheus.MustNewConstMetric(d.sent, prometheus.CounterValue, float64(p.sent), p.labels...)
		ch <- prometheus.MustNewConstMetric(d.received, prometheus.CounterValue, float64(p.received), p.labels...)
		ch <- prometheus.MustNewConstMetric(d.rttSum, prometheus.CounterValue, p.rttSum, p.labels...)
		if p.last.Received > 0 {
			ch <- prometheus.MustNewConstMetric(d.rttMin, prometheus.GaugeValue, p.lastMin, p.labels...)
			ch <- prometheus.MustNewConstMetric(d.rttMax, prometheus.GaugeValue, p.lastMax, p.labels...)
			ch <- prometheus.MustNewConstMetric(d.rttStddev, prometheus.GaugeValue, p.sd, p.labels...)
		}
	}
	for _, h := range r.hists {
		cum := make(map[float64]uint64, len(rttBuckets))
		var c uint64
		for i, ub := range rttBuckets {
			c += h.buckets[i]
			cum[ub] = c
		}
		ch <- prometheus.MustNewConstHistogram(r.rtt, h.count, h.sum, cum, h.labels...)
	}
	st := r.state
	ch <- prometheus.MustNewConstMetric(r.buildInfo, prometheus.GaugeValue, 1, r.build.Version, r.build.Revision, runtime.Version())
	ch <- prometheus.MustNewConstMetric(r.cycleDuration, prometheus.GaugeValue, r.cycleDur.Seconds())
	ch <- prometheus.MustNewConstMetric(r.cycles, prometheus.CounterValue, float64(r.cycleCount))
	ch <- prometheus.MustNewConstMetric(r.overruns, prometheus.CounterValue, float64(r.overrunCount))
	ch <- prometheus.MustNewConstMetric(r.targets, prometheus.GaugeValue, float64(st.TargetsProbed), "probed")
	ch <- prometheus.MustNewConstMetric(r.targets, prometheus.GaugeValue, float64(st.TargetsInGrace), "grace")
	ch <- prometheus.MustNewConstMetric(r.lastWrite, prometheus.GaugeValue, unixSeconds(r.writeTime))
	ch <- prometheus.MustNewConstMetric(r.listNodes, prometheus.GaugeValue, float64(st.ListNodes))
	for reason, n := range st.ListSkipped {
		ch <- prometheus.MustNewConstMetric(r.listSkipped, prometheus.GaugeValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(r.listLoadErrors, prometheus.CounterValue, float64(st.ListLoadErrors))
	ch <- prometheus.MustNewConstMetric(r.listLoaded, prometheus.GaugeValue, unixSeconds(st.ListLoaded))
	ch <- prometheus.MustNewConstMetric(r.resolveErrors, prometheus.CounterValue, float64(st.ResolveErrors))
	ch <- prometheus.MustNewConstMetric(r.writeErrors, prometheus.CounterValue, float64(st.WriteErrors))
	for fam, mode := range st.ICMPModes {
		ch <- prometheus.MustNewConstMetric(r.socketInfo, prometheus.GaugeValue, 1, fam, mode)
	}
	ch <- prometheus.MustNewConstMetric(r.late, prometheus.CounterValue, float64(st.ICMP.Late), "icmp")
	ch <- prometheus.MustNewConstMetric(r.recvErrors, prometheus.CounterValue, float64(st.ICMP.RecvErrors), "icmp")
	ch <- prometheus.MustNewConstMetric(r.tableFull, prometheus.CounterValue, float64(st.ICMP.TableFull), "icmp")
	for _, fam := range []string{"ipv4", "ipv6"} {
		ch <- prometheus.MustNewConstMetric(r.sendErrors, prometheus.CounterValue, float64(r.sendErrCounts[histKey{family: fam, protocol: "icmp"}]), fam, "icmp")
	}
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
