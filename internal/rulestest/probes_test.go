package rulestest

import (
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/internal/testutil/golden"
)

// The alerts of the probes beside ICMP (TCP, UDP, DNS, external targets), each in a file of its
// own: four nodes in two zones, full mesh, 9 minutes of hand-shaped counters.

// probeSteps is the number of 15s steps after the first sample (9 minutes).
const probeSteps = 36

type probeNode struct{ name, zone string }

var fourNodes = []probeNode{{"node-1", "zone-a"}, {"node-2", "zone-a"}, {"node-3", "zone-b"}, {"node-4", "zone-b"}}

func (n probeNode) inst() string { return fmt.Sprintf(`instance="%s:9100",job="node"`, n.name) }

func (n probeNode) ip() string { return "198.18.0." + strings.TrimPrefix(n.name, "node-") }

// counter renders a counter that grows by perStep every step, and stops growing from step
// stopFrom on (never when stopFrom < 0).
func counter(perStep, stopFrom int) string {
	if stopFrom < 0 || stopFrom >= probeSteps {
		return fmt.Sprintf("0+%dx%d", perStep, probeSteps)
	}
	if stopFrom == 0 {
		return fmt.Sprintf("0x%d", probeSteps)
	}
	return fmt.Sprintf("0+%dx%d %dx%d", perStep, stopFrom-1, perStep*stopFrom, probeSteps-stopFrom)
}

// pairCounters renders one pair's sent and received counters for protocol proto: perStep
// probes a step, every one answered until step lostFrom (never lost when lostFrom < 0).
func pairCounters(src, dst probeNode, proto string, perStep, lostFrom int) string {
	labels := fmt.Sprintf(`%s,source_node=%q,source_zone=%q,destination_node=%q,destination_zone=%q,destination_ip=%q,ip_family="ipv4",protocol=%q`,
		src.inst(), src.name, src.zone, dst.name, dst.zone, dst.ip(), proto)
	return series("nodeping_packets_sent_total{%s}", labels, counter(perStep, -1)) +
		series("nodeping_packets_received_total{%s}", labels, counter(perStep, lostFrom))
}

// mesh renders the ICMP pairs and the pairs of the port probes protos of the four nodes; lost
// says from which step a pair loses each protocol's probes (-1: never).
func mesh(lost func(src, dst probeNode, proto string) int, protos ...string) string {
	var b strings.Builder
	for _, src := range fourNodes {
		for _, dst := range fourNodes {
			if src == dst {
				continue
			}
			b.WriteString(pairCounters(src, dst, "icmp", 10, lost(src, dst, "icmp")))
			for _, proto := range protos {
				b.WriteString(pairCounters(src, dst, proto, 1, lost(src, dst, proto)))
			}
		}
	}
	return b.String()
}

// maintenance renders every agent's nodeping_node_maintenance for node, cordoned.
func maintenance(node string) string {
	var b strings.Builder
	for _, n := range fourNodes {
		b.WriteString(series("nodeping_node_maintenance{%s}", fmt.Sprintf(`%s,destination_node=%q,reason="cordoned"`, n.inst(), node), fmt.Sprintf("1x%d", probeSteps)))
	}
	return b.String()
}

// firingNode expects one alert name naming node (in zone) at at.
func firingNode(name, sev, node, zone, at, summary, description string) string {
	return alertWith(at, name, map[string]string{"node": node, "severity": sev, "zone": zone}, summary, description)
}

// alertWith expects exactly one alert name at at, with these labels and annotations (and its
// runbook).
func alertWith(at, name string, labels map[string]string, summary, description string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "      - eval_time: %s\n        alertname: %s\n        exp_alerts:\n          - exp_labels:\n", at, name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(&b, "              %s: \"%s\"\n", k, labels[k])
	}
	fmt.Fprintf(&b, "            exp_annotations:\n              summary: \"%s\"\n              description: \"%s\"\n              runbook_url: \"%s%s\"\n",
		summary, description, runbook, strings.ToLower(name))
	return b.String()
}

