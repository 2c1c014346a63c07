//go:build linux

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/promapi"
)

// overlay is one documented install path and where its agents write.
type overlay struct {
	// name is the overlay's directory (installed by the docs block "install"), or the name of
	// the docs block that installs it with Helm ("helm...").
	name string
	// file is the agent's file on a node, for that node's name.
	file         func(node string) string
	nodeExporter bool // the path deploys node-exporter, so the verify block runs
}

func (p overlay) helm() bool { return strings.HasPrefix(p.name, "helm") }

// blocks are the docs blocks that install and uninstall the path.
func (p overlay) blocks() (install, remove string) {
	if p.helm() {
		return p.name, "uninstall-helm"
	}
	return "install", "uninstall"
}

// TestInstallPaths installs nodeping on a real cluster along each documented path, with the
// docs' own commands, checks what runs and what it writes, and uninstalls it.
func TestInstallPaths(t *testing.T) {
	c := Start(t)
	defaultFile := func(string) string { return "/var/lib/node_exporter/textfile_collector/nodeping.prom" }
	flantFile := func(n string) string { return "/var/run/node-exporter-textfile/node-ping_" + n + ".prom" }
	paths := []overlay{
		{name: "standalone", file: defaultFile, nodeExporter: true},
		{name: "kube-prometheus-stack", file: defaultFile},
		{name: "flant-compat", file: flantFile},
		{name: "helm", file: defaultFile},
		{name: "helm-flant-compat", file: flantFile},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { installPath(t, c, p) })
	}
}

// doc returns the docs block name, for path p.
func doc(t *testing.T, c *Cluster, name string, p overlay) string {
	t.Helper()
	block, err := Doc(c.Root, name)
	if err != nil {
		t.Fatal(err)
	}
	// The install and uninstall blocks name the standalone overlay and say "or" the others.
	if !p.helm() {
		block = strings.ReplaceAll(block, "manifests/overlays/standalone", "manifests/overlays/"+p.name)
	}
	return block
}

func installPath(t *testing.T, c *Cluster, p overlay) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	install, remove := p.blocks()
	if p.helm() {
		helm, err := exec.Command(filepath.Join(c.Root, "scripts", "tool-helm")).Output()
		if err != nil {
			t.Fatalf("scripts/tool-helm: %v", err)
		}
		t.Setenv("PATH", filepath.Dir(strings.TrimSpace(string(helm)))+":"+os.Getenv("PATH"))
	}
	start := time.Now()
	if _, err := c.Sh(ctx, doc(t, c, install, p)); err != nil {
		c.dumpPods(t, ctx)
		t.Fatalf("install: %v", err)
	}
	t.Logf("%s: installed, every pod Ready, in %s", p.name, time.Since(start).Round(100*time.Millisecond))
	uninstalled := false
	defer func() {
		if !uninstalled { // leave the cluster clean for the next path even when this one failed
			c.Sh(context.Background(), doc(t, c, remove, p))
		}
	}()

	// Every agent writes its file into its own node's hostPath.
	if _, err := Await(3*time.Minute, func() error {
		for _, n := range c.Nodes {
			b, err := os.ReadFile(n.HostPath(p.file(n.Name)))
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "nodeping_packets_received_total{") {
				return fmt.Errorf("%s: %s has no probe results yet", n.Name, p.file(n.Name))
			}
		}
		return nil
	}); err != nil {
		c.dumpPods(t, ctx)
		t.Fatalf("agents' files: %v", err)
	}
	t.Logf("%s: every node's file has probe results %s after the install", p.name, time.Since(start).Round(time.Second))

	c.checkAgentPods(t, ctx)
	c.checkController(t, ctx)
	if p.nodeExporter {
		verify := doc(t, c, "verify", p)
		if _, err := Await(2*time.Minute, func() error {
			out, err := c.Sh(ctx, verify)
			if err != nil {
				return err
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(c.Nodes) {
				return fmt.Errorf("verify printed %d lines for %d nodes: %q", len(lines), len(c.Nodes), out)
			}
			for _, l := range lines {
				f := strings.Fields(l)
				if n, _ := strconv.Atoi(f[len(f)-1]); n == 0 {
					return fmt.Errorf("no nodeping_ series: %q", l)
				}
			}
			return nil
		}); err != nil {
			t.Errorf("the docs' verify step: %v", err)
		}
		c.checkAlerts(t, ctx, p)
	}

	start = time.Now()
	if _, err := c.Sh(ctx, doc(t, c, remove, p)); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	uninstalled = true
	// What stays: nothing of ours in the API; on the nodes, the agents removed their files.
	if _, err := Await(2*time.Minute, func() error {
		out, err := c.Kubectl(ctx, "get", "namespace,clusterrole,clusterrolebinding,priorityclass", "-o", "name")
		if err != nil {
			return err
		}
		for _, l := range strings.Fields(out) {
			if strings.Contains(l, "nodeping") {
				return fmt.Errorf("%s is still there", l)
			}
		}
		return nil
	}); err != nil {
		t.Errorf("after uninstall: %v", err)
	}
	for _, n := range c.Nodes {
		if _, err := os.Stat(n.HostPath(p.file(n.Name))); err == nil {
			t.Errorf("%s: %s is still there after uninstall; the agent removes it on SIGTERM", n.Name, p.file(n.Name))
		}
	}
	t.Logf("%s: uninstalled in %s", p.name, time.Since(start).Round(100*time.Millisecond))
}

