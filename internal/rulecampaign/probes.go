package rulecampaign

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// What the other probes send per target and cycle, as the DaemonSet runs them.
const (
	TCPPer      = 1  // --tcp-count
	UDPPer      = 5  // --udp-count
	ExternalPer = 10 // external targets get the ICMP probe's --icmp-count
)

// The DNS probe's one name and resolver (the DaemonSet's --dns-names, the cluster DNS).
const (
	dnsName     = "kubernetes.default.svc.cluster.local."
	dnsResolver = "10.96.0.10:53"
)

// externalTargets are the targets of the nodes list a case's agents probe, the first ones.
var externalTargets = []struct{ name, host, ip string }{
	{"registry", "registry.example.org", "192.0.2.80"},
	{"mirror", "mirror.example.org", "192.0.2.81"},
	{"upstream-dns", "192.0.2.53", "192.0.2.53"},
	{"ntp", "ntp.example.org", "192.0.2.123"},
}

// agent is what one agent's series share: whose they are, the cycles each step completes, the
// step the fault reaches it at, whether it crashed then (counters frozen), how its series are
// scraped and where they go.
type agent struct {
	s       int
	inst    string
	cycles  []int
	fault   int
	frozen  bool
	scraped func([]float64) string
	add     func(metric, lbls, values string)
	r       *rand.Rand
}

// on reports whether the fault is on for the agent at step t, and whether the agent still
// counts then.
func (a agent) on(t int) (on, counting bool) {
	on = t >= a.fault
	return on, !(on && a.frozen)
}

// probeSeries renders the agent's other probes, those the case runs.
func (cs Case) probeSeries(a agent) {
	if cs.TCP {
		cs.portSeries(a, "tcp", TCPPer)
	}
	if cs.UDP {
		cs.portSeries(a, "udp", UDPPer)
	}
	if cs.DNS {
		cs.dnsSeries(a)
	}
	for t := 0; t < cs.External && t < len(externalTargets); t++ {
		cs.externalSeries(a, t)
	}
	if cs.Files {
		cs.lastWriteSeries(a)
	}
}

// portSeries renders the agent's TCP or UDP probe of every peer it plans: per attempts per
// cycle, each lost to the pair's background loss, to the network fault (what loses echoes loses
// port probes), to the port's own, and every one once the peer's agent (its responder) stopped.
func (cs Case) portSeries(a agent, protocol string, per int) {
	c := cs.Cluster
	for _, d := range c.Plan[a.s] {
		bg := cs.Background * (0.5 + a.r.Float64())
		sent, recv := a.counters(per, func(t int, on bool) float64 {
			p := bg
			if on && cs.Loss != nil {
				p = 1 - (1-p)*(1-cs.Loss(a.s, d))
			}
			if on && cs.PortLoss != nil {
				p = 1 - (1-p)*(1-cs.PortLoss(protocol, a.s, d))
			}
			if (cs.Stopped[d] || cs.Frozen[d]) && t >= cs.Fault() {
				p = 1 // the responder is the agent's: it stops or crashes with it
			}
			return p
		})
		lbls := pairLabels(c, a.inst, a.s, d, protocol)
		a.add("nodeping_packets_sent_total", lbls, a.scraped(sent))
		a.add("nodeping_packets_received_total", lbls, a.scraped(recv))
	}
}

// counters renders a probe's cumulative sent and received counters: per probes each cycle the
// agent counts, each lost with the share loss gives for step t (on: the fault is on then).
func (a agent) counters(per int, loss func(t int, on bool) float64) (sent, recv []float64) {
	steps := len(a.cycles) - 1
	sent, recv = make([]float64, steps+1), make([]float64, steps+1)
	for t := 1; t <= steps; t++ {
		sent[t], recv[t] = sent[t-1], recv[t-1]
		on, counting := a.on(t)
		if !counting {
			continue
		}
		p := loss(t, on)
		for k := 0; k < a.cycles[t]; k++ {
			sent[t] += float64(per)
			recv[t] += float64(per - binomial(a.r, per, p))
		}
	}
	return sent, recv
}

// pairLabels are the labels of a pair's series, as the agent writes them.
func pairLabels(c Cluster, inst string, s, d int, protocol string) string {
	return labelSet("instance", inst, "job", "node", "source_node", c.Nodes[s].Name, "source_zone", c.Nodes[s].Zone,
		"destination_node", c.Nodes[d].Name, "destination_zone", c.Nodes[d].Zone,
		"destination_ip", fmt.Sprintf("198.18.%d.%d", d/250, d%250+1), "ip_family", "ipv4", "protocol", protocol)
}