// onlyAlerts expects exactly the firing alerts given (as ALERTS label sets) at at.
func onlyAlerts(at string, labels ...string) string {
	s := fmt.Sprintf("    promql_expr_test:\n      - expr: 'ALERTS{alertstate=\"firing\"}'\n        eval_time: %s\n        exp_samples:", at)
	if len(labels) == 0 {
		return s + " []\n"
	}
	s += "\n"
	for _, l := range labels {
		s += fmt.Sprintf("          - labels: 'ALERTS{%s}'\n            value: 1\n", l)
	}
	return s
}

const (
	tcpSummary     = "%s of nodes cannot open a TCP connection to %s while its echoes pass"
	tcpDescription = "Over the last 2 minutes %d sources, %s of those whose ICMP echoes reach %s (zone %s), failed most of their TCP handshakes to its agent's port, and its agent reports: the node is up, the port is filtered or its responder does not answer. Check firewall rules and security groups for the port, and the agent's log (runbook)."
	udpSummary     = "%s of nodes get no answer from the UDP port of %s while its echoes pass"
	udpDescription = "Over the last 2 minutes %d sources, %s of those whose ICMP echoes reach %s (zone %s), lost most of their UDP echoes to its agent's port, and its agent reports: the node is up, the port is filtered or its responder does not answer. Check firewall rules and security groups for the port, and the agent's log (runbook)."
)

