//go:build linux

package simcluster

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/promapi"
)

// CampaignClasses are the fault classes a campaign draws from, in the order it reports them
// (the synthetic campaign's names, internal/rulecampaign).
var CampaignClasses = []string{"healthy", "cordoned-blackhole", "node-blackhole", "node-gray-1-3pct", "node-lossy-5-30pct",
	"node-own-echoes-dropped", "zone-link-down", "zone-link-lossy", "zone-partition", "pair-lossy-one-way",
	"pair-lossy-both-ways", "mtu-blackhole", "two-node-faults", "node-latency", "zone-link-latency", "agent-missing"}

// CampaignConfig says how to run a campaign on a running cluster.
type CampaignConfig struct {
	Seed    uint64
	Cases   int      // how many faults; default one per class
	Classes []string // default CampaignClasses
	// Observe is how long each fault stays on, at most; Linger is how long it stays once every
	// expected alert fires (to catch stray ones). Settle is how long the cluster runs healthy
	// after each fault is cleared and its alerts resolved, so that the rules' windows forget it.
	Observe, Linger, Settle time.Duration
	// Scale is the factor the rules' windows are divided by (reported, not applied here).
	Scale int
	Log   io.Writer
}

// CaseResult is what one fault of a campaign gave.
type CaseResult struct {
	Spec     Spec
	Expected []string
	// Fired holds every alert that fired while the fault was on, with the time it first did.
	Fired map[string]time.Duration
	// Detected says whether every expected alert fired; Took is when the last of them did.
	Detected bool
	Took     time.Duration
}

// DrawSpec draws a random fault of a class for a cluster with these nodes and zones.
func DrawSpec(rnd *rand.Rand, class string, nodes, zones []string) (Spec, error) {
	node := func() string { return nodes[rnd.IntN(len(nodes))] }
	zone := func() string { return zones[rnd.IntN(len(zones))] }
	twoNodes := func() (string, string) {
		a := rnd.IntN(len(nodes))
		b := (a + 1 + rnd.IntN(len(nodes)-1)) % len(nodes)
		return nodes[a], nodes[b]
	}
	twoZones := func() (string, string) {
		a := rnd.IntN(len(zones))
		b := (a + 1 + rnd.IntN(len(zones)-1)) % len(zones)
		return zones[a], zones[b]
	}
	var text string
	switch class {
	case "node-blackhole":
		text = "blackhole:" + node()
	case "node-own-echoes-dropped":
		text = "isolate:" + node()
	case "agent-missing":
		text = "stop-agent:" + node()
	case "cordoned-blackhole":
		text = "cordoned-blackhole:" + node()
	case "node-gray-1-3pct":
		text = fmt.Sprintf("loss:%s:%d", node(), 1+rnd.IntN(3))
	case "node-lossy-5-30pct":
		text = fmt.Sprintf("loss:%s:%d", node(), 5+rnd.IntN(26))
	case "pair-lossy-one-way":
		a, b := twoNodes()
		text = fmt.Sprintf("pair-loss:%s:%s:%d", a, b, 20+10*rnd.IntN(9))
	case "pair-lossy-both-ways":
		a, b := twoNodes()
		text = fmt.Sprintf("link:%s:%s:%d", a, b, 20+10*rnd.IntN(9))
	case "zone-link-down":
		a, b := twoZones()
		text = "zone-link:" + a + ":" + b
	case "zone-link-lossy":
		a, b := twoZones()
		text = fmt.Sprintf("zone-link:%s:%s:%d", a, b, 10+10*rnd.IntN(5))
	case "zone-partition":
		text = "partition:" + zone()
	case "mtu-blackhole":
		text = fmt.Sprintf("mtu:%s:%d", node(), 1000+100*rnd.IntN(4))
	case "two-node-faults":
		a, b := twoNodes()
		kinds := []string{"blackhole:%s", "isolate:%s", "loss:%s:20"}
		text = fmt.Sprintf(kinds[rnd.IntN(3)], a) + "+" + fmt.Sprintf(kinds[rnd.IntN(3)], b)
	case "node-latency":
		text = fmt.Sprintf("latency:%s:%dms:%dms", node(), 20+10*rnd.IntN(7), rnd.IntN(5))
	case "zone-link-latency":
		a, b := twoZones()
		text = fmt.Sprintf("zone-latency:%s:%s:%dms:%dms", a, b, 20+10*rnd.IntN(7), rnd.IntN(5))
	case "healthy":
		text = fmt.Sprintf("background-loss:%.1f", 0.1+0.1*float64(rnd.IntN(5)))
	default:
		return Spec{}, fmt.Errorf("campaign: unknown class %q; want one of %s", class, strings.Join(CampaignClasses, ", "))
	}
	if len(zones) < 2 && (strings.HasPrefix(class, "zone-")) {
		return Spec{}, fmt.Errorf("campaign: class %s needs two zones or more", class)
	}
	return ParseSpec(text)
}

