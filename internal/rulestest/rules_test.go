// Package rulestest generates promtool unit tests for the shipped Prometheus rules from fault
// scenarios, keeps them as golden files in manifests/rules/tests/ (runnable by hand with
// promtool test rules), and runs them. The counters come from internal/rulecampaign (agents'
// 15s cycles, seeded), on full-mesh clusters and on a 16-node, 4-zone cluster probing a K=8
// subset; the probe plan is data (rulecampaign.Cluster.Plan), so any planner can be swapped in.
package rulestest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rc "github.com/nodeping/nodeping/internal/rulecampaign"
	"github.com/nodeping/nodeping/internal/testutil/golden"
)

var update = flag.Bool("update", false, "rewrite the generated promtool tests")

const (
	rulesDir = "../../manifests/rules"
	testsDir = rulesDir + "/tests"
)

var severity = map[string]string{
	"NodePingNodeUnreachable": "critical", "NodePingNodeIsolated": "critical", "NodePingZoneIsolated": "critical",
	"NodePingZoneLinkDegraded": "critical", "NodePingPairLoss": "warning", "NodePingHighLatency": "warning",
	"NodePingZoneLinkLatency": "warning", "NodePingMTUBlackhole": "warning", "NodePingAgentMissing": "warning",
}

type scenario struct {
	name, doc string
	rc.Case
	// annotations, when set, are the exact annotations of the first due alert, checked with an
	// alert_rule_test 3m45s into the fault.
	annotations map[string]string
}