// portTest is the promtool test of both port alerts: node-4's TCP probes and node-2's UDP probes
// are lost from 3m on, by every source (each alert names its node), by node-1 only (silent), with
// every echo (NodePingNodeUnreachable instead), or while both nodes are cordoned (silent).
func portTest() string {
	const fault = 12 // 3m
	const tcp, udp = "NodePingTCPUnreachable", "NodePingUDPUnreachable"
	// closed says whether the probes of proto to dst are lost: node-4's TCP port, node-2's UDP port.
	closed := func(dst probeNode, proto string) bool {
		return proto == "tcp" && dst.name == "node-4" || proto == "udp" && dst.name == "node-2"
	}
	both := []string{
		fmt.Sprintf(`alertname=%q,alertstate="firing",node="node-2",severity="warning",zone="zone-a"`, udp),
		fmt.Sprintf(`alertname=%q,alertstate="firing",node="node-4",severity="warning",zone="zone-b"`, tcp),
	}
	var b strings.Builder
	b.WriteString(fileHeader("The port probes: every peer of node-4 loses its TCP probes to it, and every peer of node-2 its UDP\n# probes, from 3m on while their echoes pass: one alert naming each; silent with one source only, when the\n# echoes are lost too (NodePingNodeUnreachable), and while the nodes are cordoned."))
	b.WriteString(group("TCP to node-4 and UDP to node-2 lost by every source from 3m on, echoes pass"))
	b.WriteString(mesh(func(_, dst probeNode, p string) int {
		if closed(dst, p) {
			return fault
		}
		return -1
	}, "tcp", "udp"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(tcp, "3m"))
	b.WriteString(none(udp, "3m"))
	b.WriteString(firingNode(tcp, "warning", "node-4", "zone-b", "6m", fmt.Sprintf(tcpSummary, "100%", "node-4"), fmt.Sprintf(tcpDescription, 3, "100%", "node-4", "zone-b")))
	b.WriteString(firingNode(udp, "warning", "node-2", "zone-a", "6m", fmt.Sprintf(udpSummary, "100%", "node-2"), fmt.Sprintf(udpDescription, 3, "100%", "node-2", "zone-a")))
	b.WriteString(onlyAlerts("7m", both...))
	b.WriteString(group("TCP to node-4 and UDP to node-2 lost by node-1 only: pairs, not the nodes"))
	b.WriteString(mesh(func(src, dst probeNode, p string) int {
		if closed(dst, p) && src.name == "node-1" {
			return fault
		}
		return -1
	}, "tcp", "udp"))
	b.WriteString(onlyAlerts("7m"))
	b.WriteString(group("node-4 blackholed from 3m on (echoes, TCP and UDP): NodePingNodeUnreachable, no port alert"))
	b.WriteString(mesh(func(src, dst probeNode, _ string) int {
		if dst.name == "node-4" || src.name == "node-4" {
			return fault
		}
		return -1
	}, "tcp", "udp"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(tcp, "7m"))
	b.WriteString(none(udp, "7m"))
	b.WriteString(onlyAlerts("7m", `alertname="NodePingNodeUnreachable",alertstate="firing",node="node-4",severity="critical",zone="zone-b"`))
	b.WriteString(group("node-2 and node-4 cordoned, their ports closed from 3m on: no alert"))
	b.WriteString(mesh(func(_, dst probeNode, p string) int {
		if closed(dst, p) {
			return fault
		}
		return -1
	}, "tcp", "udp"))
	b.WriteString(maintenance("node-2"))
	b.WriteString(maintenance("node-4"))
	b.WriteString(onlyAlerts("7m"))
	return b.String()
}

const (
	nodeDNSSummary     = "%s of the DNS look-ups from %s fail"
	nodeDNSDescription = "Over the last 5 minutes %s of the DNS probe's queries from %s timed out, could not be sent or got SERVFAIL, while most other nodes resolve: the node's own path to its resolvers (or its node-local resolver) is at fault, and pods on it cannot resolve names. Check its resolv.conf, node-local-dns and firewall rules for port 53 (runbook)."
	dnsSummary         = "DNS look-ups fail from %s of nodes"
	dnsDescription     = "Over the last 5 minutes most of the DNS probe's queries timed out, could not be sent or got SERVFAIL on %s of the nodes that run it: the resolver (the cluster DNS or its upstream), not the nodes. No NodePingNodeDNSFailing fires meanwhile. Check the cluster DNS pods, their logs and their upstream (runbook)."
)

// dnsSeries renders every agent's DNS probe, one query a step to the cluster resolver: NOERROR,
// or from step 12 (3m) on timeouts for the nodes that fail says so.
func dnsSeries(fails func(node string) bool) string {
	const fault = 12
	var b strings.Builder
	for _, n := range fourNodes {
		labels := fmt.Sprintf(`%s,source_node=%q,resolver="10.96.0.10:53",name="kubernetes.default.svc.cluster.local."`, n.inst(), n.name)
		ok, timeouts := counter(1, -1), fmt.Sprintf("0x%d", probeSteps)
		if fails(n.name) {
			ok, timeouts = counter(1, fault), fmt.Sprintf("0x%d 1+1x%d", fault-1, probeSteps-fault)
		}
		b.WriteString(series("nodeping_dns_responses_total{%s}", labels+`,rcode="NOERROR"`, ok))
		b.WriteString(series("nodeping_dns_responses_total{%s}", labels+`,rcode="timeout"`, timeouts))
	}
	return b.String()
}

const (
	nodeDNSSlowSummary     = "DNS answers to %s take %s on average"
	nodeDNSSlowDescription = "Over the last 5 minutes the DNS probe's answers to %s took %s on average, more than 4 times the median node's (%s): the node's own path to its resolvers (or its node-local resolver) is slow or retrying, and pods on it resolve slowly. Check its resolv.conf, node-local-dns and the load on the resolver it reaches (runbook)."
)

// dnsDurations renders every agent's DNS answer times, one answer a step in 10ms, or from step
// 12 (3m) on in 500ms for the node that slow says.
func dnsDurations(slow string) string {
	const fault = 12
	var b strings.Builder
	for _, n := range fourNodes {
		labels := fmt.Sprintf(`%s,source_node=%q,resolver="10.96.0.10:53"`, n.inst(), n.name)
		sum := fmt.Sprintf("0+0.01x%d", probeSteps)
		if n.name == slow {
			sum = fmt.Sprintf("0+0.01x%d %.2f+0.5x%d", fault-1, 0.01*float64(fault-1)+0.5, probeSteps-fault)
		}
		b.WriteString(series("nodeping_dns_request_duration_seconds_sum{%s}", labels, sum))
		b.WriteString(series("nodeping_dns_request_duration_seconds_count{%s}", labels, counter(1, -1)))
	}
	return b.String()
}

// dnsTest: one node's look-ups time out from 3m on, and a cordoned node's (NodePingNodeDNSFailing
// naming the first only), every node's (NodePingDNSFailing alone), a blackholed node's (its ICMP
// alert alone), one node's answers slow (NodePingNodeDNSSlow).
func dnsTest() string {
	const name, cluster, slow = "NodePingNodeDNSFailing", "NodePingDNSFailing", "NodePingNodeDNSSlow"
	var b strings.Builder
	b.WriteString(fileHeader("The DNS probe's look-ups time out from 3m on: from one node, NodePingNodeDNSFailing naming it; from\n# every node, one NodePingDNSFailing and no alert per node; silent for a cordoned node and a blackholed\n# one; one node's answers 50 times slower than the others', NodePingNodeDNSSlow naming it."))
	b.WriteString(group("node-2's look-ups time out from 3m on, and cordoned node-3's; every answer in 10ms"))
	b.WriteString(dnsSeries(func(n string) bool { return n == "node-2" || n == "node-3" }))
	b.WriteString(dnsDurations(""))
	b.WriteString(maintenance("node-3"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "3m"))
	b.WriteString(alertWith("8m30s", name, map[string]string{"node": "node-2", "severity": "warning"}, fmt.Sprintf(nodeDNSSummary, "100%", "node-2"), fmt.Sprintf(nodeDNSDescription, "100%", "node-2")))
	b.WriteString(onlyAlerts("8m30s", fmt.Sprintf(`alertname=%q,alertstate="firing",node="node-2",severity="warning"`, name)))
	b.WriteString(group("every node's look-ups time out from 3m on: the resolver"))
	b.WriteString(dnsSeries(func(string) bool { return true }))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(cluster, "3m"))
	b.WriteString(alertWith("8m30s", cluster, map[string]string{"severity": "critical"}, fmt.Sprintf(dnsSummary, "100%"), fmt.Sprintf(dnsDescription, "100%")))
	b.WriteString(onlyAlerts("8m30s", fmt.Sprintf(`alertname=%q,alertstate="firing",severity="critical"`, cluster)))
	b.WriteString(group("node-4 blackholed from 3m on, its look-ups time out with everything else: NodePingNodeUnreachable only"))
	b.WriteString(mesh(func(src, dst probeNode, _ string) int {
		if dst.name == "node-4" || src.name == "node-4" {
			return 12
		}
		return -1
	}, "tcp"))
	b.WriteString(dnsSeries(func(n string) bool { return n == "node-4" }))
	b.WriteString(onlyAlerts("8m30s", `alertname="NodePingNodeUnreachable",alertstate="firing",node="node-4",severity="critical",zone="zone-b"`))
	b.WriteString(group("node-3's answers take 500ms from 3m on, the others' 10ms"))
	b.WriteString(dnsSeries(func(string) bool { return false }))
	b.WriteString(dnsDurations("node-3"))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(slow, "3m"))
	b.WriteString(alertWith("8m30s", slow, map[string]string{"node": "node-3", "severity": "warning"}, fmt.Sprintf(nodeDNSSlowSummary, "node-3", "500ms"), fmt.Sprintf(nodeDNSSlowDescription, "node-3", "500ms", "10ms")))
	b.WriteString(onlyAlerts("8m30s", fmt.Sprintf(`alertname=%q,alertstate="firing",node="node-3",severity="warning"`, slow)))
	return b.String()
}

