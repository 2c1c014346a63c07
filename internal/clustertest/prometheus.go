//go:build linux

package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/netns"
	"github.com/nodeping/nodeping/internal/testutil/promapi"
)

// Prometheus is a real Prometheus outside the cluster, as in the demo: in the router's network
// namespace, scraping every node's address on port 9100 (node-exporter) with the shipped rules.
// URL reaches its API from this namespace.
type Prometheus struct {
	URL string
}

// StartPrometheus starts Prometheus with scrape and rule evaluation every 15s (the interval the
// rules assume) and stops it, by PID, when the test ends.
func (c *Cluster) StartPrometheus(t *testing.T) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files:\n  - %q\nscrape_configs:\n  - job_name: node\n    static_configs:\n",
		filepath.Join(c.Root, "manifests", "rules", "nodeping.rules.yml"))
	for _, n := range c.Nodes {
		fmt.Fprintf(&cfg, "      - targets: ['%s:9100']\n", n.IPv4)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(c.Dir, "logs", "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", c.Router, "prometheus", "--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("prometheus: %v", err)
	}
	// Its API, from this namespace: host-loopback connections forwarded into the router's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go netns.Forward(l, func() (net.Conn, error) { return netns.Dial(c.Router, "127.0.0.1:9090", 5*time.Second) }, func(error) {})
	t.Cleanup(func() {
		l.Close()
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	p := &Prometheus{URL: "http://" + l.Addr().String()}
	if _, err := Await(30*time.Second, func() error {
		_, err := p.Query(context.Background(), "up")
		return err
	}); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("prometheus does not answer: %v\n%s", err, tail(b, 3000))
	}
	return p
}

// Query runs an instant query.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]promapi.Sample, error) {
	return promapi.Query(ctx, p.URL, expr)
}

// Firing returns the firing alerts, as promapi.Alert.String names them, sorted.
func (p *Prometheus) Firing(ctx context.Context) ([]string, error) {
	return promapi.Alerts(ctx, p.URL, "firing")
}

// AwaitQuiet waits, up to within, until no alert fires.
func (p *Prometheus) AwaitQuiet(ctx context.Context, within time.Duration) error {
	_, err := Await(within, func() error {
		firing, err := p.Firing(ctx)
		if err != nil {
			return err
		}
		if len(firing) > 0 {
			return fmt.Errorf("still firing %q", firing)
		}
		return nil
	})
	return err
}

// Blackhole drops every packet on the node's uplink, both ways, with nftables in its network
// namespace: its peers' probes and Prometheus' scrapes are lost, while its kubelet still reaches
// the API server (that path stays inside the node) and the node stays Ready. The returned
// function lifts it.
func (n Node) Blackhole() (func() error, error) {
	return n.filter("blackhole", `chain in { type filter hook input priority -300; iifname "eth0" drop; }
	chain out { type filter hook output priority -300; oifname "eth0" drop; }`)
}

// DropPort drops what arrives on the node's uplink for one port of protocol proto (tcp, udp), as
// a firewall that filters the agent's port would: its echoes and every other port still pass.
// The returned function lifts it.
func (n Node) DropPort(proto string, port int) (func() error, error) {
	return n.filter(proto+"-port", fmt.Sprintf(`chain in { type filter hook input priority -300; iifname "eth0" %s dport %d drop; }`, proto, port))
}

// filter loads chains into a table of the test's own, nodeping-test-NAME, in the node's network
// namespace, and returns the function that deletes the table.
func (n Node) filter(name, chains string) (func() error, error) {
	table := "nodeping-test-" + name
	cmd := exec.Command("ip", "netns", "exec", n.NetNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table inet %s {\n\t%s\n}\n", table, chains))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: nft: %w: %s", n.Name, err, out)
	}
	return func() error {
		out, err := exec.Command("ip", "netns", "exec", n.NetNS, "nft", "delete", "table", "inet", table).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: nft: %w: %s", n.Name, err, out)
		}
		return nil
	}, nil
}