// fullLabels are the labels a due alert fires with: its identifying labels, the zones that go
// with them, and its severity.
func fullLabels(c rc.Cluster, a rc.Alert) map[string]string {
	zone := map[string]string{}
	for _, n := range c.Nodes {
		zone[n.Name] = n.Zone
	}
	l := map[string]string{"alertname": a.Name, "alertstate": "firing", "severity": severity[a.Name]}
	for k, v := range a.Labels {
		l[k] = v
	}
	switch a.Name {
	case "NodePingNodeUnreachable", "NodePingNodeIsolated", "NodePingHighLatency", "NodePingMTUBlackhole":
		l["zone"] = zone[a.Labels["node"]]
	case "NodePingPairLoss":
		l["source_zone"], l["destination_zone"] = zone[a.Labels["source_node"]], zone[a.Labels["destination_node"]]
	}
	for k, v := range l {
		if v == "" {
			delete(l, k)
		}
	}
	return l
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, l[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (sc scenario) render() string {
	var b strings.Builder
	b.WriteString(header(fmt.Sprintf("%s\n# Here: %s on %s, background loss %.1f%%.", sc.doc, sc.Detail, sc.Cluster.Name, 100*sc.Background)))
	b.WriteString(strings.Join(sc.Series(), "\n"))
	fault := sc.Fault() * rc.StepSeconds
	b.WriteString("\n    promql_expr_test:\n")
	var want []string
	for _, a := range sc.Want {
		want = append(want, labelString(fullLabels(sc.Cluster, a)))
	}
	sort.Strings(want)
	exactly := func(comment string, at int) {
		fmt.Fprintf(&b, "      # %s: exactly these.\n      - expr: 'ALERTS{alertstate=\"firing\"}'\n        eval_time: %ds\n        exp_samples:", comment, at)
		if len(want) == 0 {
			b.WriteString(" []\n")
			return
		}
		b.WriteString("\n")
		for _, w := range want {
			fmt.Fprintf(&b, "          - labels: 'ALERTS%s'\n            value: 1\n", w)
		}
	}
	if sc.FromStart {
		exactly("The fault is there from the first sample, with no baseline yet: named within 2 minutes", 120)
	} else {
		fmt.Fprintf(&b, "      # Before the fault (at %ds): no alert.\n      - expr: 'ALERTS{alertstate=\"firing\"}'\n        eval_time: %ds\n        exp_samples: []\n", fault, fault-15)
	}
	exactly("3m45s into the fault", fault+225)
	if sc.annotations != nil {
		a := sc.Want[0]
		l := fullLabels(sc.Cluster, a)
		delete(l, "alertname")
		delete(l, "alertstate")
		fmt.Fprintf(&b, "    alert_rule_test:\n      - eval_time: %ds\n        alertname: %s\n        exp_alerts:\n          - exp_labels:\n", fault+225, a.Name)
		writeMap(&b, l, "              ")
		b.WriteString("            exp_annotations:\n")
		writeMap(&b, sc.annotations, "              ")
	}
	return b.String()
}

func writeMap(b *strings.Builder, m map[string]string, indent string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s%s: %q\n", indent, k, m[k])
	}
}

// caseOf builds a scenario's counters with the named campaign class, on cluster c, with a
// fixed seed: the class picks the culprit, and Want says what must fire.
func caseOf(t testing.TB, class string, c rc.Cluster, seed uint64, bg float64) rc.Case {
	for _, cl := range rc.Classes() {
		if cl.Name != class {
			continue
		}
		for s := seed; s < seed+100; s++ {
			cases := rc.Generate(s, 1, []rc.Cluster{c}, []rc.Class{cl})
			if len(cases) == 1 {
				cases[0].Background = bg
				return cases[0]
			}
		}
	}
	t.Fatalf("no case of class %s on %s", class, c.Name)
	return rc.Case{}
}

const runbook = "https://github.com/nodeping/nodeping/blob/main/docs/alerts.md#"

func scenarios(t testing.TB) []scenario {
	six := rc.FullMesh("6n-3z", rc.NewNodes(6, 3, 0))
	nozone := rc.FullMesh("22n-0z", rc.NewNodes(22, 0, 0))
	subset := rc.RingSubset("16n-4z-k8", rc.NewNodes(16, 4, 0), 8)
	ten := rc.FullMesh("10n-3z", rc.NewNodes(10, 3, 2))
	sc := func(name, doc, class string, c rc.Cluster, seed uint64, bg float64) scenario {
		return scenario{name: name, doc: doc, Case: caseOf(t, class, c, seed, bg)}
	}
	out := []scenario{
		sc("healthy", "A healthy 10-node cluster (3 zones, 2 nodes without one) with 0.5% background loss and jittery round trips: no alert.", "healthy", ten, 1, 0.005),
		sc("blackholed-node", "A node blackholed (and no longer scraped): one NodePingNodeUnreachable; no pair or zone alert.", "node-blackhole", six, 1, 0),
		sc("lossy-node", "A node losing 5-30% each way: one NodePingNodeUnreachable.", "node-lossy-5-30pct", six, 4, 0.002),
		sc("gray-node", "A node losing 1-3% each way, in a 10-node cluster with 0.2% background loss: one NodePingNodeUnreachable, no pair alert.", "node-gray-1-3pct", ten, 1, 0.002),
		sc("gray-node-six", "A node losing 1-3% each way in a 6-node cluster: one NodePingNodeUnreachable. Its peers lose a full-size echo now and then too, which is no MTU black hole.", "node-gray-1-3pct", six, 7, 0.002),
		sc("isolated-node", "A node whose own echo requests are dropped while all reach it: one NodePingNodeIsolated.", "node-own-echoes-dropped", six, 1, 0),
		sc("zone-link", "The link between two zones is down: a NodePingZoneLinkDegraded each way, no node alert.", "zone-link-down", ten, 1, 0.002),
		sc("zone-link-lossy", "The link between two zones loses some echoes: a NodePingZoneLinkDegraded each way.", "zone-link-lossy", ten, 1, 0.002),
		sc("zone-partition", "A zone cut off from every other zone and from the nodes without a zone: one NodePingZoneIsolated, no node or zone-link alert.", "zone-partition", ten, 1, 0.002),
		sc("broken-pair", "One pair broken both ways: a NodePingPairLoss each way, nothing else.", "pair-lossy-both-ways", six, 3, 0),
		sc("one-way-pair", "One source loses echoes to one destination: one NodePingPairLoss.", "pair-lossy-one-way", ten, 2, 0.002),
		sc("two-nodes", "One node blackholed and another lossy at once: a NodePingNodeUnreachable for each, nothing for their healthy peers.", "two-node-faults", ten, 1, 0.002),
		sc("maintenance", "A cordoned node is unreachable (being drained, say): no alert.", "cordoned-blackhole", six, 1, 0),
		sc("mtu-blackhole", "Full-size packets to and from one node are lost, small ones pass: one NodePingMTUBlackhole.", "mtu-blackhole", six, 1, 0),
		sc("slow-node", "One node answers 2-20ms late: one NodePingHighLatency.", "node-latency", ten, 3, 0.002),
		sc("slow-zone-link", "Echoes between two zones are 2-20ms late: a NodePingZoneLinkLatency each way, no node alert.", "zone-link-latency", ten, 1, 0.002),
		sc("agent-missing", "A node's agent stops (or crashes) while the node still answers its peers: one NodePingAgentMissing.", "agent-missing", six, 1, 0),
		sc("isolated-source-large-cluster", "A 22-node cluster without zones; one node loses every destination. Deckhouse's NodePingPacketLoss (sum by destination_node > 5%) sees 1/21 of that per destination and never fires; NodePingNodeIsolated does.", "node-own-echoes-dropped", nozone, 1, 0),
		sc("blackholed-from-start", "A node blackholed from the first sample (nodeping, or a fresh Prometheus, started on a broken cluster): one NodePingNodeUnreachable within 2 minutes, with no baseline yet.", "node-blackhole-from-start", six, 1, 0.002),
		sc("lossy-from-start", "A node losing half or more of its echoes from the first sample, in a 10-node cluster: one NodePingNodeUnreachable within 2 minutes, with no baseline yet.", "node-lossy-50pct-from-start", ten, 1, 0.002),
		sc("subset-healthy", "16 nodes in 4 zones, each probing 8 ring neighbours plus one node of every zone it misses, 0.3% background loss, ICMP and MTU probes: no alert.", "healthy", subset, 1, 0.003),
		sc("subset-blackholed-node", "The 16-node subset cluster, one node blackholed: one NodePingNodeUnreachable from its observers.", "node-blackhole", subset, 1, 0.002),
		sc("subset-isolated-node", "The 16-node subset cluster, one node whose own echoes are dropped: one NodePingNodeIsolated.", "node-own-echoes-dropped", subset, 1, 0.002),
		sc("subset-zone-link", "The 16-node subset cluster, a zone link down: a NodePingZoneLinkDegraded each way.", "zone-link-down", subset, 1, 0.002),
		sc("subset-lossy-node", "The 16-node subset cluster, one node losing 5-30% each way: one NodePingNodeUnreachable.", "node-lossy-5-30pct", subset, 2, 0.002),
		sc("subset-maintenance", "The 16-node subset cluster, a cordoned node blackholed: only its own agent and the agents that probe it report it in maintenance, and that is enough: no alert.", "cordoned-blackhole", subset, 1, 0.002),
		sc("subset-gray-node", "The 16-node subset cluster with 0.3% background loss, one node losing 1-3% each way: one NodePingNodeUnreachable, no pair alert.", "node-gray-1-3pct", subset, 1, 0.003),
	}
	for i := range out {
		if out[i].name == "subset-healthy" {
			// ICMP and MTU only: the 10-node healthy scenario runs every probe, and this, the
			// largest file, would double with them.
			out[i].Probes = rc.Probes{MTU: true}
		}
		if out[i].name == "blackholed-node" {
			n := out[i].Want[0].Labels["node"]
			z := fullLabels(six, out[i].Want[0])["zone"]
			out[i].annotations = map[string]string{
				"summary":     fmt.Sprintf("Node %s loses 100%% of the echoes its peers send it", n),
				"description": fmt.Sprintf("5 sources observe %s (zone %s); over the last 2 minutes they lost 100%% of their echoes to it, against a cluster baseline of 0.1%%, and the loss is seen from its own zone and from others: the node or its link drops packets, not the network between zones. The alert's start time is when it began. Check the node's NIC, link and firewall (runbook).", n, z),
				"runbook_url": runbook + "nodepingnodeunreachable",
			}
		}
	}
	return out
}

func requirePromtool(t *testing.T) string {
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool not installed (apt-get install prometheus)")
	}
	return p
}

