//go:build linux

// Package simcluster runs a Kubernetes-like cluster of nodeping agents on one machine: every node
// is a network namespace with its own IPv4 (198.18.0.0/15) and IPv6 (fd00::/8) address on a
// bridge per zone, zones are joined through a router namespace (so inter-zone traffic crosses one
// hop, as real zone links do), and each node runs the real agent and a real
// prometheus-node-exporter. One real Prometheus in the router namespace scrapes them all, with the
// project's rules loaded, and is reached from the host through a proxy on loopback. Faults come
// from nftables inside the namespaces.
//
// Packets only ever travel between addresses the cluster assigns inside its own namespaces.
package simcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodeping/nodeping/internal/netns"
	"github.com/nodeping/nodeping/internal/testutil/promapi"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Config says what cluster to build.
type Config struct {
	// Nodes and Zones: node i is in zone i mod Zones. Defaults 6 and 3.
	Nodes, Zones int
	// AgentBin is the nodeping-agent binary to run on every node.
	AgentBin string
	// AgentArgs are extra agent flags; Interval, ICMPCount and ICMPInterval set the usual ones.
	AgentArgs    []string
	Interval     time.Duration // default 2s
	ICMPCount    int           // default 10
	ICMPInterval time.Duration // default 100ms
	// ScrapeInterval is Prometheus's scrape and rule evaluation interval; default 2s.
	ScrapeInterval time.Duration
	// RuleFiles are loaded into Prometheus; with none, an empty rules file is.
	RuleFiles []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Seed seeds the jitter of delay links.
	Seed uint64
	// RouterAddrs are added to the router namespace's loopback before the agents start: addresses
	// every node reaches through its gateway, for a test's resolver or external target (within
	// 198.18.0.0/15 or fd00::/8, clear of the zones' 198.18.Z.0/24 and fd00:0:0:Z::/64).
	RouterAddrs []netip.Addr
	// External are the nodes list's external targets.
	External []nodelist.External
}

