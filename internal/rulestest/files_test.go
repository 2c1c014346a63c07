package rulestest

import (
	"fmt"
	"strings"
)

// agentSeries renders one agent's file as node-exporter serves it, 41 samples 15s apart: the
// file's mtime, the agent's own write timestamp and its ICMP pair to peer. frozenAt >= 0 is
// the step from which the agent writes nothing more (the file stays, its values frozen).
func agentSeries(node, peer, file string, frozenAt int) string {
	ts := "0+15x40"
	counter := "0+10x40"
	if frozenAt >= 0 {
		ts = fmt.Sprintf("0+15x%d %dx%d", frozenAt, 15*frozenAt, 40-frozenAt)
		counter = fmt.Sprintf("0+10x%d %dx%d", frozenAt, 10*frozenAt, 40-frozenAt)
	}
	inst := fmt.Sprintf(`instance="%s:9100",job="node"`, node)
	pair := fmt.Sprintf(`%s,source_node=%q,destination_node=%q,destination_ip="198.18.0.9",ip_family="ipv4",protocol="icmp"`, inst, node, peer)
	var b strings.Builder
	fmt.Fprintf(&b, "      - series: 'node_textfile_mtime_seconds{file=\"%s\",%s}'\n        values: '%s'\n", file, inst, ts)
	fmt.Fprintf(&b, "      - series: 'nodeping_last_write_timestamp_seconds{%s}'\n        values: '%s'\n", inst, ts)
	fmt.Fprintf(&b, "      - series: 'nodeping_packets_sent_total{%s}'\n        values: '%s'\n", pair, counter)
	fmt.Fprintf(&b, "      - series: 'nodeping_packets_received_total{%s}'\n        values: '%s'\n", pair, counter)
	return b.String()
}

// staleTest: for every file name the agent ships with, node-1's agent freezes at 3m30s (its
// file stays, no longer rewritten) while node-2 keeps probing it and node-1 still answers:
// one NodePingTextfileStale naming node-1, and no NodePingAgentMissing for the same node.
func staleTest() string {
	const dir = "/var/lib/node_exporter/textfile_collector/"
	var b strings.Builder
	b.WriteString(fileHeaderEvery("One agent stops writing its file at 3m30s (it crashed and left it), another keeps writing: one\n# NodePingTextfileStale naming the node, and no NodePingAgentMissing, whatever the file is called\n# (nodeping.prom, Flant's node-ping_<node>.prom, any --textfile-name).", "15s")) // its file ages are asserted to the scrape
	for _, tc := range []struct{ name, file1, file2 string }{
		{"default name", dir + "nodeping.prom", dir + "nodeping.prom"},
		{"flant-compat name", "/var/run/node-exporter-textfile/node-ping_node-1.prom", "/var/run/node-exporter-textfile/node-ping_node-2.prom"},
		{"--textfile-name", dir + "probes.prom", dir + "probes.prom"},
	} {
		fmt.Fprintf(&b, "  # %s\n  - interval: 15s\n    input_series:\n", tc.name)
		b.WriteString(agentSeries("node-1", "node-2", tc.file1, 14))
		b.WriteString(agentSeries("node-2", "node-1", tc.file2, -1))
		b.WriteString(`    alert_rule_test:
      - eval_time: 4m45s
        alertname: NodePingTextfileStale
        exp_alerts: []
      - eval_time: 7m15s
        alertname: NodePingTextfileStale
        exp_alerts:
          - exp_labels:
              instance: "node-1:9100"
              job: "node"
              node: "node-1"
              severity: "warning"
            exp_annotations:
              description: "The agent on node-1:9100 (node node-1) is dead, stuck or cannot write its textfile, and node-exporter serves what it wrote last: the node is not being probed from there. No NodePingAgentMissing fires for it."
              runbook_url: "` + runbook + `nodepingtextfilestale"
              summary: "nodeping's file on node-1:9100 was last written 3m 45s ago"
    promql_expr_test:
      - expr: 'ALERTS{alertstate="firing"}'
        eval_time: 9m
        exp_samples:
          - labels: 'ALERTS{alertname="NodePingTextfileStale",alertstate="firing",instance="node-1:9100",job="node",node="node-1",severity="warning"}'
            value: 1
`)
	}
	// An agent that probes no peer over ICMP (every other probe only): named by its instance.
	b.WriteString(`  # an agent without ICMP pairs
  - interval: 15s
    input_series:
      - series: 'nodeping_last_write_timestamp_seconds{instance="node-1:9100",job="node"}'
        values: '0+15x14 210x26'
    alert_rule_test:
      - eval_time: 7m15s
        alertname: NodePingTextfileStale
        exp_alerts:
          - exp_labels:
              instance: "node-1:9100"
              job: "node"
              severity: "warning"
            exp_annotations:
              description: "The agent on node-1:9100 is dead, stuck or cannot write its textfile, and node-exporter serves what it wrote last: the node is not being probed from there. No NodePingAgentMissing fires for it."
              runbook_url: "` + runbook + `nodepingtextfilestale"
              summary: "nodeping's file on node-1:9100 was last written 3m 45s ago"
`)
	return b.String()
}