// FiringAlerts returns the alerts firing now, as Alert.String gives them, sorted.
func (c *Cluster) FiringAlerts(ctx context.Context) ([]string, error) {
	return promapi.Alerts(ctx, c.PrometheusURL, "firing")
}

// ZoneOf returns a node's zone ("" for an unknown node).
func (c *Cluster) ZoneOf(node string) string {
	nd, _ := c.Node(node)
	return nd.Zone
}

// RunCampaign injects cfg.Cases seeded random faults into the cluster, one at a time, and
// records which alerts each raised and when.
func (c *Cluster) RunCampaign(ctx context.Context, cfg CampaignConfig) ([]CaseResult, error) {
	cfg.Classes = append([]string(nil), cfg.Classes...) // shuffled below
	if len(cfg.Classes) == 0 {
		cfg.Classes = append([]string(nil), CampaignClasses...)
	}
	if cfg.Cases == 0 {
		cfg.Cases = len(cfg.Classes)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rnd := rand.New(rand.NewPCG(cfg.Seed, 12))
	nodes, zones := Names(len(c.Nodes), len(c.Zones))
	var results []CaseResult
	for i := 0; i < cfg.Cases; i++ {
		class := cfg.Classes[i%len(cfg.Classes)]
		if i%len(cfg.Classes) == 0 {
			rnd.Shuffle(len(cfg.Classes), func(a, b int) { cfg.Classes[a], cfg.Classes[b] = cfg.Classes[b], cfg.Classes[a] })
			class = cfg.Classes[0]
		}
		spec, err := DrawSpec(rnd, class, nodes, zones)
		if err != nil {
			return results, err
		}
		if err := c.awaitQuiet(ctx, 5*time.Minute); err != nil {
			return results, err
		}
		r, err := c.runCase(ctx, spec, cfg)
		if err != nil {
			return results, err
		}
		fmt.Fprintf(cfg.Log, "case %d/%d %-18s %-40s detected=%v took=%s fired=%v\n", i+1, cfg.Cases, spec.Class(), spec, r.Detected, r.Took.Round(time.Second), keys(r.Fired))
		results = append(results, r)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	return results, nil
}

func keys(m map[string]time.Duration) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// awaitQuiet waits until no alert is pending or firing.
func (c *Cluster) awaitQuiet(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		a, err := promapi.Alerts(ctx, c.PrometheusURL, "pending|firing")
		if err == nil && len(a) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("campaign: alerts still active %s after the last fault: %v (%v)", within, a, err)
		}
		time.Sleep(2 * time.Second)
	}
}