const (
	externalSummary     = "%s of nodes lose their probes to external target %s (%s)"
	externalDescription = "Over the last 2 minutes %s of the nodes in service lost more than half of their probes to %s (%s): the target is down, or the cluster's path to it (egress, NAT, a firewall or route on the way) is cut. Check the target and the cluster's egress (runbook)."
)

const (
	nodeExternalSummary     = "%s loses its probes to %d external target(s) that other nodes reach"
	nodeExternalDescription = "Over the last 2 minutes %s lost more than half of its probes to %d external target(s) that other nodes in service reach: the node's own way out (its egress, NAT, route or a firewall on the node) is at fault, not the targets. The targets: nodeping:external_loss_ratio:rate2m{source_node=\\\"%s\\\"} > 0.5. Check the node's routes, its NAT gateway or egress, and its firewall (runbook)."
)

// externalSeries renders every agent's ICMP probes to two external targets, dns and registry:
// ten a step, the registry's lost from step 12 (3m) on by the sources that lose says so.
func externalSeries(loses func(node string) bool) string {
	const fault = 12
	var b strings.Builder
	for _, n := range fourNodes {
		for _, tg := range []struct{ name, host, ip string }{{"dns", "192.0.2.53", "192.0.2.53"}, {"registry", "registry.example.org", "192.0.2.80"}} {
			labels := fmt.Sprintf(`%s,source_node=%q,source_zone=%q,destination_name=%q,destination_host=%q,destination_ip=%q,ip_family="ipv4",protocol="icmp"`,
				n.inst(), n.name, n.zone, tg.name, tg.host, tg.ip)
			lostFrom := -1
			if tg.name == "registry" && loses(n.name) {
				lostFrom = fault
			}
			b.WriteString(series("nodeping_external_packets_sent_total{%s}", labels, counter(10, -1)))
			b.WriteString(series("nodeping_external_packets_received_total{%s}", labels, counter(10, lostFrom)))
		}
	}
	return b.String()
}

