package rulecampaign

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		v       []float64
		staleAt int
		want    string
	}{
		{[]float64{0, 10, 20, 30}, -1, "0+10x3"},
		{[]float64{0, 10, 20, 25, 30, 35}, -1, "0+10x2 25+5x2"},
		{[]float64{0, 10, 20, 30, 40}, 3, "0+10x2 stale"},
		{[]float64{5}, -1, "5"},
		{[]float64{0, 10, 10, 10}, -1, "0+10x1 10+0x1"},
		{[]float64{math.NaN(), math.NaN(), 1, 2}, -1, "_x2 1+1x1"},
		{[]float64{math.NaN(), 1, 3}, 2, "_ 1 stale"},
	} {
		if got := encode(tc.v, tc.staleAt); got != tc.want {
			t.Errorf("encode(%v, %d) = %q, want %q", tc.v, tc.staleAt, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	out := `Unit Testing:  x.yml
  FAILED:
    expr: "...", time: 9m,
        exp: nil
        got: {alertname="NodePingNodeUnreachable", alertstate="firing", case="6", node="node-10", severity="critical", zone="zone-a"} 3.45E+02, {case="6"} -1E+00
    expr: "...", time: 9m,
        exp: nil
        got: {case="7"} -1E+00
`
	fired, ids, err := parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !ids[6] || !ids[7] || len(ids) != 2 {
		t.Errorf("ids = %v", ids)
	}
	if len(fired[6]) != 1 || fired[6][0].Key() != `NodePingNodeUnreachable{node="node-10"}` || fired[6][0].At != 345 {
		t.Errorf("fired = %+v", fired)
	}
	if _, _, err := parse([]byte("  FAILED:\n    err: bad rule\n")); err == nil {
		t.Error("a promtool error was not reported")
	}
}

func TestScore(t *testing.T) {
	c := FullMesh("3", NewNodes(3, 0, 0))
	fault := float64(FaultStep * StepSeconds)
	want := Alert{Name: "NodePingNodeUnreachable", Labels: map[string]string{"node": "node-1"}}
	cases := []Case{
		{ID: 1, Class: "a", Clean: true, Cluster: c, Want: []Alert{want}},
		{ID: 2, Class: "a", Clean: true, Cluster: c, Want: []Alert{want}},
		{ID: 3, Class: "quiet", Cluster: c},
	}
	other := Alert{Name: "NodePingPairLoss", Labels: map[string]string{"source_node": "node-2", "destination_node": "node-3"}}
	fired := map[int][]Fired{
		1: {{Alert: want, At: fault + 45}, {Alert: other, At: fault + 60}},
		2: {{Alert: want, At: fault - 15}}, // before the fault: false, and the case is missed
		3: {{Alert: other, At: fault + 15}},
	}
	scores, _ := Score(cases, fired, []Class{{Name: "a", Clean: true}, {Name: "quiet", Silence: true}})
	a, q := scores[0], scores[1]
	if a.Cases != 2 || a.Detected != 1 || a.Right != 1 || a.Wrong != 2 || a.Median() != 45 {
		t.Errorf("class a: %+v", a)
	}
	if q.Wrong != 1 || q.Recall() != 1 {
		t.Errorf("quiet: %+v", q)
	}
	tot := Total(scores)
	if tot.FalseInSilence != 1 || math.Abs(tot.Precision-0.25) > 1e-9 || tot.Recall != 0.5 || tot.CleanMedian != 45 {
		t.Errorf("totals: %+v", tot)
	}
}

func TestRingSubsetCoversZones(t *testing.T) {
	c := RingSubset("s", NewNodes(60, 5, 0), 8)
	observers := map[int]map[string]bool{}
	for s, ds := range c.Plan {
		if len(ds) < 8 {
			t.Errorf("%s probes %d nodes", c.Nodes[s].Name, len(ds))
		}
		zones := map[string]bool{}
		for _, d := range ds {
			if d == s {
				t.Errorf("%s probes itself", c.Nodes[s].Name)
			}
			zones[c.Nodes[d].Zone] = true
			if observers[d] == nil {
				observers[d] = map[string]bool{}
			}
			observers[d][c.Nodes[s].Zone] = true
		}
		if len(zones) < 5 {
			t.Errorf("%s probes %d zones", c.Nodes[s].Name, len(zones))
		}
	}
	for d := range c.Nodes {
		if len(observers[d]) < 2 {
			t.Errorf("%s is observed from %d zones", c.Nodes[d].Name, len(observers[d]))
		}
	}
}

// campaign draws n cases of all the classes from seed on clusters, runs them through the shipped
// rules with promtool in batches of batch, scraped and evaluated every scrape seconds, logs the
// report and returns its totals.
func campaign(t *testing.T, promtool string, seed uint64, n int, clusters []Cluster, batch, scrape int) Totals {
	t.Helper()
	classes := Classes()
	cases := Generate(seed, n, clusters, classes)
	for i := range cases {
		cases[i].Scrape = scrape
	}
	fired, err := Run(context.Background(), Options{Promtool: promtool, RulesPath: "../../manifests/rules/nodeping.rules.yml", Dir: t.TempDir(), Batch: batch, Parallel: 2}, cases)
	if err != nil {
		t.Fatal(err)
	}
	scores, outcomes := Score(cases, fired, classes)
	var b strings.Builder
	tot := Report(&b, scores, outcomes)
	t.Log("\n" + b.String())
	return tot
}

// TestShortCampaign is the default suite's seeded campaign: every class on the 12-node cluster
// (3 zones, 2 nodes without one), through the shipped rules, against the goals of issue 12. The
// long campaign (scripts/test-long) adds the 38-node and 60-node subset clusters.
func TestShortCampaign(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool not installed (apt-get install prometheus)")
	}
	if testing.Short() {
		t.Skip("skipping the campaign in -short mode")
	}
	for _, scrape := range []int{15, 30} {
		t.Run(fmt.Sprintf("scrape=%ds", scrape), func(t *testing.T) {
			t.Parallel()
			tot := campaign(t, promtool, 2, len(Classes()), []Cluster{FullMesh("12n-3z", NewNodes(12, 3, 2))}, 5, scrape)
			if os.Getenv("NODEPING_CAMPAIGN_LENIENT") != "" {
				return
			}
			if tot.Precision < 0.98 || tot.Recall < 0.95 || tot.FalseInSilence != 0 || !(tot.CleanMedian <= 60) || !(tot.GrayWorst <= 120) {
				t.Errorf("goals missed: precision %.3f (>= 0.98), recall %.3f (>= 0.95), false alerts in silent runs %d (0), clean median %.0fs (<= 60), gray worst %.0fs (<= 120)",
					tot.Precision, tot.Recall, tot.FalseInSilence, tot.CleanMedian, tot.GrayWorst)
			}
		})
	}
}

// TestScrapeStride: a case scraped every 30s renders every other cycle's counters, at a 30s
// interval, and a series that goes stale ends at the first scrape at or after that step.
func TestScrapeStride(t *testing.T) {
	c := FullMesh("3", NewNodes(3, 0, 0))
	cs := Case{ID: 1, Cluster: c, Seed: 1, Scrape: 30, Effects: Effects{Silent: map[int]bool{0: true}}}
	g := cs.Group()
	if !strings.Contains(g, "  - interval: 30s\n") {
		t.Errorf("group interval: %.200s", g)
	}
	if f := File("r.yml", []Case{cs}); !strings.Contains(f, "evaluation_interval: 30s\n") {
		t.Errorf("file: %.200s", f)
	}
	for _, line := range cs.Series() {
		values := line[strings.Index(line, "values: '")+len("values: '") : len(line)-1]
		n := 0
		for _, part := range strings.Fields(values) {
			if part == "stale" {
				continue
			}
			if i := strings.LastIndex(part, "x"); i > 0 {
				var k int
				fmt.Sscanf(part[i+1:], "%d", &k)
				n += k + 1
			} else {
				n++
			}
		}
		want := Steps/2 + 1 // samples at 0, 30s, ..., 9m
		if strings.Contains(line, `source_node="node-1"`) {
			want = FaultStep / 2 // stale from the fault's scrape on (lag 0 or 1 step)
			if !strings.HasSuffix(values, "stale") {
				t.Errorf("silent node's series does not go stale: %s", values)
			}
			if n != want && n != want+1 {
				t.Errorf("silent node's series has %d samples, want %d or %d: %s", n, want, want+1, values)
			}
			continue
		}
		if n != want {
			t.Errorf("%d samples, want %d: %s", n, want, line)
		}
	}
}

// TestLongCampaign is scripts/test-long's campaign: 300 cases on every cluster shape, seed 1, at
// a 15s and a 30s scrape and evaluation interval, against the goals docs/alerts.md gives.
// It takes promtool a CPU-hour or so.
func TestLongCampaign(t *testing.T) {
	if os.Getenv("NODEPING_LONG_CAMPAIGN") == "" {
		t.Skip("skipping: set NODEPING_LONG_CAMPAIGN=1 (scripts/test-long does)")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (apt-get install prometheus)")
	}
	for _, scrape := range []int{15, 30} {
		t.Run(fmt.Sprintf("scrape=%ds", scrape), func(t *testing.T) {
			tot := campaign(t, promtool, 1, 300, Clusters(), 8, scrape)
			if tot.Precision < 0.99 || tot.Recall < 0.98 || tot.FalseInSilence != 0 || !(tot.CleanMedian <= 60) || !(tot.LatencyMedian <= 90) {
				t.Errorf("goals missed: precision %.3f (>= 0.99), recall %.3f (>= 0.98), false alerts in silent runs %d (0), clean median %.0fs (<= 60), latency median %.0fs (<= 90)",
					tot.Precision, tot.Recall, tot.FalseInSilence, tot.CleanMedian, tot.LatencyMedian)
			}
		})
	}
}

func TestScaleRules(t *testing.T) {
	in := "rate(x[1m]) [2m:15s] offset 5m\n        for: 30s\n    interval: 1m\n  time() - y > 120"
	want := "rate(x[10s]) [20s:2500ms] offset 50s\n        for: 5s\n    interval: 10s\n  time() - y > 120"
	if got := ScaleRules(in, 6); got != want {
		t.Errorf("ScaleRules:\ngot  %q\nwant %q", got, want)
	}
}

// TestProbeSeries: a case that runs every probe renders each family with the labels the agent
// writes (those of internal/rulestest's scenarios), and only the families the case runs.
func TestProbeSeries(t *testing.T) {
	c := FullMesh("3", NewNodes(3, 1, 0))
	all := Case{ID: 1, Cluster: c, Seed: 1, Probes: Probes{TCP: true, UDP: true, DNS: true, External: 1, Files: true}}
	series := strings.Join(all.Series(), "\n")
	for _, want := range []string{
		`nodeping_packets_sent_total{instance="node-1:9100",job="node",source_node="node-1",source_zone="zone-a",destination_node="node-2",destination_zone="zone-a",destination_ip="198.18.0.2",ip_family="ipv4",protocol="tcp"}`,
		`nodeping_packets_received_total{instance="node-1:9100",job="node",source_node="node-1",source_zone="zone-a",destination_node="node-2",destination_zone="zone-a",destination_ip="198.18.0.2",ip_family="ipv4",protocol="udp"}`,
		`nodeping_dns_responses_total{instance="node-1:9100",job="node",source_node="node-1",resolver="10.96.0.10:53",name="kubernetes.default.svc.cluster.local.",rcode="NOERROR"}`,
		`nodeping_dns_request_duration_seconds_sum{instance="node-1:9100",job="node",source_node="node-1",resolver="10.96.0.10:53"}`,
		`nodeping_dns_request_duration_seconds_count{instance="node-1:9100",job="node",source_node="node-1",resolver="10.96.0.10:53"}`,
		`nodeping_external_packets_sent_total{instance="node-1:9100",job="node",source_node="node-1",source_zone="zone-a",destination_name="registry",destination_host="registry.example.org",destination_ip="192.0.2.80",ip_family="ipv4",protocol="icmp"}`,
		`nodeping_last_write_timestamp_seconds{instance="node-1:9100",job="node"}`,
		`node_textfile_scrape_error{instance="node-1:9100",job="node"}`,
		`node_exporter_build_info{instance="node-1:9100",job="node",version="1.8.2"}`,
	} {
		if !strings.Contains(series, "'"+want+"'") {
			t.Errorf("no series %s", want)
		}
	}
	icmp := Case{ID: 1, Cluster: c, Seed: 1}
	for _, line := range icmp.Series() {
		if !strings.Contains(line, `protocol="icmp"`) || strings.Contains(line, "external") {
			t.Errorf("an ICMP-only case renders %s", line)
		}
	}
	// A node-exporter pointed at another directory: no nodeping series from the start, its own
	// series throughout.
	gone := Case{ID: 1, Cluster: c, Seed: 1, FromStart: true, Probes: Probes{DNS: true, Files: true}, Effects: Effects{NoFiles: true, NoDir: true}}
	for _, line := range gone.Series() {
		if strings.Contains(line, "nodeping_") {
			t.Errorf("a case without files renders %s", line)
		}
	}
}
