package rulestest

import (
	"fmt"
	"strings"
	"testing"
)

// The controller's alerts, each in a file of its own: a few series, at most 20 minutes.

const (
	// ctl and ctl2 are two controller replicas as the ServiceMonitor's job scrapes them.
	ctl  = `instance="10.0.0.5:8080",job="nodeping-controller"`
	ctl2 = `instance="10.0.0.6:8080",job="nodeping-controller"`

	downDescription       = "The nodeping controller was scraped in the last day (or its ServiceMonitor's targets exist) but no replica serves its metrics now: nothing keeps the nodes list in step with the Nodes, so joining nodes are not probed and departed ones show as lost. Agents keep probing the last list. Check the nodeping-controller Deployment's pods and their logs (runbook)."
	noLeaderDescription   = "%d controller replicas are scraped but none has held the leader Lease for 5 minutes: none writes the nodes list, so joining nodes are not probed and departed ones show as lost. Check the replicas' logs for the Lease (RBAC on leases, the API server's reachability) (runbook)."
	tooLargeDescription   = "The controller refused %s writes of the nodes list in the last 5 minutes because the list is over a ConfigMap's 1 MiB: the ConfigMap keeps the last list written, so joining nodes are not probed and departed ones show as lost. Shorten what the list holds (external targets, node names) or split the cluster's monitoring (runbook)."
	staleDescription      = "The leading nodeping controller has not synced the nodes list with the Nodes for %[1]s (it checks at least every 5 minutes): its writes or reads of the ConfigMap fail, so joining nodes are not probed and departed ones show as lost. Check the leader's log for 'sync failed' (RBAC on configmaps, the API server) (runbook)."
	staleSummary          = "The nodes list was last known to match the Nodes %s ago"
	tooLargeSummary       = "The nodes list is %sB, over a ConfigMap's 1 MiB"
	noLeaderSummary       = "%d nodeping controller replicas run, and none leads"
	downSummary           = "No nodeping controller replica is scraped"
	tooLargeSeries        = "nodeping_controller_configmap_writes_total{%s,operation=\"update\",result=\"too_large\"}"
	controllerLeaderSerie = "nodeping_controller_leader{%s}"
)

// series renders one input series.
func series(name, labels, values string) string {
	return fmt.Sprintf("      - series: '%s'\n        values: '%s'\n", fmt.Sprintf(name, labels), values)
}

// group opens a test group with its comment.
func group(doc string) string {
	return "  # " + doc + "\n  - interval: 15s\n    input_series:\n"
}

// none expects no alert name at at.
func none(name, at string) string {
	return fmt.Sprintf("      - eval_time: %s\n        alertname: %s\n        exp_alerts: []\n", at, name)
}

// firing expects one alert name (a warning, aggregated: no other label) at at.
func firing(name, at, summary, description string) string {
	return alertWith(at, name, map[string]string{"severity": "warning"}, summary, description)
}