func TestRulesCheck(t *testing.T) {
	promtool := requirePromtool(t)
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(rulesDir, "nodeping.rules.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestRuleScenarios writes each scenario's promtool test (a golden file) and runs it.
func TestRuleScenarios(t *testing.T) {
	promtool := requirePromtool(t)
	names := map[string]bool{}
	for _, sc := range scenarios(t) {
		names[sc.name+".yml"] = true
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel() // promtool runs one file on one core
			path := filepath.Join(testsDir, sc.name+".yml")
			golden.Check(t, path, sc.render(), *update)
			if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", path, err, out)
			}
		})
	}
	// No stale golden file from a scenario that is gone.
	entries, err := os.ReadDir(testsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && !names[e.Name()] && !extraTests[e.Name()] && probeTests[e.Name()] == nil {
			if *update {
				os.Remove(filepath.Join(testsDir, e.Name()))
				continue
			}
			t.Errorf("%s is not generated by any scenario (go test -update removes it)", e.Name())
		}
	}
}

// header opens every promtool test file written here, up to its first input series; doc is its
// comment, "# " already written before its first line.
func header(doc string) string {
	return fileHeaderEvery(doc, "15s") + "  - interval: 15s\n    input_series:\n"
}

// fileHeader opens a hand-written promtool test file of several groups, up to its first group.
// These files evaluate the rules every 30s, kube-prometheus-stack's default, which the rules
// support: their alerts wait a minute or more, and half the evaluations halve promtool's time
// over their long timelines. The scenarios (header) evaluate every 15s, as the campaign does.
func fileHeader(doc string) string { return fileHeaderEvery(doc, "30s") }