// dnsSeries renders the agent's DNS probe: one look-up a cycle, answered (NOERROR) in the node's
// usual 12-30ms with ±30% jitter and a 3-10x spike in 5% of them, or timed out (1 in 1,000, or
// as the fault says). The agent writes a response code's counter from its first occurrence on,
// and the time to an answer (a histogram: its _sum and _count, which the rules read; the buckets
// are left out) from the first answer on; a timeout has no time.
func (cs Case) dnsSeries(a agent) {
	c := cs.Cluster
	steps := len(a.cycles) - 1
	base := 0.012 + 0.018*a.r.Float64()
	nan := math.NaN()
	ok, timeout, sum, count := make([]float64, steps+1), make([]float64, steps+1), make([]float64, steps+1), make([]float64, steps+1)
	ok[0], timeout[0], sum[0], count[0] = nan, nan, nan, nan
	for t := 1; t <= steps; t++ {
		ok[t], timeout[t], sum[t], count[t] = ok[t-1], timeout[t-1], sum[t-1], count[t-1]
		on, counting := a.on(t)
		if !counting {
			continue
		}
		fail, slow := 0.001, 1.0
		if on && cs.DNSFail != nil {
			fail = 1 - (1-fail)*(1-cs.DNSFail(a.s))
		}
		if on && cs.DNSSlow != nil {
			if f := cs.DNSSlow(a.s); f > 0 {
				slow = f
			}
		}
		for k := 0; k < a.cycles[t]; k++ {
			if a.r.Float64() < fail {
				timeout[t] = orZero(timeout[t]) + 1
				continue
			}
			d := base * (1 + 0.3*math.Abs(a.r.NormFloat64()))
			if a.r.Float64() < 0.05 {
				d *= 3 + 7*a.r.Float64()
			}
			ok[t] = orZero(ok[t]) + 1
			sum[t] = orZero(sum[t]) + d*slow
			count[t] = orZero(count[t]) + 1
		}
	}
	lbls := func(rcode string) string {
		return labelSet("instance", a.inst, "job", "node", "source_node", c.Nodes[a.s].Name, "resolver", dnsResolver, "name", dnsName, "rcode", rcode)
	}
	hist := labelSet("instance", a.inst, "job", "node", "source_node", c.Nodes[a.s].Name, "resolver", dnsResolver)
	for _, m := range []struct {
		metric, lbls string
		v            []float64
	}{
		{"nodeping_dns_responses_total", lbls("NOERROR"), ok},
		{"nodeping_dns_responses_total", lbls("timeout"), timeout},
		{"nodeping_dns_request_duration_seconds_sum", hist, roundAll(sum)},
		{"nodeping_dns_request_duration_seconds_count", hist, count},
	} {
		if written(m.v) {
			a.add(m.metric, m.lbls, a.scraped(m.v))
		}
	}
}

// externalSeries renders the agent's ICMP probe of external target t: 10 echoes a cycle, lost
// to the background and to the fault's share.
func (cs Case) externalSeries(a agent, t int) {
	c := cs.Cluster
	bg := cs.Background * (0.5 + a.r.Float64())
	sent, recv := a.counters(ExternalPer, func(_ int, on bool) float64 {
		if on && cs.ExternalLoss != nil {
			return 1 - (1-bg)*(1-cs.ExternalLoss(a.s, t))
		}
		return bg
	})
	x := externalTargets[t]
	lbls := labelSet("instance", a.inst, "job", "node", "source_node", c.Nodes[a.s].Name, "source_zone", c.Nodes[a.s].Zone,
		"destination_name", x.name, "destination_host", x.host, "destination_ip", x.ip, "ip_family", "ipv4", "protocol", "icmp")
	a.add("nodeping_external_packets_sent_total", lbls, a.scraped(sent))
	a.add("nodeping_external_packets_received_total", lbls, a.scraped(recv))
}

// lastWriteSeries renders the time the agent last wrote its file: the end of its last cycle (the
// run starts at time 0), still while it crashed.
func (cs Case) lastWriteSeries(a agent) {
	steps := len(a.cycles) - 1
	v := make([]float64, steps+1)
	for t := 1; t <= steps; t++ {
		v[t] = v[t-1]
		if _, counting := a.on(t); counting {
			v[t] = float64(t*StepSeconds - 1)
		}
	}
	a.add("nodeping_last_write_timestamp_seconds", labelSet("instance", a.inst, "job", "node"), a.scraped(v))
}

// exporterSeries renders node-exporter's own series on node s: it is scraped, and its textfile
// collector reports whether it could read its directory (not once the case's NoFiles fault has
// pointed it at a directory that does not exist).
func (cs Case) exporterSeries(s int, inst string, steps int, scraped func([]float64) string, add func(metric, lbls, values string)) {
	build, scrapeErr := make([]float64, steps+1), make([]float64, steps+1)
	for t := range build {
		build[t] = 1
		if cs.NoFiles && cs.NoDir && t >= cs.Fault() {
			scrapeErr[t] = 1
		}
	}
	add("node_exporter_build_info", labelSet("instance", inst, "job", "node", "version", "1.8.2"), scraped(build))
	add("node_textfile_scrape_error", labelSet("instance", inst, "job", "node"), scraped(scrapeErr))
}

func orZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}

// written reports whether the agent wrote the series at all during the run.
func written(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return true
		}
	}
	return false
}
