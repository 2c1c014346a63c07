package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodeping/nodeping/internal/testutil/dnstest"
	"github.com/nodeping/nodeping/internal/testutil/netnstest"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/resolve"
	"github.com/nodeping/nodeping/pkg/results"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for raw ICMP sockets (CI runs as root)")
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

// localResolver asks a DNS server on loopback that knows one name, loopback.test., at 127.0.0.1,
// and answers NXDOMAIN for every other: no query leaves the machine.
func localResolver(t testing.TB) resolve.Backend {
	addr := dnstest.Start(t, func(name string) (int, string) {
		if name == "loopback.test." {
			return dns.RcodeSuccess, "127.0.0.1"
		}
		return dns.RcodeNameError, ""
	})
	return resolve.DNS{Servers: []string{addr}, Timeout: time.Second}
}

func newEngine(t *testing.T, cfg probe.ICMPConfig) *probe.ICMP {
	t.Helper()
	e, err := probe.NewICMP(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var fastICMP = probe.ICMPConfig{Count: 2, Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, Size: 56}

func newAgent(t *testing.T, cfg Config, p AddrProber) *Agent {
	cfg.Probes = []Registration{{Protocol: "icmp", Probe: AddrProbe(p)}}
	cfg.Resolver, cfg.Build = localResolver(t), results.BuildInfo{Version: "test"}
	return New(cfg, testLogger(t))
}

// readMetrics parses the textfile; nil when it does not exist.
func readMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return mfs
}

// value returns the value of the series of name whose labels include want; ok is false when
// there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(want) {
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// waitFile polls the textfile until cond holds for its metrics.
func waitFile(t *testing.T, path string, within time.Duration, what string, cond func(map[string]*dto.MetricFamily) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if mfs := readMetrics(t, path); mfs != nil && cond(mfs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// configMapDir lays out a directory the way the kubelet mounts a ConfigMap: nodes.json is a
// symlink to ..data/nodes.json, and ..data a symlink to a timestamped directory that each update
// replaces with an atomic rename.
type configMapDir struct {
	dir string
	gen int
}

func (c *configMapDir) update(t *testing.T, content string) {
	t.Helper()
	c.gen++
	ts := fmt.Sprintf("..2026_11_25_00_00_%02d.%d", c.gen, c.gen)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, ts, "nodes.json"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(c.dir, "nodes.json")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("..data/nodes.json", link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReloadFollowsConfigMapUpdates(t *testing.T) {
	requireRoot(t)
	cm := &configMapDir{dir: t.TempDir()}
	cm.update(t, `[{"name":"self","ipAddress":"127.0.0.1"},{"name":"node-a","ipAddress":"127.0.0.2"}]`)
	tf := filepath.Join(t.TempDir(), "nodeping.prom")
	a := newAgent(t, Config{NodeName: "self", NodesFile: filepath.Join(cm.dir, "nodes.json"), TextfilePath: tf,
		Interval: 100 * time.Millisecond, Grace: 0}, newEngine(t, fastICMP))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	sent := func(node string) func(map[string]*dto.MetricFamily) bool {
		return func(mfs map[string]*dto.MetricFamily) bool {
			v, ok := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": node})
			return ok && v > 0
		}
	}
	waitFile(t, tf, 5*time.Second, "node-a probed", sent("node-a"))

	// node-a leaves, node-b joins.
	cm.update(t, `{"nodes":[{"name":"self","zone":"z1","addresses":["127.0.0.1"]},{"name":"node-b","zone":"z2","addresses":["127.0.0.3","::1"]}]}`)
	waitFile(t, tf, 5*time.Second, "node-b probed on both families, node-a gone", func(mfs map[string]*dto.MetricFamily) bool {
		_, aThere := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "node-a"})
		v6, ok6 := value(mfs, "nodeping_packets_received_total", map[string]string{"destination_node": "node-b", "ip_family": "ipv6", "source_zone": "z1", "destination_zone": "z2"})
		return !aThere && sent("node-b")(mfs) && ok6 && v6 > 0
	})

	// A malformed update: counted, and the last good list stays in use.
	cm.update(t, `[{"name": "broken", `)
	waitFile(t, tf, 5*time.Second, "load error counted", func(mfs map[string]*dto.MetricFamily) bool {
		v, _ := value(mfs, "nodeping_nodes_list_load_errors_total", nil)
		return v >= 1
	})
	before, _ := value(readMetrics(t, tf), "nodeping_packets_sent_total", map[string]string{"destination_node": "node-b", "ip_family": "ipv4"})
	waitFile(t, tf, 5*time.Second, "node-b still probed after a malformed update", func(mfs map[string]*dto.MetricFamily) bool {
		v, _ := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "node-b", "ip_family": "ipv4"})
		return v > before
	})

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil
	if _, err := os.Stat(tf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("textfile left after shutdown: %v", err)
	}
}

// TestGraceForNewTargets blackholes a node that joins after start: while in grace its lost echoes
// do not count; after grace they do.
func TestGraceForNewTargets(t *testing.T) {
	ns := netnstest.New(t)
	ns.DropReplies("127.0.0.9")
	var (
		e   *probe.ICMP
		err error
	)
	ns.Do(func() { e, err = probe.NewICMP(fastICMP, testLogger(t)) })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.json")
	os.WriteFile(nodes, []byte(`[{"name":"self","ipAddress":"127.0.0.1"},{"name":"old","ipAddress":"127.0.0.2"}]`), 0o644)
	tf := filepath.Join(dir, "nodeping.prom")
	a := newAgent(t, Config{NodeName: "self", NodesFile: nodes, TextfilePath: tf, Interval: 250 * time.Millisecond, Grace: 1500 * time.Millisecond}, e)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFile(t, tf, 5*time.Second, "old node probed", func(mfs map[string]*dto.MetricFamily) bool {
		v, _ := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "old"})
		return v > 0
	})
	joined := time.Now()
	os.WriteFile(nodes+".tmp", []byte(`[{"name":"self","ipAddress":"127.0.0.1"},{"name":"old","ipAddress":"127.0.0.2"},{"name":"new","ipAddress":"127.0.0.9"}]`), 0o644)
	os.Rename(nodes+".tmp", nodes)
	waitFile(t, tf, 5*time.Second, "new node in grace, no loss counted", func(mfs map[string]*dto.MetricFamily) bool {
		s, ok := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "new"})
		g, _ := value(mfs, "nodeping_targets", map[string]string{"state": "grace"})
		return ok && s == 0 && g == 1
	})
	waitFile(t, tf, 10*time.Second, "new node's loss counted after grace", func(mfs map[string]*dto.MetricFamily) bool {
		s, _ := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "new"})
		r, _ := value(mfs, "nodeping_packets_received_total", map[string]string{"destination_node": "new"})
		return s > 0 && r == 0
	})
	if since := time.Since(joined); since < 1500*time.Millisecond {
		t.Errorf("loss counted %s after the node joined, before the 1.5s grace ended", since)
	}
}