// noDataTest: node-exporters scraped but no nodeping series, from the start (the textfile
// directory is not the agents') or from 5m on (node-exporter redeployed with another
// directory): one NodePingNoData; with the agents' files read, none.
func noDataTest() string {
	exporters := func(scrapeError string) string {
		var b strings.Builder
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(&b, "      - series: 'node_textfile_scrape_error{instance=\"node-%d:9100\",job=\"node\"}'\n        values: '%s'\n", i, scrapeError)
			fmt.Fprintf(&b, "      - series: 'node_exporter_build_info{instance=\"node-%d:9100\",job=\"node\",version=\"1.8.2\"}'\n        values: '1x40'\n", i)
		}
		return b.String()
	}
	firing := func(at string, unreadable int) string {
		return fmt.Sprintf(`      - eval_time: %s
        alertname: NodePingNoData
        exp_alerts:
          - exp_labels:
              severity: "critical"
            exp_annotations:
              summary: "3 node-exporters are scraped, and none serves any nodeping series"
              description: "The nodeping rules are loaded and Prometheus scrapes 3 node-exporters (%d of them cannot read their textfile directory), but no agent's file reaches Prometheus: no nodeping alert can fire. Usually node-exporter's --collector.textfile.directory is not the agents' --textfile-dir, the node-exporter Prometheus scrapes is not the one reading that directory, or the file name does not end in .prom (runbook)."
              runbook_url: "%snodepingnodata"
`, at, unreadable, runbook)
	}
	var b strings.Builder
	b.WriteString(fileHeaderEvery("node-exporters are scraped but serve no nodeping series: one NodePingNoData after 2 minutes.", "15s")) // asserted to the scrape
	b.WriteString("  # node-exporter reads a directory that does not exist: no nodeping series from the start\n  - interval: 15s\n    input_series:\n")
	b.WriteString(exporters("1x40"))
	b.WriteString("    alert_rule_test:\n      - eval_time: 1m45s\n        alertname: NodePingNoData\n        exp_alerts: []\n")
	b.WriteString(firing("2m15s", 3))
	b.WriteString("  # node-exporter reads an existing directory the agents do not write to\n  - interval: 15s\n    input_series:\n")
	b.WriteString(exporters("0x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(firing("3m", 0))
	b.WriteString("  # the agents' files are read until 5m, then node-exporter reads another directory\n  - interval: 15s\n    input_series:\n")
	b.WriteString(exporters("0x40"))
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "      - series: 'nodeping_last_write_timestamp_seconds{instance=\"node-%d:9100\",job=\"node\"}'\n        values: '0+15x20 stale'\n", i)
	}
	b.WriteString("    alert_rule_test:\n      - eval_time: 5m\n        alertname: NodePingNoData\n        exp_alerts: []\n      - eval_time: 6m45s\n        alertname: NodePingNoData\n        exp_alerts: []\n")
	b.WriteString(firing("7m30s", 0))
	b.WriteString("    promql_expr_test:\n      - expr: 'ALERTS{alertstate=\"firing\"}'\n        eval_time: 4m\n        exp_samples: []\n")
	return b.String()
}
