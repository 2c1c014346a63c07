package rulecampaign

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// encode renders cumulative values in promtool's series notation, folding runs of equal steps
// into "a+bxn" and NaNs (a series the agent does not write yet) into blanks, "_" or "_xn";
// staleAt >= 0 ends the series there with a stale marker.
func encode(v []float64, staleAt int) string {
	if staleAt >= 0 && staleAt < len(v) {
		v = v[:staleAt]
	}
	var parts []string
	for i := 0; i < len(v); {
		if math.IsNaN(v[i]) { // not written yet: a blank, or a run of them
			k := 1
			for i+k < len(v) && math.IsNaN(v[i+k]) {
				k++
			}
			if k == 1 {
				parts = append(parts, "_")
			} else {
				parts = append(parts, fmt.Sprintf("_x%d", k))
			}
			i += k
			continue
		}
		k := 0
		if i+1 < len(v) {
			d := v[i+1] - v[i]
			for i+k+1 < len(v) && !math.IsNaN(v[i+k+1]) && math.Abs(v[i+k+1]-v[i+k]-d) < 1e-12 {
				k++
			}
			if k >= 1 && d >= 0 {
				parts = append(parts, fmt.Sprintf("%s+%sx%d", num(v[i]), num(d), k))
				i += k + 1
				continue
			}
		}
		parts = append(parts, num(v[i]))
		i++
	}
	if staleAt >= 0 {
		parts = append(parts, "stale")
	}
	return strings.Join(parts, " ")
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 9, 64) }

func labelSet(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func binomial(r *rand.Rand, n int, p float64) int {
	k := 0
	for i := 0; i < n; i++ {
		if r.Float64() < p {
			k++
		}
	}
	return k
}

// baseRTT is a pair's healthy mean round trip: about 0.4ms in a zone, 1.5ms across zones.
func baseRTT(r *rand.Rand, c Cluster, s, d int) float64 {
	if c.Nodes[s].Zone != "" && c.Nodes[s].Zone == c.Nodes[d].Zone {
		return 0.0003 + 0.0003*r.Float64()
	}
	return 0.001 + 0.001*r.Float64()
}

// Series renders the case's input series in promtool notation (one "- series/values" item per
// series, indented for a test group).
func (cs Case) Series() []string {
	r := rand.New(rand.NewPCG(cs.Seed, uint64(cs.ID)))
	// The other probes draw from their own stream, so that the ICMP counters of a case do not
	// depend on which other probes it runs.
	pr := rand.New(rand.NewPCG(cs.Seed, uint64(cs.ID)^0x70726f626573))
	c := cs.Cluster
	steps := cs.RunSteps()
	var out []string
	add := func(metric, lbls, values string) {
		out = append(out, fmt.Sprintf("      - series: '%s%s'\n        values: '%s'", metric, lbls, values))
	}
	for s := range c.Nodes {
		inst := c.Nodes[s].Name + ":9100"
		// Cycles completed by each scrape: usually one; now and then a scrape comes just before
		// the cycle's write, then two are seen at once.
		cycles := make([]int, steps+1)
		for t := 1; t <= steps; t++ {
			cycles[t] = 1
		}
		for t := 1; t < steps; t++ {
			if cycles[t] == 1 && r.Float64() < 0.03 {
				cycles[t], cycles[t+1] = 0, 2
			}
		}
		lag := r.IntN(2) // agents' cycles are not in phase: the fault shows a scrape later in some
		staleAt := -1
		if cs.Silent[s] || cs.Stopped[s] {
			staleAt = cs.Fault() + lag
		}
		if cs.NoFiles && (staleAt < 0 || cs.Fault() < staleAt) {
			staleAt = cs.Fault() // node-exporter reads another directory: every file at once
		}
		// What the scrapes see: every stride-th cycle's counters, up to the first scrape at or
		// after the step the series goes stale at.
		stride := cs.ScrapeSeconds() / StepSeconds
		scrapedUntil := func(staleAt int) func([]float64) string {
			if staleAt > 0 {
				staleAt = (staleAt + stride - 1) / stride
			}
			return func(v []float64) string { return encode(everyNth(v, stride), staleAt) }
		}
		if cs.Files {
			exporterStale := -1
			if cs.Silent[s] {
				exporterStale = cs.Fault() + lag
			}
			if exporterStale != 0 {
				cs.exporterSeries(s, inst, steps, scrapedUntil(exporterStale), add)
			}
		}
		if staleAt == 0 {
			continue // never scraped at all
		}
		scraped := scrapedUntil(staleAt)
		frozen := cs.Frozen[s]
		for _, d := range c.Plan[s] {
			bg := cs.Background * (0.5 + r.Float64())
			rtt := baseRTT(r, c, s, d)
			sent, recv, rttSum := make([]float64, steps+1), make([]float64, steps+1), make([]float64, steps+1)
			var msent, mrecv []float64
			if cs.MTU {
				msent, mrecv = make([]float64, steps+1), make([]float64, steps+1)
			}
			for t := 1; t <= steps; t++ {
				sent[t], recv[t], rttSum[t] = sent[t-1], recv[t-1], rttSum[t-1]
				if cs.MTU {
					msent[t], mrecv[t] = msent[t-1], mrecv[t-1]
				}
				on := t >= cs.Fault()+lag
				if frozen && on {
					continue
				}
				for k := 0; k < cycles[t]; k++ {
					p, delay, mp := bg, 0.0, bg
					if on && cs.Loss != nil {
						p = 1 - (1-bg)*(1-cs.Loss(s, d))
						mp = p // what loses small echoes loses full-size ones
					}
					if on && cs.Delay != nil {
						delay = cs.Delay(s, d)
					}
					if on && cs.MTULoss != nil {
						mp = 1 - (1-mp)*(1-cs.MTULoss(s, d))
					}
					got := EchoesPer - binomial(r, EchoesPer, p)
					cycleRTT := rtt * (1 + math.Abs(r.NormFloat64())*0.15)
					if r.Float64() < 0.05 {
						cycleRTT *= 3 + 7*r.Float64() // a spike now and then
					}
					if (cs.Jittery[s] || cs.Jittery[d]) && r.Float64() < 0.33 {
						cycleRTT += 0.005 + 0.025*r.Float64()
					}
					sent[t] += EchoesPer
					recv[t] += float64(got)
					rttSum[t] += float64(got) * (cycleRTT + delay)
					if cs.MTU {
						msent[t]++
						if r.Float64() >= mp {
							mrecv[t]++
						}
					}
				}
			}
			pair := func(protocol string) string {
				return labelSet("instance", inst, "job", "node", "source_node", c.Nodes[s].Name, "source_zone", c.Nodes[s].Zone,
					"destination_node", c.Nodes[d].Name, "destination_zone", c.Nodes[d].Zone,
					"destination_ip", fmt.Sprintf("198.18.%d.%d", d/250, d%250+1), "ip_family", "ipv4", "protocol", protocol)
			}
			add("nodeping_packets_sent_total", pair("icmp"), scraped(sent))
			add("nodeping_packets_received_total", pair("icmp"), scraped(recv))
			add("nodeping_rtt_seconds_total", pair("icmp"), scraped(roundAll(rttSum)))
			if cs.MTU {
				add("nodeping_packets_sent_total", pair("mtu"), scraped(msent))
				add("nodeping_packets_received_total", pair("mtu"), scraped(mrecv))
			}
		}
		ag := agent{s: s, inst: inst, cycles: cycles, fault: cs.Fault() + lag, frozen: frozen, scraped: scraped, add: add, r: pr}
		cs.probeSeries(ag)
		for m := range cs.Maintenance {
			if m != s && !slices.Contains(c.Plan[s], m) {
				continue // an agent reports only itself and the nodes it probes
			}
			v := make([]float64, steps+1)
			for i := range v {
				v[i] = 1
			}
			add("nodeping_node_maintenance", labelSet("instance", inst, "job", "node", "destination_node", c.Nodes[m].Name, "reason", "cordoned"), scraped(v))
		}
	}
	return out
}

// everyNth keeps v[0], v[n], v[2n], ...: the samples of a scrape every n steps.
func everyNth(v []float64, n int) []float64 {
	if n <= 1 {
		return v
	}
	out := make([]float64, 0, len(v)/n+1)
	for i := 0; i < len(v); i += n {
		out = append(out, v[i])
	}
	return out
}

// roundAll keeps 9 significant digits' worth of microseconds so the text stays short.
func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(x*1e7) / 1e7
	}
	return out
}

