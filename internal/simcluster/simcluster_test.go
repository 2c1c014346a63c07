package simcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// agentBin is the agent built once for every cluster of this package's tests.
var agentBin string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // the tests skip
		}
		dir, err := os.MkdirTemp("", "simcluster-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		agentBin = filepath.Join(dir, "nodeping-agent")
		if out, err := exec.Command("go", "build", "-o", agentBin, "../../cmd/nodeping-agent").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func requireCluster(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the simulated cluster needs root (network namespaces, raw sockets); CI runs as root")
	}
	for _, tool := range []string{"ip", "nft", "prometheus", "prometheus-node-exporter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (scripts/deps installs it)", tool)
		}
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	cfg.AgentBin = agentBin
	cfg.Log = logWriter{t}
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pairLoss returns the loss ratio of every ordered node pair over the window, IPv4 and IPv6
// together, keyed "source->destination".
func pairLoss(t *testing.T, c *Cluster, window string) map[string]float64 {
	t.Helper()
	q := fmt.Sprintf(`1 - sum by (source_node, destination_node) (increase(nodeping_packets_received_total[%[1]s]))
	                 / sum by (source_node, destination_node) (increase(nodeping_packets_sent_total[%[1]s]))`, window)
	samples, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range samples {
		out[s.Labels["source_node"]+"->"+s.Labels["destination_node"]] = s.Value
	}
	return out
}

// waitQuery polls a condition on Prometheus until it holds, and returns how long it took.
func waitQuery(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start)
}

func touches(pair, node string) bool {
	src, dst, _ := strings.Cut(pair, "->")
	return src == node || dst == node
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestEndToEnd: a healthy 6-node, 3-zone cluster shows no loss on any of its 30 ordered pairs;
// 30% loss on one node shows on exactly the pairs that touch it; a blackholed node is lost by all.
func TestEndToEnd(t *testing.T) {
	requireCluster(t)
	c := start(t, Config{})
	const window = "20s"

	var healthy map[string]float64
	took := waitQuery(t, 60*time.Second, "30 pairs with data", func() bool {
		healthy = pairLoss(t, c, window)
		return len(healthy) == 30
	})
	t.Logf("all 30 pairs visible in Prometheus %s after start", took.Round(time.Second))
	for _, k := range sortedKeys(healthy) {
		if healthy[k] != 0 {
			t.Errorf("healthy cluster: pair %s loses %.1f%%", k, 100*healthy[k])
		}
	}

	lossy := c.Nodes[1].Name
	f, err := c.Loss(lossy, 30)
	if err != nil {
		t.Fatal(err)
	}
	injected := time.Now()
	took = waitQuery(t, 60*time.Second, "loss visible on a pair touching "+lossy, func() bool {
		for k, v := range pairLoss(t, c, "10s") {
			if touches(k, lossy) && v > 0 {
				return true
			}
		}
		return false
	})
	t.Logf("fault to first visible loss in Prometheus: %s", took.Round(100*time.Millisecond))
	// Wait for a window that lies wholly inside the fault.
	time.Sleep(time.Until(injected.Add(25 * time.Second)))
	loss := pairLoss(t, c, window)
	for _, k := range sortedKeys(loss) {
		v := loss[k]
		if touches(k, lossy) && (v < 0.10 || v > 0.50) {
			t.Errorf("30%% loss on %s: pair %s loses %.1f%%, want 10%%..50%%", lossy, k, 100*v)
		}
		if !touches(k, lossy) && v != 0 {
			t.Errorf("30%% loss on %s: unrelated pair %s loses %.1f%%", lossy, k, 100*v)
		}
	}
	if err := f.Clear(); err != nil {
		t.Fatal(err)
	}

	dead := c.Nodes[4].Name
	if _, err := c.Blackhole(dead); err != nil {
		t.Fatal(err)
	}
	injected = time.Now()
	took = waitQuery(t, 60*time.Second, "every node loses "+dead+" entirely", func() bool {
		loss := pairLoss(t, c, "6s")
		n := 0
		for k, v := range loss {
			if strings.HasSuffix(k, "->"+dead) && v == 1 {
				n++
			}
		}
		return n == 5
	})
	t.Logf("blackhole to 100%% loss from all 5 others in Prometheus: %s", time.Since(injected).Round(100*time.Millisecond))
}

// TestTeardownLeavesNothing: after Close no namespace, process or directory of the cluster is left.
func TestTeardownLeavesNothing(t *testing.T) {
	requireCluster(t)
	c, err := Start(context.Background(), Config{Nodes: 3, Zones: 2, AgentBin: agentBin, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	nss, pids, dir := c.Namespaces(), c.Pids(), c.Dir()
	if len(nss) != 4 || len(pids) != 7 {
		t.Fatalf("%d namespaces, %d processes; want 4 and 7 (router, 3 nodes; 3 agents, 3 node-exporters, Prometheus)", len(nss), len(pids))
	}
	if _, err := c.Blackhole("node-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, ns := range nss {
		if _, err := os.Stat("/run/netns/" + ns); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	for _, pid := range pids {
		if err := exec.Command("kill", "-0", fmt.Sprint(pid)).Run(); err == nil {
			t.Errorf("process %d still running", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind", dir)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