func TestOnce(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	good := write("good.json", `{"nodes":[{"name":"self","addresses":["127.0.0.1"]},{"name":"peer","addresses":["127.0.0.5"]},{"name":"no-ip"},
		{"name":"cordoned","addresses":["127.0.0.6"],"schedulable":false},{"name":"down","addresses":["127.0.0.7"],"ready":false}],
		"external_targets":[{"name":"loopback","host":"loopback.test"},{"name":"nowhere","host":"nodeping-test.invalid"}]}`)
	cases := []struct {
		name, nodes, wantErr string
		check                func(t *testing.T, mfs map[string]*dto.MetricFamily)
	}{
		{name: "good list", nodes: good, check: func(t *testing.T, mfs map[string]*dto.MetricFamily) {
			if v, _ := value(mfs, "nodeping_packets_received_total", map[string]string{"destination_node": "peer"}); v != 2 {
				t.Errorf("peer received %v, want 2", v)
			}
			if v, _ := value(mfs, "nodeping_external_packets_received_total", map[string]string{"destination_name": "loopback", "destination_ip": "127.0.0.1"}); v != 2 {
				t.Errorf("external localhost received %v, want 2", v)
			}
			if v, _ := value(mfs, "nodeping_resolve_errors_total", nil); v != 1 {
				t.Errorf("resolve errors %v, want 1 (nodeping-test.invalid)", v)
			}
			if v, _ := value(mfs, "nodeping_nodes_list_skipped_entries", map[string]string{"reason": "no_address"}); v != 1 {
				t.Errorf("skipped no_address %v, want 1", v)
			}
			for node, reason := range map[string]string{"cordoned": "cordoned", "down": "not_ready"} {
				if v, ok := value(mfs, "nodeping_node_maintenance", map[string]string{"destination_node": node, "reason": reason}); !ok || v != 1 {
					t.Errorf("no nodeping_node_maintenance{destination_node=%q,reason=%q}", node, reason)
				}
			}
			if v, _ := value(mfs, "nodeping_packets_received_total", map[string]string{"destination_node": "cordoned"}); v != 2 {
				t.Errorf("a cordoned node is still probed: received %v, want 2", v)
			}
			if _, ok := value(mfs, "nodeping_packets_sent_total", map[string]string{"destination_node": "self"}); ok {
				t.Error("the agent probed itself")
			}
		}},
		{name: "malformed", nodes: write("bad.json", `[{"name": "x", "ipAddress": `), wantErr: "malformed: decode flant nodes list: line 1, column 27: unexpected end of JSON input"},
		{name: "empty", nodes: write("empty.json", "\n"), wantErr: "nodes list is empty"},
		{name: "missing", nodes: filepath.Join(dir, "missing.json"), wantErr: "read nodes file: open " + filepath.Join(dir, "missing.json") + ": no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tf := filepath.Join(t.TempDir(), "nodeping.prom")
			a := newAgent(t, Config{NodeName: "self", NodesFile: tc.nodes, TextfilePath: tf, Interval: time.Second, ResolveTimeout: time.Second, Once: true}, newEngine(t, fastICMP))
			err := a.Run(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run = %v, want an error containing %q", err, tc.wantErr)
				}
				if _, err := os.Stat(tf); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a textfile was written for a bad list: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, readMetrics(t, tf))
		})
	}
}