func (c *Cluster) runCase(ctx context.Context, spec Spec, cfg CampaignConfig) (CaseResult, error) {
	r := CaseResult{Spec: spec, Fired: map[string]time.Duration{}}
	want := map[string]bool{}
	for _, a := range spec.Expected(c.ZoneOf) {
		r.Expected = append(r.Expected, a.String())
		want[a.String()] = true
	}
	f, err := c.Inject(spec)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	var allAt time.Time
	for time.Since(t0) < cfg.Observe && ctx.Err() == nil {
		if !allAt.IsZero() && time.Since(allAt) >= cfg.Linger {
			break
		}
		fired, err := c.FiringAlerts(ctx)
		if err == nil {
			for _, a := range fired {
				if _, ok := r.Fired[a]; !ok {
					r.Fired[a] = time.Since(t0)
				}
			}
		}
		if allAt.IsZero() && len(want) > 0 {
			all := true
			for a := range want {
				_, ok := r.Fired[a]
				all = all && ok
			}
			if all {
				allAt = time.Now()
				for a := range want {
					r.Took = max(r.Took, r.Fired[a])
				}
				r.Detected = true
			}
		}
		time.Sleep(2 * time.Second)
	}
	if f != nil {
		if err := f.Clear(); err != nil {
			return r, err
		}
	}
	if err := c.awaitQuiet(ctx, 5*time.Minute); err != nil {
		return r, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(cfg.Settle):
	}
	return r, nil
}

// ClassRow is one line of a campaign's figures.
type ClassRow struct {
	Class              string
	Cases              int
	Precision, Recall  float64 // 1 when no alert fired; 1 for silence classes
	Median, Worst      time.Duration
	AlertsPerFault     float64
	rightFired, fired  int
	detected, expected int
	took               []time.Duration
}

// Summarize computes, per class: precision (the share of the alerts fired that were expected; 1
// when none fired), recall (the share of faults whose expected alerts all fired; 1 for classes
// that must stay silent, whose false alerts count against precision), the median and worst time until
// they had, and the mean number of distinct alerts per fault. The last row, "all", pools every
// case.
func Summarize(results []CaseResult) []ClassRow {
	rows := map[string]*ClassRow{}
	all := &ClassRow{Class: "all"}
	for _, r := range results {
		row := rows[r.Spec.Class()]
		if row == nil {
			row = &ClassRow{Class: r.Spec.Class()}
			rows[row.Class] = row
		}
		for _, x := range []*ClassRow{row, all} {
			x.Cases++
			x.fired += len(r.Fired)
			for _, e := range r.Expected {
				if _, ok := r.Fired[e]; ok {
					x.rightFired++
				}
			}
			if len(r.Expected) > 0 {
				x.expected++
				if r.Detected {
					x.detected++
					x.took = append(x.took, r.Took)
				}
			}
		}
	}
	var out []ClassRow
	finish := func(x *ClassRow) ClassRow {
		x.Precision, x.Recall = 1, 1 // as the synthetic campaign: no alert is no wrong one; silence is recalled
		if x.fired > 0 {
			x.Precision = float64(x.rightFired) / float64(x.fired)
		}
		if x.expected > 0 {
			x.Recall = float64(x.detected) / float64(x.expected)
		}
		if n := len(x.took); n > 0 {
			sort.Slice(x.took, func(i, j int) bool { return x.took[i] < x.took[j] })
			x.Median = x.took[n/2]
			if n%2 == 0 {
				x.Median = (x.took[n/2-1] + x.took[n/2]) / 2
			}
			x.Worst = x.took[n-1]
		}
		x.AlertsPerFault = float64(x.fired) / float64(x.Cases)
		return *x
	}
	for _, class := range CampaignClasses {
		if row := rows[class]; row != nil {
			out = append(out, finish(row))
		}
	}
	if len(results) > 0 {
		out = append(out, finish(all))
	}
	return out
}

// WriteRows prints the figures, one line per class, in the columns scripts/campaign's modes
// share: class cases precision recall median_s worst_s alerts_per_fault ("-": no time, nothing was detected).
func WriteRows(w io.Writer, rows []ClassRow) {
	fmt.Fprintf(w, "%-18s %5s %9s %6s %8s %7s %16s\n", "class", "cases", "precision", "recall", "median_s", "worst_s", "alerts_per_fault")
	ratio := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	secs := func(x ClassRow, d time.Duration) string {
		if len(x.took) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", d.Seconds())
	}
	for _, x := range rows {
		fmt.Fprintf(w, "%-18s %5d %9s %6s %8s %7s %16.2f\n", x.Class, x.Cases, ratio(x.Precision), ratio(x.Recall), secs(x, x.Median), secs(x, x.Worst), x.AlertsPerFault)
	}
}