// Group renders the case as one promtool test group whose only assertion fails on purpose:
// promtool then prints, for each alert that fired during the run, when it first fired, tagged
// with the case's id; and a sentinel that proves the case was evaluated.
func (cs Case) Group() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  # case %d: %s on %s (%s), background %.2f%%\n", cs.ID, cs.Class, cs.Cluster.Name, cs.Detail, 100*cs.Background)
	fmt.Fprintf(&b, "  - interval: %ds\n    input_series:\n", cs.ScrapeSeconds())
	b.WriteString(strings.Join(cs.Series(), "\n"))
	end := cs.RunSteps() * StepSeconds
	fmt.Fprintf(&b, "\n    promql_expr_test:\n      - expr: 'label_replace(min_over_time((timestamp(ALERTS{alertstate=\"firing\"}))[%ds:15s]), \"case\", \"%d\", \"\", \"\") or label_replace(vector(-1), \"case\", \"%d\", \"\", \"\")'\n        eval_time: %ds\n        exp_samples: []\n", end+15, cs.ID, cs.ID, end)
	return b.String()
}

// File renders a promtool test file holding the cases, for the rules at rulesPath, evaluated at
// the first case's scrape interval (every case of a file must share it).
func File(rulesPath string, cases []Case) string {
	var b strings.Builder
	eval := StepSeconds
	if len(cases) > 0 {
		eval = cases[0].ScrapeSeconds()
	}
	fmt.Fprintf(&b, "# Generated by internal/rulecampaign; do not edit.\nrule_files:\n  - %s\nevaluation_interval: %ds\ntests:\n", rulesPath, eval)
	for _, cs := range cases {
		b.WriteString(cs.Group())
	}
	return b.String()
}