func fileHeaderEvery(doc, every string) string {
	return "# Generated by internal/rulestest (go test ./internal/rulestest -update); do not edit.\n# " + doc + "\n" +
		"rule_files:\n  - ../nodeping.rules.yml\nevaluation_interval: " + every + "\ntests:\n"
}

// node1AgentAlert is the expected alert name (a warning) about node-1's agent at 17m, with its
// summary and description.
func node1AgentAlert(name, summary, description string) string {
	return `      - eval_time: 17m
        alertname: ` + name + `
        exp_alerts:
          - exp_labels:
              instance: "node-1:9100"
              job: "node"
              severity: "warning"
            exp_annotations:
              summary: "` + summary + `"
              description: "` + description + `"
              runbook_url: "` + runbook + strings.ToLower(name) + `"
`
}

// extraTests are golden files written by other tests here (probeTests are too).
var extraTests = map[string]bool{"textfile-stale.yml": true, "agent-errors.yml": true, "no-data.yml": true,
	"controller-down.yml": true, "controller-no-leader.yml": true, "nodes-list-too-large.yml": true, "nodes-list-stale.yml": true}

func TestTextfileAndAgentErrors(t *testing.T) {
	promtool := requirePromtool(t)
	stale := staleTest()
	noData := noDataTest()
	// One agent fails to write its file, or read its nodes list, on every cycle from 2m on; another
	// failed once (a ConfigMap swap, say): only the first alerts, after 10 minutes.
	errs := header("node-1's agent fails every write and every nodes-list read from 2m on; node-2's failed once each:\n# one NodePingTextfileWriteErrors and one NodePingNodesListErrors, for node-1.") + `      - series: 'nodeping_textfile_write_errors_total{instance="node-1:9100",job="node"}'
        values: '0x8 1+1x70'
      - series: 'nodeping_textfile_write_errors_total{instance="node-2:9100",job="node"}'
        values: '0x8 1x70'
      - series: 'nodeping_nodes_list_load_errors_total{instance="node-1:9100",job="node"}'
        values: '0x8 1+1x70'
      - series: 'nodeping_nodes_list_load_errors_total{instance="node-2:9100",job="node"}'
        values: '0x8 1x70'
    alert_rule_test:
      - eval_time: 10m
        alertname: NodePingTextfileWriteErrors
        exp_alerts: []
` + node1AgentAlert("NodePingTextfileWriteErrors", "The nodeping agent on node-1:9100 keeps failing to write its textfile",
		"nodeping_textfile_write_errors_total grew by 20 in the last 5 minutes and has kept growing for 10: node-exporter serves an old file (or none). Check the agent's log for 'cannot write textfile', the directory's free space and permissions (runbook).") +
		node1AgentAlert("NodePingNodesListErrors", "The nodeping agent on node-1:9100 keeps failing to read its nodes list",
			"nodeping_nodes_list_load_errors_total grew by 20 in the last 5 minutes and has kept growing for 10: the agent probes its last good list, so new nodes are not watched and removed ones show as lost. Check the agent's log and the nodes ConfigMap that the controller writes (runbook).")
	for name, text := range map[string]string{"textfile-stale.yml": stale, "agent-errors.yml": errs, "no-data.yml": noData} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(testsDir, name)
			golden.Check(t, path, text, *update)
			if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", path, err, out)
			}
		})
	}
}

// TestRunbooksExist checks that every alert's runbook_url points at a heading of docs/alerts.md.
func TestRunbooksExist(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(rulesDir, "nodeping.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "### ") {
			anchors[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "### ")))] = true
		}
	}
	var n int
	for _, line := range strings.Split(string(rules), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "- alert: ") {
			name := strings.TrimPrefix(line, "- alert: ")
			if !anchors[strings.ToLower(name)] {
				t.Errorf("alert %s has no '### %s' runbook in docs/alerts.md", name, name)
			}
		}
		if strings.HasPrefix(line, "runbook_url: ") {
			n++
			url := strings.Trim(strings.TrimPrefix(line, "runbook_url: "), `"`)
			if !strings.HasPrefix(url, runbook) || !anchors[strings.TrimPrefix(url, runbook)] {
				t.Errorf("runbook_url %s points at no heading of docs/alerts.md", url)
			}
		}
	}
	if n == 0 {
		t.Fatal("no runbook_url in the rules")
	}
}