func (c *Config) defaults() {
	if c.Nodes == 0 {
		c.Nodes = 6
	}
	if c.Zones == 0 {
		c.Zones = 3
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	if c.ICMPCount == 0 {
		c.ICMPCount = 10
	}
	if c.ICMPInterval == 0 {
		c.ICMPInterval = 100 * time.Millisecond
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Node is one simulated node.
type Node struct {
	Name, Zone string
	// NS is the node's network namespace.
	NS         string
	IPv4, IPv6 netip.Addr
	// TextfileDir is where its agent writes and its node-exporter reads.
	TextfileDir string
}

// Cluster is a running simulated cluster. Close it.
type Cluster struct {
	cfg    Config
	prefix string
	dir    string
	Router string // the router namespace
	Nodes  []Node
	// Zones are the zone names, in order.
	Zones []string
	// NodesFile and FlantNodesFile are the nodes list in nodeping's and Flant's formats.
	NodesFile, FlantNodesFile string
	// PrometheusURL reaches the cluster's Prometheus from the host, through a loopback proxy.
	PrometheusURL string

	mu        sync.Mutex
	procs     []*exec.Cmd
	agents    map[string]*exec.Cmd // by node name, while running
	namespace []string
	proxy     net.Listener
	faults    int
	active    map[*Fault]bool
	list      nodelist.List // as last written to NodesFile
	closed    bool
}

// prefixFor names a cluster's namespaces after its process, so that a later run can tell the
// leftovers of a process that died from those of one still running.
func prefixFor(pid, n int) string { return fmt.Sprintf("npsim%d-%d", pid, n) }

var clusterSeq struct {
	sync.Mutex
	n int
}

// Start builds and starts a cluster. On error everything already created is removed.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	cfg.defaults()
	if os.Geteuid() != 0 {
		return nil, errors.New("simcluster: needs root (network namespaces, raw sockets)")
	}
	if cfg.Zones < 1 || cfg.Zones > 200 || cfg.Nodes < 1 || cfg.Nodes > 200*cfg.Zones {
		return nil, fmt.Errorf("simcluster: %d nodes in %d zones: want 1..200 zones and at most 200 nodes per zone", cfg.Nodes, cfg.Zones)
	}
	for _, tool := range []string{"ip", "nft", "prometheus", "prometheus-node-exporter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("simcluster: %s not installed: %w", tool, err)
		}
	}
	ReapStale()
	clusterSeq.Lock()
	clusterSeq.n++
	n := clusterSeq.n
	clusterSeq.Unlock()
	dir, err := os.MkdirTemp("", dirPrefix(os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	c := &Cluster{cfg: cfg, prefix: prefixFor(os.Getpid(), n), dir: dir, agents: map[string]*exec.Cmd{}, active: map[*Fault]bool{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.logf("building %d nodes in %d zones", cfg.Nodes, cfg.Zones)
	if err := c.buildNetwork(); err != nil {
		return nil, err
	}
	if err := c.writeNodesLists(); err != nil {
		return nil, err
	}
	c.logf("starting agents and node-exporters")
	for _, nd := range c.Nodes {
		if err := c.startNode(nd); err != nil {
			return nil, err
		}
	}
	c.logf("starting Prometheus")
	if err := c.startPrometheus(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.cfg.Log, "simcluster: "+format+"\n", args...)
}

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) addNS(name string) error {
	if err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	c.mu.Lock()
	c.namespace = append(c.namespace, name)
	c.mu.Unlock()
	return run("ip", "-n", name, "link", "set", "lo", "up")
}

// ipBatch runs ip commands inside a namespace, in one process, one per line.
func ipBatch(ns string, cmds []string) error {
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -batch: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func zoneName(z int) string {
	if z < 26 {
		return "zone-" + string(rune('a'+z))
	}
	return fmt.Sprintf("zone-%d", z)
}

func (c *Cluster) buildNetwork() error {
	c.Router = c.prefix + "-r"
	if err := c.addNS(c.Router); err != nil {
		return err
	}
	var cmds []string
	nodeCmds := map[string][]string{}
	// rp_filter off: packets that a delay link (ZoneLatency) hands back arrive on its TUN device.
	sysctls := [][]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"}, {"net.ipv4.conf.default.rp_filter", "0"}}
	for _, s := range sysctls {
		if err := run("ip", "netns", "exec", c.Router, "sysctl", "-q", "-w", s[0]+"="+s[1]); err != nil {
			return err
		}
	}
	// Where br_netfilter is loaded, switched frames would pass the router's netfilter hooks too:
	// turn that off in the router (the sysctls exist only with the module, hence no error check).
	for _, s := range []string{"net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0"} {
		_ = run("ip", "netns", "exec", c.Router, "sysctl", "-q", "-w", s)
	}
	for z := 0; z < c.cfg.Zones; z++ {
		c.Zones = append(c.Zones, zoneName(z))
		br := fmt.Sprintf("br%d", z)
		cmds = append(cmds,
			// A fixed address: a bridge's default one follows its ports, and a delay link swaps
			// ports while nodes hold the gateway's address in their neighbour caches.
			fmt.Sprintf("link add %s address 02:00:00:00:%02x:01 type bridge", br, z),
			fmt.Sprintf("addr add 198.18.%d.1/24 dev %s", z, br),
			fmt.Sprintf("addr add fd00:0:0:%x::1/64 dev %s nodad", z, br),
			fmt.Sprintf("link set %s up", br))
	}
	for i := 0; i < c.cfg.Nodes; i++ {
		z := i % c.cfg.Zones
		nd := Node{
			Name: fmt.Sprintf("node-%d", i+1),
			Zone: zoneName(z),
			NS:   fmt.Sprintf("%s-n%d", c.prefix, i+1),
			IPv4: netip.AddrFrom4([4]byte{198, 18, byte(z), byte(10 + i/c.cfg.Zones)}),
		}
		nd.IPv6 = netip.MustParseAddr(fmt.Sprintf("fd00:0:0:%x::%x", z, 10+i/c.cfg.Zones))
		nd.TextfileDir = filepath.Join(c.dir, nd.Name, "textfile")
		if err := os.MkdirAll(nd.TextfileDir, 0o755); err != nil {
			return fmt.Errorf("simcluster: %w", err)
		}
		if err := c.addNS(nd.NS); err != nil {
			return err
		}
		veth := fmt.Sprintf("v%d", i+1)
		cmds = append(cmds,
			fmt.Sprintf("link add %s type veth peer name eth0 netns %s", veth, nd.NS),
			fmt.Sprintf("link set %s master br%d up", veth, z))
		nodeCmds[nd.NS] = []string{
			fmt.Sprintf("addr add %s/24 dev eth0", nd.IPv4),
			fmt.Sprintf("addr add %s/64 dev eth0 nodad", nd.IPv6),
			"link set eth0 up",
			fmt.Sprintf("route add default via 198.18.%d.1", z),
			fmt.Sprintf("route add ::/0 via fd00:0:0:%x::1", z),
		}
		c.Nodes = append(c.Nodes, nd)
	}
	for _, a := range c.cfg.RouterAddrs {
		if !a.IsValid() || !(netip.MustParsePrefix("198.18.0.0/15").Contains(a) || netip.MustParsePrefix("fd00::/8").Contains(a)) {
			return fmt.Errorf("simcluster: router address %v: want one in 198.18.0.0/15 or fd00::/8", a)
		}
		cmd := fmt.Sprintf("addr add %s/%d dev lo", a, a.BitLen())
		if a.Is6() {
			cmd += " nodad"
		}
		cmds = append(cmds, cmd)
	}
	if err := ipBatch(c.Router, cmds); err != nil {
		return err
	}
	for _, nd := range c.Nodes {
		if err := ipBatch(nd.NS, nodeCmds[nd.NS]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) writeNodesLists() error {
	type flant struct {
		Name      string `json:"name"`
		IPAddress string `json:"ipAddress"`
	}
	var fl []flant
	for _, nd := range c.Nodes {
		c.list.Nodes = append(c.list.Nodes, nodelist.Node{Name: nd.Name, Zone: nd.Zone, IPv4: nd.IPv4, IPv6: nd.IPv6, Ready: true, Schedulable: true})
		fl = append(fl, flant{nd.Name, nd.IPv4.String()})
	}
	c.list.External = append([]nodelist.External(nil), c.cfg.External...)
	c.NodesFile = filepath.Join(c.dir, "nodes.json")
	if err := c.writeNodesFile(); err != nil {
		return err
	}
	fb, _ := json.Marshal(fl)
	c.FlantNodesFile = filepath.Join(c.dir, "flant-nodes.json")
	return os.WriteFile(c.FlantNodesFile, fb, 0o644)
}

// writeNodesFile writes c.list to NodesFile atomically (the agents re-read it every cycle).
func (c *Cluster) writeNodesFile() error {
	b, err := nodelist.Encode(c.list)
	if err != nil {
		return err
	}
	tmp := c.NodesFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("simcluster: %w", err)
	}
	if err := os.Rename(tmp, c.NodesFile); err != nil {
		return fmt.Errorf("simcluster: %w", err)
	}
	return nil
}

// setSchedulable cordons (false) or uncordons (true) a node in the nodes list.
func (c *Cluster) setSchedulable(node string, schedulable bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.list.Nodes {
		if c.list.Nodes[i].Name == node {
			c.list.Nodes[i].Schedulable = schedulable
			return c.writeNodesFile()
		}
	}
	return fmt.Errorf("simcluster: no node %q", node)
}

// awaitMaintenance waits until at least n agents report node in maintenance in Prometheus.
func (c *Cluster) awaitMaintenance(node string, n int, within time.Duration) error {
	q := fmt.Sprintf(`count(nodeping_node_maintenance{destination_node=%q})`, node)
	deadline := time.Now().Add(within)
	for {
		s, err := c.Query(context.Background(), q)
		if err == nil && len(s) == 1 && int(s[0].Value) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("simcluster: %s not reported in maintenance by %d agents within %s (last: %v, %v)", node, n, within, s, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// seed is the seed of a delay link's jitter: fixed per cluster and link, so runs repeat.
func (c *Cluster) seed(i int) uint64 { return c.cfg.Seed*7919 + uint64(i) }

// spawn starts a long-running process inside a namespace, logging to a file in the cluster's
// directory. It dies with this process (PR_SET_PDEATHSIG) if Close never runs.
func (c *Cluster) spawn(ns, logName string, name string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(c.dir, logName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simcluster: start %s in %s: %w", name, ns, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
	return cmd, nil
}

func (c *Cluster) startNode(nd Node) error {
	if err := c.startAgent(nd); err != nil {
		return err
	}
	_, err := c.spawn(nd.NS, nd.Name+"-node-exporter.log", "prometheus-node-exporter",
		"--web.listen-address="+net.JoinHostPort(nd.IPv4.String(), "9100"), "--collector.disable-defaults",
		"--collector.textfile", "--collector.textfile.directory="+nd.TextfileDir)
	return err
}

// startAgent starts a node's agent (ip netns exec runs it in place: the command's PID is the
// agent's).
func (c *Cluster) startAgent(nd Node) error {
	args := []string{"--node-name", nd.Name, "--nodes-file", c.NodesFile, "--textfile-dir", nd.TextfileDir,
		"--interval", c.cfg.Interval.String(), "--icmp-count", strconv.Itoa(c.cfg.ICMPCount),
		"--icmp-interval", c.cfg.ICMPInterval.String(), "--grace", "0s"}
	cmd, err := c.spawn(nd.NS, nd.Name+"-agent.log", c.cfg.AgentBin, append(args, c.cfg.AgentArgs...)...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.agents[nd.Name] = cmd
	c.mu.Unlock()
	return nil
}

func (c *Cluster) startPrometheus(ctx context.Context) error {
	rules := c.cfg.RuleFiles
	if len(rules) == 0 {
		empty := filepath.Join(c.dir, "empty.rules.yml")
		if err := os.WriteFile(empty, []byte("groups: []\n"), 0o644); err != nil {
			return fmt.Errorf("simcluster: %w", err)
		}
		rules = []string{empty}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\nrule_files:\n", c.cfg.ScrapeInterval, c.cfg.ScrapeInterval)
	for _, r := range rules {
		abs, err := filepath.Abs(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(&cfg, "  - %q\n", abs)
	}
	cfg.WriteString("scrape_configs:\n  - job_name: node\n    static_configs:\n")
	for _, nd := range c.Nodes {
		fmt.Fprintf(&cfg, "      - targets: ['%s']\n", net.JoinHostPort(nd.IPv4.String(), "9100"))
	}
	cfgPath := filepath.Join(c.dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return fmt.Errorf("simcluster: %w", err)
	}
	if _, err := c.spawn(c.Router, "prometheus.log", "prometheus", "--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(c.dir, "tsdb"), "--web.listen-address=127.0.0.1:9090",
		"--storage.tsdb.retention.time=2h", "--log.level=warn"); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("simcluster: proxy: %w", err)
	}
	c.proxy = l
	c.PrometheusURL = "http://" + l.Addr().String()
	// Host-loopback connections go to Prometheus inside the router namespace.
	go netns.Forward(l, func() (net.Conn, error) { return netns.Dial(c.Router, "127.0.0.1:9090", 5*time.Second) }, func(error) {})
	// Wait until Prometheus answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.PrometheusURL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(c.dir, "prometheus.log"))
			return fmt.Errorf("simcluster: Prometheus not ready in 30s: %v: %s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close stops every process, deletes every namespace and removes the cluster's directory. It is
// safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	procs, nss := c.procs, c.namespace
	var active []*Fault
	for f := range c.active {
		active = append(active, f)
	}
	c.mu.Unlock()
	// Delay links hold devices and goroutines of this process: stop them. (nftables tables and
	// policy routes go with their namespaces.)
	for _, f := range active {
		for _, l := range f.links {
			l.Close()
		}
	}
	if c.proxy != nil {
		c.proxy.Close()
	}
	for _, p := range procs {
		syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() {
		for _, p := range procs {
			p.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, p := range procs {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		}
		<-done
	}
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if err := run("ip", "netns", "delete", nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// Namespaces lists the namespaces the cluster created.
func (c *Cluster) Namespaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.namespace...)
}

// Pids lists the processes the cluster started.
func (c *Cluster) Pids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, p := range c.procs {
		out = append(out, p.Process.Pid)
	}
	return out
}

// Dir is the cluster's working directory (logs, nodes lists, textfiles, Prometheus data).
func (c *Cluster) Dir() string { return c.dir }

// dirPrefix starts the name of a cluster's working directory, after its process.
func dirPrefix(pid int) string { return fmt.Sprintf("nodeping-sim-%d-", pid) }

// ReapStale deletes the namespaces and working directories of clusters whose process no longer
// runs (killed before it could tear down).
func ReapStale() {
	dead := func(pid int) bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err)
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			var pid, n int
			if _, err := fmt.Sscanf(e.Name(), "npsim%d-%d", &pid, &n); err == nil && dead(pid) {
				_ = run("ip", "netns", "delete", e.Name())
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "nodeping-sim-*-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "nodeping-sim-%d-", &pid); err == nil && dead(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// Node returns the node of that name.
func (c *Cluster) Node(name string) (Node, error) {
	for _, nd := range c.Nodes {
		if nd.Name == name {
			return nd, nil
		}
	}
	return Node{}, fmt.Errorf("simcluster: no node %q", name)
}

// Sample is one element of an instant query's result.
type Sample = promapi.Sample

// Query evaluates an instant PromQL query.
func (c *Cluster) Query(ctx context.Context, q string) ([]Sample, error) {
	return promapi.Query(ctx, c.PrometheusURL, q)
}