// AddrProber is satisfied by every engine.
var (
	_ AddrProber = (*probe.ICMP)(nil)
	_ AddrProber = (*probe.MTUProbe)(nil)
	_ AddrProber = (*probe.ProBing)(nil)
	_ AddrProber = (*probe.TCP)(nil)
	_ AddrProber = (*probe.UDP)(nil)
	_ DNSQuerier = (*probe.DNS)(nil)
)

// countingPinger counts the runs of a real pinger.
type countingPinger struct {
	AddrProber
	runs atomic.Int64
}

func (c *countingPinger) Run(ctx context.Context, t []netip.Addr) ([]probe.Stats, error) {
	c.runs.Add(1)
	return c.AddrProber.Run(ctx, t)
}

// TestProbeEvery runs a second probe every third cycle: it runs a third as often, and its series
// stay in the file in between.
func TestProbeEvery(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.json")
	os.WriteFile(nodes, []byte(`[{"name":"self","ipAddress":"127.0.0.1"},{"name":"peer","ipAddress":"127.0.0.2"}]`), 0o644)
	tf := filepath.Join(dir, "nodeping.prom")
	icmp := &countingPinger{AddrProber: newEngine(t, fastICMP)}
	slow := &countingPinger{AddrProber: newEngine(t, fastICMP)}
	a := New(Config{NodeName: "self", NodesFile: nodes, TextfilePath: tf, Interval: 100 * time.Millisecond, Resolver: localResolver(t),
		Probes: []Registration{{Protocol: "icmp", Probe: AddrProbe(icmp)}, {Protocol: "slow", Probe: AddrProbe(slow), Every: 3}}}, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for icmp.runs.Load() < 12 {
		if mfs := readMetrics(t, tf); mfs != nil {
			if _, ok := value(mfs, "nodeping_packets_sent_total", map[string]string{"protocol": "slow"}); !ok {
				t.Error("the every-3rd-cycle probe's series vanished between its runs")
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	i, s := icmp.runs.Load(), slow.runs.Load()
	if s < i/3 || s > i/3+1 {
		t.Errorf("icmp ran %d times, the every-3rd probe %d times; want about a third", i, s)
	}
}