// externalTest: every source loses the registry from 3m on (one alert naming it), one source
// does (one alert naming that node), three do and two of them are cordoned (silent: one source
// in service loses it, one reaches it).
func externalTest() string {
	const name, nodeName = "NodePingExternalTargetUnreachable", "NodePingNodeExternalTargetUnreachable"
	var b strings.Builder
	b.WriteString(fileHeader("External target registry lost from 3m on: by every source, one NodePingExternalTargetUnreachable\n# naming it (none for the dns target); by one source, one NodePingNodeExternalTargetUnreachable naming\n# that node; by one source in service of two, no alert."))
	b.WriteString(group("every source loses the registry from 3m on"))
	b.WriteString(externalSeries(func(string) bool { return true }))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "3m"))
	b.WriteString(alertWith("7m", name, map[string]string{"destination_host": "registry.example.org", "destination_name": "registry", "severity": "warning"}, fmt.Sprintf(externalSummary, "100%", "registry", "registry.example.org"), fmt.Sprintf(externalDescription, "100%", "registry", "registry.example.org")))
	b.WriteString(onlyAlerts("7m", fmt.Sprintf(`alertname=%q,alertstate="firing",destination_host="registry.example.org",destination_name="registry",severity="warning"`, name)))
	b.WriteString(group("node-1 alone loses the registry: its path, not the target"))
	b.WriteString(externalSeries(func(n string) bool { return n == "node-1" }))
	b.WriteString("    alert_rule_test:\n")
	b.WriteString(none(name, "7m"))
	b.WriteString(none(nodeName, "3m"))
	b.WriteString(alertWith("7m", nodeName, map[string]string{"node": "node-1", "severity": "warning"}, fmt.Sprintf(nodeExternalSummary, "node-1", 1), fmt.Sprintf(nodeExternalDescription, "node-1", 1, "node-1")))
	b.WriteString(onlyAlerts("7m", fmt.Sprintf(`alertname=%q,alertstate="firing",node="node-1",severity="warning"`, nodeName)))
	b.WriteString(group("node-1, node-2 and node-3 lose the registry, the first two cordoned: one source in service\n  # of two, no alert"))
	b.WriteString(externalSeries(func(n string) bool { return n != "node-4" }))
	b.WriteString(maintenance("node-1"))
	b.WriteString(maintenance("node-2"))
	b.WriteString(onlyAlerts("7m"))
	return b.String()
}

var probeTests = map[string]func() string{
	"external-target-unreachable.yml": externalTest,
	"dns-failing.yml":                 dnsTest,
	"port-unreachable.yml":            portTest,
}

func TestProbeAlerts(t *testing.T) { checkGenerated(t, probeTests) }

// checkGenerated compares each generated promtool test file with its golden copy (rewritten with
// -update) and runs it, the files in parallel.
func checkGenerated(t *testing.T, tests map[string]func() string) {
	promtool := requirePromtool(t)
	for name, gen := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(testsDir, name)
			golden.Check(t, path, gen(), *update)
			if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", path, err, out)
			}
		})
	}
}