func (c *Cluster) dumpPods(t *testing.T, ctx context.Context) {
	out, _ := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	ev, _ := c.Kubectl(ctx, "get", "events", "-A")
	t.Logf("pods:\n%s\nevents:\n%s", out, tail([]byte(ev), 4000))
}

type podList struct {
	Items []struct {
		Metadata struct{ Name string } `json:"metadata"`
		Spec     struct {
			NodeName                     string `json:"nodeName"`
			HostNetwork                  bool   `json:"hostNetwork"`
			AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken"`
			Containers                   []struct {
				SecurityContext struct {
					ReadOnlyRootFilesystem *bool `json:"readOnlyRootFilesystem"`
					Capabilities           struct {
						Add, Drop []string
					} `json:"capabilities"`
				} `json:"securityContext"`
			} `json:"containers"`
		} `json:"spec"`
		Status struct {
			ContainerStatuses []struct {
				Ready bool `json:"ready"`
			} `json:"containerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

// checkAgentPods: one Ready agent per node, running with the DaemonSet's security context, and the
// process itself holds NET_RAW and no other capability.
func (c *Cluster) checkAgentPods(t *testing.T, ctx context.Context) {
	out, err := c.Kubectl(ctx, "-n", "nodeping", "get", "pods", "-l", "app.kubernetes.io/component=agent", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var pods podList
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, p := range pods.Items {
		nodes[p.Spec.NodeName] = true
		sc := p.Spec.Containers[0].SecurityContext
		if !p.Spec.HostNetwork || p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			strings.Join(sc.Capabilities.Add, ",") != "NET_RAW" || strings.Join(sc.Capabilities.Drop, ",") != "ALL" {
			t.Errorf("%s: not the DaemonSet's security context: %+v", p.Metadata.Name, p.Spec)
		}
		if len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
			t.Errorf("%s is not Ready", p.Metadata.Name)
		}
	}
	if len(nodes) != len(c.Nodes) {
		t.Errorf("agents on %d nodes, want %d", len(nodes), len(c.Nodes))
	}
	// The API server reaches the kubelets (the egress selector): kubectl logs and exec work.
	if len(pods.Items) > 0 {
		pod := pods.Items[0].Metadata.Name
		if out, err := c.Kubectl(ctx, "-n", "nodeping", "logs", pod); err != nil || !strings.Contains(out, "nodes list loaded") {
			t.Errorf("kubectl logs %s: %v: %q has no \"nodes list loaded\"", pod, err, tail([]byte(out), 500))
		}
		if out, err := c.Kubectl(ctx, "-n", "nodeping", "exec", pod, "--", "/usr/local/bin/nodeping-agent", "--version"); err != nil || !strings.HasPrefix(out, "nodeping-agent ") {
			t.Errorf("kubectl exec %s -- nodeping-agent --version: %v: %q", pod, err, out)
		}
	}
	// The agent processes, found through the nodes' network namespaces: effective capabilities
	// exactly CAP_NET_RAW (bit 13).
	for _, n := range c.Nodes {
		pids, err := exec.Command("ip", "netns", "pids", n.NetNS).Output()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, pid := range strings.Fields(string(pids)) {
			if exe, _ := os.Readlink("/proc/" + pid + "/exe"); filepath.Base(exe) != "nodeping-agent" {
				continue
			}
			found = true
			status, _ := os.ReadFile("/proc/" + pid + "/status")
			for _, l := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok && v != "0000000000002000" {
					t.Errorf("%s: the agent's effective capabilities are %s, want only NET_RAW (0000000000002000)", n.Name, v)
				}
			}
		}
		if !found {
			t.Errorf("%s: no nodeping-agent process in its network namespace", n.Name)
		}
	}
}

// checkController: the ConfigMap lists every node with its zone, one replica holds the Lease.
func (c *Cluster) checkController(t *testing.T, ctx context.Context) {
	out, err := c.Kubectl(ctx, "-n", "nodeping", "get", "configmap", "nodeping-nodes", "-o", `jsonpath={.data.nodes\.json}`)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Nodes []struct{ Name, Zone string } `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("nodes list %q: %v", out, err)
	}
	got := map[string]string{}
	for _, n := range list.Nodes {
		got[n.Name] = n.Zone
	}
	for _, n := range c.Nodes {
		if got[n.Name] != n.Zone {
			t.Errorf("nodes list has %s in zone %q, want %q", n.Name, got[n.Name], n.Zone)
		}
	}
	holder, err := c.Kubectl(ctx, "-n", "nodeping", "get", "lease", "nodeping-controller", "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.Kubectl(ctx, "-n", "nodeping", "get", "pods", "-l", "app.kubernetes.io/component=controller", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if holder == "" || !strings.Contains(pods, "pod/"+holder+"\n") {
		t.Errorf("the Lease is held by %q, not by one of the controller's pods %q", holder, pods)
	}
}

// checkCordon cordons a node and times how long until every agent marks it in maintenance: the
// controller's write, then the kubelet's ConfigMap projection (the ..data swap), then a cycle. It
// leaves the node cordoned, and returns it.
func (c *Cluster) checkCordon(t *testing.T, ctx context.Context, p overlay) Node {
	n := c.Nodes[len(c.Nodes)-1]
	if _, err := c.Kubectl(ctx, "cordon", n.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Kubectl(context.Background(), "uncordon", n.Name) })
	want := fmt.Sprintf(`nodeping_node_maintenance{destination_node=%q`, n.Name)
	took, err := Await(3*time.Minute, func() error {
		for _, o := range c.Nodes {
			if o.Name == n.Name {
				continue
			}
			b, err := os.ReadFile(o.HostPath(p.file(o.Name)))
			if err != nil || !strings.Contains(string(b), want) {
				return fmt.Errorf("%s's agent does not mark %s in maintenance yet", o.Name, n.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("cordon: %v", err)
		return n
	}
	t.Logf("cordon of %s reached every other agent's file in %s", n.Name, took.Round(time.Second))
	return n
}

// checkAlerts: a real Prometheus outside the cluster scrapes the node-exporters with the shipped
// rules. A node blackholed raises one NodePingNodeUnreachable naming it, and nothing else; then
// (checkCordon) a cordoned node blackholed, and an agent pod deleted, raise nothing.
func (c *Cluster) checkAlerts(t *testing.T, ctx context.Context, p overlay) {
	prom := c.StartPrometheus(t)
	if _, err := Await(2*time.Minute, func() error {
		agents, err := prom.Query(ctx, "nodeping_build_info")
		if err != nil {
			return err
		}
		if len(agents) != len(c.Nodes) {
			return fmt.Errorf("Prometheus has %d agents of %d", len(agents), len(c.Nodes))
		}
		return nil
	}); err != nil {
		t.Fatalf("prometheus: %v", err)
	}

	// One alert: a node in service blackholed. Its peers are its only witnesses (it is no longer
	// scraped), and the rules name a node only from two or more of them.
	target := c.Nodes[0]
	lift, err := target.Blackhole()
	if err != nil {
		t.Fatal(err)
	}
	want := promapi.Alert{Name: "NodePingNodeUnreachable", Labels: map[string]string{"node": target.Name, "zone": target.Zone}}.String()
	var firing []string
	took, err := Await(4*time.Minute, func() error {
		if firing, err = prom.Firing(ctx); err != nil {
			return err
		}
		if len(firing) == 0 {
			return fmt.Errorf("no alert fires")
		}
		return nil
	})
	if err != nil {
		lift()
		t.Fatalf("%s blackholed: %v", target.Name, err)
	}
	if strings.Join(firing, ",") != want {
		lift()
		t.Fatalf("%s blackholed: firing %q, want only %q", target.Name, firing, want)
	}
	t.Logf("%s blackholed: %s fired in %s", target.Name, want, took.Round(time.Second))
	// And nothing joins it in the next minute.
	for hold := time.Now(); time.Since(hold) < time.Minute; time.Sleep(5 * time.Second) {
		if firing, err = prom.Firing(ctx); err != nil {
			t.Fatal(err)
		}
		if strings.Join(firing, ",") != want {
			lift()
			t.Fatalf("%s blackholed, %s after %s fired: firing %q, want only %q", target.Name, time.Since(hold).Round(time.Second), want, firing, want)
		}
	}
	if err := lift(); err != nil {
		t.Fatal(err)
	}
	lifted := time.Now()

	// It resolves; then, once no pair's window holds a lost echo (a node set aside while the
	// windows still hold the blackhole would leave a single witness, and one witness names a
	// pair), cordon another node, timed to every agent.
	if err := prom.AwaitQuiet(ctx, 4*time.Minute); err != nil {
		t.Fatalf("%s's blackhole lifted: %v", target.Name, err)
	}
	t.Logf("%s's blackhole lifted: its alert resolved in %s", target.Name, time.Since(lifted).Round(time.Second))
	if _, err := Await(4*time.Minute, func() error {
		lossy, err := prom.Query(ctx, "nodeping:pair_lost:increase2m > 0")
		if err != nil {
			return err
		}
		if len(lossy) > 0 {
			return fmt.Errorf("%d pairs still hold lost echoes in their windows", len(lossy))
		}
		return nil
	}); err != nil {
		t.Fatalf("%s's blackhole lifted: %v", target.Name, err)
	}
	c.checkPortAlerts(t, ctx, prom)
	cordoned := c.checkCordon(t, ctx, p)

	// Nothing: the cordoned node blackholed, and at the same time the agent pod of another node
	// deleted (the DaemonSet starts a new one; its file is gone until the new agent's first
	// cycle). Held for 150s, past the 60s in which a blackholed node is named.
	if lift, err = cordoned.Blackhole(); err != nil {
		t.Fatal(err)
	}
	defer lift()
	other := c.Nodes[1]
	pod, err := c.Kubectl(ctx, "-n", "nodeping", "get", "pods", "-l", "app.kubernetes.io/component=agent", "--field-selector", "spec.nodeName="+other.Name, "-o", "name")
	if pod = strings.TrimSpace(pod); err != nil || pod == "" {
		t.Fatalf("the agent pod on %s: %q %v", other.Name, pod, err)
	}
	if _, err := c.Kubectl(ctx, "-n", "nodeping", "delete", "--wait=false", pod); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	restarted := time.Duration(0)
	for time.Since(start) < 150*time.Second {
		if firing, err = prom.Firing(ctx); err != nil {
			t.Fatal(err)
		}
		if len(firing) > 0 {
			t.Fatalf("%s after blackholing cordoned %s and deleting %s: firing %q, want nothing", time.Since(start).Round(time.Second), cordoned.Name, pod, firing)
		}
		if restarted == 0 {
			out, _ := c.Kubectl(ctx, "-n", "nodeping", "get", "pods", "-l", "app.kubernetes.io/component=agent", "--field-selector", "spec.nodeName="+other.Name,
				"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[0].ready}{"\n"}{end}`)
			if f := strings.Fields(out); len(f) == 2 && "pod/"+f[0] != pod && f[1] == "true" {
				restarted = time.Since(start)
			}
		}
		time.Sleep(5 * time.Second)
	}
	if restarted == 0 {
		t.Errorf("no new agent pod Ready on %s within %s of deleting %s", other.Name, time.Since(start).Round(time.Second), pod)
	}
	t.Logf("cordoned %s blackholed and %s deleted (a new agent Ready in %s): no alert in %s", cordoned.Name, pod, restarted.Round(time.Second), time.Since(start).Round(time.Second))
}

// agentPort is the TCP and UDP port the shipped DaemonSet gives the agent's probes and responders
// (--tcp-port, --udp-port in manifests/base/agent-daemonset.yaml).
const agentPort = 9711

// checkPortAlerts filters node-2's TCP port and node-3's UDP port at once, their echoes passing:
// exactly NodePingTCPUnreachable naming node-2 and NodePingUDPUnreachable naming node-3 fire, and
// both resolve when the filters are lifted.
func (c *Cluster) checkPortAlerts(t *testing.T, ctx context.Context, prom *Prometheus) {
	t.Helper()
	tcpNode, udpNode := c.Nodes[1], c.Nodes[2]
	liftTCP, err := tcpNode.DropPort("tcp", agentPort)
	if err != nil {
		t.Fatal(err)
	}
	defer liftTCP() // lifted below; this is for a test that fails first
	liftUDP, err := udpNode.DropPort("udp", agentPort)
	if err != nil {
		t.Fatal(err)
	}
	defer liftUDP()
	want := []string{
		promapi.Alert{Name: "NodePingTCPUnreachable", Labels: map[string]string{"node": tcpNode.Name, "zone": tcpNode.Zone}}.String(),
		promapi.Alert{Name: "NodePingUDPUnreachable", Labels: map[string]string{"node": udpNode.Name, "zone": udpNode.Zone}}.String(),
	}
	slices.Sort(want)
	var firing []string
	took, err := Await(4*time.Minute, func() error {
		if firing, err = prom.Firing(ctx); err != nil {
			return err
		}
		for _, f := range firing {
			if !slices.Contains(want, f) {
				t.Fatalf("%s's TCP port and %s's UDP port filtered: firing %q, want only %q", tcpNode.Name, udpNode.Name, firing, want)
			}
		}
		if len(firing) < len(want) {
			return fmt.Errorf("firing %q, want %q", firing, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s's TCP port and %s's UDP port filtered: %v", tcpNode.Name, udpNode.Name, err)
	}
	t.Logf("%s's TCP port and %s's UDP port filtered: %q fired in %s", tcpNode.Name, udpNode.Name, firing, took.Round(time.Second))
	if err := liftTCP(); err != nil {
		t.Fatal(err)
	}
	if err := liftUDP(); err != nil {
		t.Fatal(err)
	}
	lifted := time.Now()
	if err := prom.AwaitQuiet(ctx, 4*time.Minute); err != nil {
		t.Fatalf("port filters lifted: %v", err)
	}
	t.Logf("port filters lifted: the alerts resolved in %s", time.Since(lifted).Round(time.Second))
}