func controllerDownTest() string {
	const name = "NodePingControllerDown"
	var b strings.Builder
	b.WriteString(fileHeader("NodePingControllerDown: fires when the controller's scrape job has targets and none is up, or when\n# replicas were scraped and are gone; silent where the controller is not scraped at all."))
	b.WriteString(group("the ServiceMonitor's targets exist, none ever came up (a crash loop from the start)"))
	b.WriteString(series("up{%s}", ctl, "0x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "4m45s"))
	b.WriteString(firing(name, "5m15s", downSummary, downDescription))
	b.WriteString(group("one replica scraped under another job (annotations) until 3m, then gone: no target left"))
	b.WriteString(series(controllerLeaderSerie, `instance="10.0.0.5:8080",job="kubernetes-service-endpoints"`, "1x11 stale"))
	b.WriteString(series("up{%s}", `instance="10.0.0.5:8080",job="kubernetes-service-endpoints"`, "1x11 stale"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "2m45s"))
	b.WriteString(none(name, "7m45s"))
	b.WriteString(firing(name, "8m15s", downSummary, downDescription))
	b.WriteString(group("the standalone overlay: node-exporters scraped, the controller never: no alert"))
	b.WriteString(series("up{%s}", `instance="node-1:9100",job="node"`, "1x40"))
	b.WriteString(series("node_exporter_build_info{%s}", `instance="node-1:9100",job="node",version="1.8.2"`, "1x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "10m"))
	b.WriteString(group("two replicas scraped, one leads: no alert"))
	b.WriteString(series("up{%s}", ctl, "1x40"))
	b.WriteString(series("up{%s}", ctl2, "1x40"))
	b.WriteString(series(controllerLeaderSerie, ctl, "1x40"))
	b.WriteString(series(controllerLeaderSerie, ctl2, "0x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "10m"))
	return b.String()
}

func controllerNoLeaderTest() string {
	const name = "NodePingControllerNoLeader"
	var b strings.Builder
	b.WriteString(fileHeader("NodePingControllerNoLeader: two replicas scraped and neither leads from 1m on fires after 5\n# minutes; a handover, or no controller scraped at all, does not."))
	b.WriteString(group("the leader loses its Lease at 1m and nobody takes it"))
	b.WriteString(series(controllerLeaderSerie, ctl, "1x3 0x36"))
	b.WriteString(series(controllerLeaderSerie, ctl2, "0x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "5m45s"))
	b.WriteString(firing(name, "6m15s", fmt.Sprintf(noLeaderSummary, 2), fmt.Sprintf(noLeaderDescription, 2)))
	b.WriteString(group("a handover: the leader's pod leaves at 3m, the follower leads 15s later"))
	b.WriteString(series(controllerLeaderSerie, ctl, "1x11 stale"))
	b.WriteString(series(controllerLeaderSerie, ctl2, "0x12 1x28"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "10m"))
	b.WriteString(group("no controller scraped: no alert"))
	b.WriteString(series("up{%s}", `instance="node-1:9100",job="node"`, "1x40"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "10m"))
	return b.String()
}

func nodesListTooLargeTest() string {
	const name = "NodePingNodesListTooLarge"
	var b strings.Builder
	b.WriteString(fileHeader("NodePingNodesListTooLarge: the controller refuses a write once a minute from 2m15s to 6m15s (the\n# list over 1 MiB), then the list fits again; a counter that stays at 0 raises nothing."))
	b.WriteString(group("refused writes from 2m15s to 6m15s"))
	b.WriteString(series(tooLargeSeries, ctl, "0x8 1x3 2x3 3x3 4x3 5x40"))
	b.WriteString(series("nodeping_controller_nodes_list_bytes{%s}", ctl, "1000000x8 1100000x60"))
	b.WriteString(series(controllerLeaderSerie, ctl, "1x70"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "2m"))
	b.WriteString(none(name, "3m"))
	b.WriteString(firing(name, "4m", fmt.Sprintf(tooLargeSummary, "1.049Mi"), fmt.Sprintf(tooLargeDescription, "2")))
	b.WriteString(none(name, "12m"))
	b.WriteString(group("every write fits"))
	b.WriteString(series(tooLargeSeries, ctl, "0x40"))
	b.WriteString(series("nodeping_controller_configmap_writes_total{%s,operation=\"update\",result=\"ok\"}", ctl, "0x8 1x32"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "10m"))
	return b.String()
}

func nodesListStaleTest() string {
	const name = "NodePingNodesListStale"
	leader := func(b *strings.Builder, lastSync string) {
		b.WriteString(series(controllerLeaderSerie, ctl, "1x80"))
		b.WriteString(series("process_start_time_seconds{%s}", ctl, "0x80"))
		b.WriteString(series("nodeping_controller_last_sync_timestamp_seconds{%s}", ctl, lastSync))
	}
	var b strings.Builder
	b.WriteString(fileHeader("NodePingNodesListStale: the leader's last sync over 15 minutes old, whether it synced once and\n# then failed or never synced since it started; not while it resyncs, nor while the list is refused\n# for its size."))
	b.WriteString(group("the leader synced at 1m and 2m, then failed; a follower (never synced) and a node-exporter do\n  # not count"))
	leader(&b, "0x3 60x3 120x80")
	b.WriteString(series(controllerLeaderSerie, ctl2, "0x80"))
	b.WriteString(series("process_start_time_seconds{%s}", ctl2, "900x80"))
	b.WriteString(series("nodeping_controller_last_sync_timestamp_seconds{%s}", ctl2, "0x80"))
	b.WriteString(series("process_start_time_seconds{%s}", `instance="node-1:9100",job="node"`, "0x80"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "17m45s"))
	b.WriteString(firing(name, "18m30s", fmt.Sprintf(staleSummary, "16m 30s"), fmt.Sprintf(staleDescription, "16m 30s")))
	b.WriteString(group("the leader never synced since it started at 0"))
	leader(&b, "0x80")
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "15m45s"))
	b.WriteString(firing(name, "17m", fmt.Sprintf(staleSummary, "17m 0s"), fmt.Sprintf(staleDescription, "17m 0s")))
	b.WriteString(group("the leader resyncs every 5 minutes: no alert"))
	leader(&b, "0x3 60x20 360x20 660x20 960x20")
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "19m"))
	b.WriteString(group("the list is refused for its size from 1m on: NodePingNodesListTooLarge, not this"))
	leader(&b, "0x3 60x80")
	b.WriteString(series(tooLargeSeries, ctl, "0x4 1+1x76"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "19m"))
	return b.String()
}

var controllerTests = map[string]func() string{
	"controller-down.yml":      controllerDownTest,
	"controller-no-leader.yml": controllerNoLeaderTest,
	"nodes-list-too-large.yml": nodesListTooLargeTest,
	"nodes-list-stale.yml":     nodesListStaleTest,
}

func TestControllerAlerts(t *testing.T) { checkGenerated(t, controllerTests) }
