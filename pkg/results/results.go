// Package results turns probe statistics into Prometheus metrics. It owns every metric name and
// HELP text the agent writes (see Families); docs/metrics.md is the reference for users, and a
// test keeps the two in step.
//
// Output is rendered straight to the text exposition format from pre-rendered label sets, the way
// kube-state-metrics does: a 1,000-node cluster gives each agent some 6,000 series per cycle, and
// building client_golang metric objects for each would cost more CPU and memory than the probing.
//
// model.go holds what the agent reports (Sample, AgentState), results.go the accumulation across
// cycles, encode.go the text encoder, families.go the metric table with every name and HELP text,
// and flant.go the series of --compat=flant.
package results

import (
	"sort"
	"sync"
	"time"

	"github.com/nodeping/nodeping/pkg/probe"
)

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
	if p.Kind != KindNode || len(st.RTTs) == 0 || !r.rttDetail && p.Protocol != probe.ProtocolICMP {
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
