package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/testutil/logbuf"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/resolve"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
)

// fakeClock is the loop's time in these tests: Sleep returns at once, having moved the time on,
// and probes move it by as long as they "take".
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	onSleep func(n int) // called at the nth Sleep (from 1), between two cycles
	sleeps  int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps++
	c.onSleep(c.sleeps)
	if err := ctx.Err(); err != nil {
		return err
	}
	c.advance(max(d, 0))
	return nil
}

// fakeProbe reports, for every target, what stats gives, after taking took of the clock; a run
// for which fail returns an error reports its samples and then fails.
type fakeProbe struct {
	clock  *fakeClock
	runs   int
	starts []time.Duration // since the epoch of the clock
	seen   []int           // targets of each run
	got    []Target        // the targets of every run
	stats  func(run int, t Target) probe.Stats
	took   func(run int) time.Duration
	fail   func(run int) error
}

var epoch = time.Unix(1_800_000_000, 0)

func (f *fakeProbe) Run(ctx context.Context, targets []Target, rep Reporter) error {
	run := f.runs
	f.runs++
	f.starts = append(f.starts, f.clock.Now().Sub(epoch))
	f.seen = append(f.seen, len(targets))
	f.got = append(f.got, targets...)
	if f.took != nil {
		f.clock.advance(f.took(run))
	}
	for _, t := range targets {
		st := probe.Stats{Sent: 2, Received: 2, RTTs: []time.Duration{time.Millisecond, time.Millisecond}}
		if f.stats != nil {
			st = f.stats(run, t)
		}
		rep.Report(results.Sample{Pair: t.Pair, Stats: st})
	}
	if f.fail != nil {
		return f.fail(run)
	}
	return nil
}

// fakeResolver answers from a map of fully qualified names, with no TTL (the cache keeps each
// answer for 30s).
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) Lookup(_ context.Context, fqdn string) (resolve.Answer, error) {
	if a, ok := r[fqdn]; ok {
		return resolve.Answer{Addrs: a}, nil
	}
	return resolve.Answer{}, fmt.Errorf("lookup %s: no such host", fqdn)
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

const (
	list6 = `[{"name":"self","ipAddress":"198.18.0.1"},{"name":"n2","ipAddress":"198.18.0.2"},{"name":"n3","ipAddress":"198.18.0.3"},` +
		`{"name":"n4","ipAddress":"198.18.0.4"},{"name":"n5","ipAddress":"198.18.0.5"},{"name":"n6","ipAddress":"198.18.0.6"}]`
	listAB  = `{"nodes":[{"name":"self","zone":"z","addresses":["198.18.0.1"]},{"name":"a","zone":"z","addresses":["198.18.0.2"]},{"name":"b","zone":"z","addresses":["198.18.0.3"]}]}`
	listAC  = `{"nodes":[{"name":"self","zone":"z","addresses":["198.18.0.1"]},{"name":"a","zone":"z","addresses":["198.18.0.2"]},{"name":"c","zone":"z","addresses":["198.18.0.4"]}]}`
	pairFmt = `{source_node="self",source_zone="z",destination_node="%s",destination_zone="z",destination_ip="%s",ip_family="ipv4",protocol="%s"}`
)

func pair(node, ip, protocol string) string { return fmt.Sprintf(pairFmt, node, ip, protocol) }

// hugeList is a Flant nodes list of n nodes.
func hugeList(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"h%d","ipAddress":"198.18.%d.%d"}`, i, 100+i/250, 1+i%250)
	}
	b.WriteString("]")
	return b.String()
}

// externalList is a list of this node alone and n external targets, x0.. at 198.18.10.1...
func externalList(n int) string {
	var b strings.Builder
	b.WriteString(`{"nodes":[{"name":"self","addresses":["198.18.0.1"]}],"external_targets":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"x%d","host":"198.18.10.%d"}`, i, i+1)
	}
	b.WriteString("]}")
	return b.String()
}

// maintenancePlan is the shipped manifests' plan: subset mode above 50 nodes.
var maintenancePlan = func() targets.Options {
	o := targets.DefaultOptions()
	o.FullMeshMax = targets.RecommendedFullMeshMax
	return o
}()

// maintenanceList is 5,000 nodes in 3 zones, 500 of them in maintenance: m0 (the agent's own
// node, cordoned), the first of m0's peers not Ready and about half of the others cordoned, and
// the rest of the 500 among the nodes m0 does not probe.
var maintenanceList = func() string {
	const n, inMaintenance = 5000, 500
	nodes := make([]nodelist.Node, n)
	for i := range nodes {
		nodes[i] = nodelist.Node{Name: fmt.Sprintf("m%d", i), Zone: fmt.Sprintf("z%d", i%3), Ready: true, Schedulable: true,
			IPv4: netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)})}
	}
	l := nodelist.List{Nodes: nodes}
	byName := map[string]int{}
	for i, nd := range nodes {
		byName[nd.Name] = i
	}
	nodes[0].Schedulable = false
	marked := 1
	peers := targets.Build(l, maintenancePlan).Peers("m0")
	for k, p := range peers {
		switch {
		case k == 0:
			nodes[byName[p]].Ready = false
		case k%2 == 1:
			nodes[byName[p]].Schedulable = false
		default:
			continue
		}
		marked++
	}
	for i := len(nodes) - 1; marked < inMaintenance; i-- {
		if nodes[i].Ready && nodes[i].Schedulable && !slices.Contains(peers, nodes[i].Name) {
			nodes[i].Schedulable = false
			marked++
		}
	}
	b, err := nodelist.Encode(l)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func decodeList(t *testing.T, s string) nodelist.List {
	t.Helper()
	l, _, err := nodelist.Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// maintenanceWant is the exposition text of the maintenance series that self's file must hold:
// self and its peers, those not ready (sorted by name, as the file does).
func maintenanceWant(t *testing.T, self string) string {
	l := decodeList(t, maintenanceList)
	names := append(targets.Build(l, maintenancePlan).Peers(self), self)
	slices.Sort(names)
	var b strings.Builder
	inMaintenance := 0
	for _, nd := range l.Nodes {
		if nd.State() != nodelist.StateReady {
			inMaintenance++
		}
	}
	if inMaintenance != 500 || len(l.Nodes) != 5000 {
		t.Fatalf("the list has %d nodes, %d in maintenance; want 5000 and 500", len(l.Nodes), inMaintenance)
	}
	for _, name := range names {
		for _, nd := range l.Nodes {
			if nd.Name == name && nd.State() != nodelist.StateReady {
				fmt.Fprintf(&b, "nodeping_node_maintenance{destination_node=%q,reason=%q} 1\n", name, nd.State())
			}
		}
	}
	return b.String()
}

// oneICMP is the rows' usual probes: one ICMP probe on c, every echo answered in 1ms.
func oneICMP(c *fakeClock) []Registration {
	return []Registration{{Protocol: "icmp", Probe: &fakeProbe{clock: c}}}
}

// TestLoop runs the agent's loop with fake probes and a fake clock, cycle by cycle, and compares
// the families it names in the file with literal exposition text (kube-state-metrics' style).
func TestLoop(t *testing.T) {
	cases := []struct {
		name     string
		lists    map[int]string // the nodes list written before cycle n (0: the first)
		cfg      func(c *Config)
		probes   func(c *fakeClock) []Registration
		cycles   int
		families []string
		want     string
		check    func(t *testing.T, file string, probes []Registration)
	}{
		{
			name:  "a node that joins is in grace: its losses do not count until grace ends",
			lists: map[int]string{0: listAB, 1: listAC},
			cfg:   func(c *Config) { c.Grace = 20 * time.Second },
			probes: func(c *fakeClock) []Registration {
				return []Registration{{Protocol: "icmp", Probe: &fakeProbe{clock: c, stats: func(_ int, t Target) probe.Stats {
					if t.Pair.Name == "c" { // c answers nothing
						return probe.Stats{Sent: 2, SendErrors: 1}
					}
					return probe.Stats{Sent: 2, Received: 2}
				}}}}
			},
			cycles:   4, // c joins at 15s: in grace at 15s and 30s, counted at 45s
			families: []string{"nodeping_packets_sent_total", "nodeping_packets_received_total", "nodeping_targets", "nodeping_send_errors_total"},
			want: "nodeping_packets_received_total" + pair("a", "198.18.0.2", "icmp") + " 8\n" +
				"nodeping_packets_received_total" + pair("c", "198.18.0.4", "icmp") + " 0\n" +
				"nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 8\n" +
				"nodeping_packets_sent_total" + pair("c", "198.18.0.4", "icmp") + " 2\n" +
				`nodeping_send_errors_total{ip_family="ipv4",protocol="icmp"} 1` + "\n" +
				`nodeping_targets{state="grace"} 0` + "\n" +
				`nodeping_targets{state="probed"} 2` + "\n",
		},
		{
			name:  "the first list's targets get no grace",
			lists: map[int]string{0: listAB},
			cfg:   func(c *Config) { c.Grace = time.Hour },
			probes: func(c *fakeClock) []Registration {
				return []Registration{{Protocol: "icmp", Probe: &fakeProbe{clock: c, stats: func(int, Target) probe.Stats { return probe.Stats{Sent: 2} }}}}
			},
			cycles:   1,
			families: []string{"nodeping_packets_sent_total", "nodeping_targets"},
			want: "nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 2\n" +
				"nodeping_packets_sent_total" + pair("b", "198.18.0.3", "icmp") + " 2\n" +
				`nodeping_targets{state="grace"} 0` + "\n" +
				`nodeping_targets{state="probed"} 2` + "\n",
		},
		{
			name:  "every engine's totals, UDP's as well as ICMP's, labelled by protocol, with its send errors from 0",
			lists: map[int]string{0: listAB},
			cfg: func(c *Config) {
				c.Engines = []Engine{
					{Protocol: "icmp", Counters: func() probe.EngineCounters { return probe.EngineCounters{Late: 1} }},
					{Protocol: "udp", Counters: func() probe.EngineCounters { return probe.EngineCounters{Late: 2, RecvErrors: 3, TableFull: 4} }},
				}
				c.ICMPModes = map[string]string{"ipv4": "dgram"}
			},
			probes: oneICMP,
			cycles: 1,
			families: []string{"nodeping_icmp_socket_info", "nodeping_inflight_table_full_total", "nodeping_late_replies_total",
				"nodeping_receive_errors_total", "nodeping_send_errors_total"},
			want: `nodeping_icmp_socket_info{ip_family="ipv4",mode="dgram"} 1` + "\n" +
				`nodeping_inflight_table_full_total{protocol="icmp"} 0` + "\n" +
				`nodeping_inflight_table_full_total{protocol="udp"} 4` + "\n" +
				`nodeping_late_replies_total{protocol="icmp"} 1` + "\n" +
				`nodeping_late_replies_total{protocol="udp"} 2` + "\n" +
				`nodeping_receive_errors_total{protocol="icmp"} 0` + "\n" +
				`nodeping_receive_errors_total{protocol="udp"} 3` + "\n" +
				`nodeping_send_errors_total{ip_family="ipv4",protocol="icmp"} 0` + "\n" +
				`nodeping_send_errors_total{ip_family="ipv6",protocol="icmp"} 0` + "\n" +
				`nodeping_send_errors_total{ip_family="ipv4",protocol="udp"} 0` + "\n" +
				`nodeping_send_errors_total{ip_family="ipv6",protocol="udp"} 0` + "\n",
		},
		{
			name:     "a reloaded list: a node that left is gone, one that joined is probed",
			lists:    map[int]string{0: listAB, 2: listAC},
			probes:   oneICMP,
			cycles:   3,
			families: []string{"nodeping_packets_sent_total", "nodeping_nodes_list_nodes", "nodeping_nodes_list_last_load_timestamp_seconds"},
			want: "nodeping_nodes_list_last_load_timestamp_seconds 1.80000003e+09\n" +
				"nodeping_nodes_list_nodes 3\n" +
				"nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 6\n" +
				"nodeping_packets_sent_total" + pair("c", "198.18.0.4", "icmp") + " 2\n",
		},
		{
			name:     "a malformed list is counted, and the last good one stays in use",
			lists:    map[int]string{0: listAB, 1: `[{"name": "broken", `},
			probes:   oneICMP,
			cycles:   3,
			families: []string{"nodeping_packets_sent_total", "nodeping_nodes_list_load_errors_total"},
			want: "nodeping_nodes_list_load_errors_total 2\n" +
				"nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 6\n" +
				"nodeping_packets_sent_total" + pair("b", "198.18.0.3", "icmp") + " 6\n",
		},
		{
			name:     "a list above nodelist.MaxNodes is refused and counted, and the last good one stays in use",
			lists:    map[int]string{0: listAB, 1: hugeList(nodelist.MaxNodes + 1)},
			probes:   oneICMP,
			cycles:   3,
			families: []string{"nodeping_nodes_list_load_errors_total", "nodeping_nodes_list_nodes", "nodeping_nodes_list_too_large_total"},
			want: "nodeping_nodes_list_load_errors_total 2\n" +
				"nodeping_nodes_list_nodes 3\n" +
				"nodeping_nodes_list_too_large_total 2\n",
		},
		{
			name:     "the probe plan is visible: full mesh, no K, this node's peers",
			lists:    map[int]string{0: listAB},
			probes:   oneICMP,
			cycles:   1,
			families: []string{"nodeping_probe_plan_info", "nodeping_probe_plan_peers", "nodeping_probe_plan_subset_peers"},
			want: "nodeping_probe_plan_info{mode=\"full-mesh\"} 1\n" +
				"nodeping_probe_plan_peers 2\n" +
				"nodeping_probe_plan_subset_peers 0\n",
		},
		{
			name:  "every N: a probe runs every third cycle and its series stay in between",
			lists: map[int]string{0: listAB},
			probes: func(c *fakeClock) []Registration {
				return []Registration{
					{Protocol: "icmp", Probe: &fakeProbe{clock: c}},
					{Protocol: "mtu", Probe: &fakeProbe{clock: c}, Scope: NodesOnly, Every: 3},
				}
			},
			cycles:   5, // mtu runs in cycles 0 and 3
			families: []string{"nodeping_packets_sent_total"},
			want: "nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 10\n" +
				"nodeping_packets_sent_total" + pair("a", "198.18.0.2", "mtu") + " 4\n" +
				"nodeping_packets_sent_total" + pair("b", "198.18.0.3", "icmp") + " 10\n" +
				"nodeping_packets_sent_total" + pair("b", "198.18.0.3", "mtu") + " 4\n",
		},
		{
			name:  "an errored probe's pairs drop out of that cycle's file; the others stay",
			lists: map[int]string{0: listAB},
			probes: func(c *fakeClock) []Registration {
				return []Registration{
					{Protocol: "icmp", Probe: &fakeProbe{clock: c, took: func(int) time.Duration { return 2 * time.Second }}},
					{Protocol: "tcp", Probe: &fakeProbe{clock: c, took: func(int) time.Duration { return 500 * time.Millisecond },
						fail: func(run int) error {
							if run == 1 {
								return errors.New("connection storm")
							}
							return nil
						}}, Scope: NodesOnly},
				}
			},
			cycles:   2,
			families: []string{"nodeping_packets_sent_total", "nodeping_probe_success", "nodeping_probe_duration_seconds"},
			want: "nodeping_packets_sent_total" + pair("a", "198.18.0.2", "icmp") + " 4\n" +
				"nodeping_packets_sent_total" + pair("b", "198.18.0.3", "icmp") + " 4\n" +
				`nodeping_probe_duration_seconds{protocol="icmp"} 2` + "\n" +
				`nodeping_probe_duration_seconds{protocol="tcp"} 0.5` + "\n" +
				`nodeping_probe_success{protocol="icmp"} 1` + "\n" +
				`nodeping_probe_success{protocol="tcp"} 0` + "\n",
		},
		{
			name: "an external target is probed once per address family",
			lists: map[int]string{0: `{"nodes":[{"name":"self","addresses":["198.18.0.1"]}],"external_targets":[{"name":"gw","host":"gw.example"},` +
				`{"name":"lit","host":"::ffff:198.18.9.9"},{"name":"gone","host":"nowhere.example"}]}`},
			cfg: func(c *Config) {
				c.Resolver = fakeResolver{"gw.example.": addrs("198.18.9.1", "fd00::1", "198.18.9.2", "::ffff:198.18.9.3", "fd00::2")}
			},
			probes: func(c *fakeClock) []Registration {
				return []Registration{
					{Protocol: "icmp", Probe: &fakeProbe{clock: c}},
					{Protocol: "tcp", Probe: &fakeProbe{clock: c}, Scope: NodesOnly},
				}
			},
			cycles:   1,
			families: []string{"nodeping_external_packets_sent_total", "nodeping_resolve_errors_total"},
			want: `nodeping_external_packets_sent_total{source_node="self",source_zone="",destination_name="gw",destination_host="gw.example",destination_ip="198.18.9.1",ip_family="ipv4",protocol="icmp"} 2` + "\n" +
				`nodeping_external_packets_sent_total{source_node="self",source_zone="",destination_name="gw",destination_host="gw.example",destination_ip="fd00::1",ip_family="ipv6",protocol="icmp"} 2` + "\n" +
				`nodeping_external_packets_sent_total{source_node="self",source_zone="",destination_name="lit",destination_host="::ffff:198.18.9.9",destination_ip="198.18.9.9",ip_family="ipv4",protocol="icmp"} 2` + "\n" +
				"nodeping_resolve_errors_total 1\n",
		},
		{
			name: "an external address the policy refuses, written or resolved, is never probed and is counted by reason",
			lists: map[int]string{0: `{"nodes":[{"name":"self","addresses":["198.18.0.1"]}],"external_targets":[` +
				`{"name":"imds","host":"169.254.169.254"},{"name":"imds6","host":"fd00:ec2::254"},{"name":"alibaba","host":"100.100.100.200"},` +
				`{"name":"lo","host":"127.0.0.1"},{"name":"any","host":"::"},{"name":"mcast","host":"ff02::1"},` +
				`{"name":"sneaky","host":"meta.example"},{"name":"mixed","host":"mixed.example"}]}`},
			cfg: func(c *Config) {
				c.Resolver = fakeResolver{
					"meta.example.":  addrs("169.254.169.254", "::ffff:169.254.170.2"),
					"mixed.example.": addrs("fe80::1", "198.18.9.5", "fd00:ec2::254", "2001:db8::5"),
				}
			},
			probes:   oneICMP,
			cycles:   2,
			families: []string{"nodeping_external_packets_sent_total", "nodeping_external_addresses_refused_total"},
			want: `nodeping_external_addresses_refused_total{reason="link-local"} 2` + "\n" +
				`nodeping_external_addresses_refused_total{reason="loopback"} 2` + "\n" +
				`nodeping_external_addresses_refused_total{reason="metadata"} 12` + "\n" +
				`nodeping_external_addresses_refused_total{reason="multicast"} 2` + "\n" +
				`nodeping_external_addresses_refused_total{reason="unspecified"} 2` + "\n" +
				`nodeping_external_packets_sent_total{source_node="self",source_zone="",destination_name="mixed",destination_host="mixed.example",destination_ip="198.18.9.5",ip_family="ipv4",protocol="icmp"} 4` + "\n" +
				`nodeping_external_packets_sent_total{source_node="self",source_zone="",destination_name="mixed",destination_host="mixed.example",destination_ip="2001:db8::5",ip_family="ipv6",protocol="icmp"} 4` + "\n",
			check: func(t *testing.T, _ string, probes []Registration) {
				for _, tg := range probes[0].Probe.(*fakeProbe).got {
					if nodelist.RefusedTarget(tg.Pair.IP, false) != "" {
						t.Errorf("probe was given %s (%s)", tg.Pair.IP, tg.Pair.Name)
					}
				}
			},
		},
		{
			name:     "external targets past --max-external-targets are skipped and counted",
			lists:    map[int]string{0: externalList(5)},
			cfg:      func(c *Config) { c.MaxExternal = 3 },
			probes:   oneICMP,
			cycles:   1,
			families: []string{"nodeping_nodes_list_skipped_entries", "nodeping_targets"},
			want: `nodeping_nodes_list_skipped_entries{reason="too_many_external"} 2` + "\n" +
				`nodeping_targets{state="grace"} 0` + "\n" +
				`nodeping_targets{state="probed"} 3` + "\n",
			check: func(t *testing.T, _ string, probes []Registration) {
				var names []string
				for _, tg := range probes[0].Probe.(*fakeProbe).got {
					names = append(names, tg.Pair.Name)
				}
				if strings.Join(names, " ") != "x0 x1 x2" {
					t.Errorf("probed %v, want the first three, x0 x1 x2", names)
				}
			},
		},
		{
			name:     "the default cap is nodelist.MaxExternal",
			lists:    map[int]string{0: externalList(nodelist.MaxExternal + 1)},
			probes:   oneICMP,
			cycles:   1,
			families: []string{"nodeping_nodes_list_skipped_entries", "nodeping_targets"},
			want: `nodeping_nodes_list_skipped_entries{reason="too_many_external"} 1` + "\n" +
				`nodeping_targets{state="grace"} 0` + "\n" +
				fmt.Sprintf(`nodeping_targets{state="probed"} %d`, nodelist.MaxExternal) + "\n",
		},
		{
			name:   "above --full-mesh-max the agent probes its plan's peers only",
			lists:  map[int]string{0: list6},
			cfg:    func(c *Config) { c.Plan = targets.Options{FullMeshMax: 3, SubsetPeers: 2, ZonePairMin: 1} },
			probes: oneICMP,
			cycles: 1,
			check: func(t *testing.T, _ string, probes []Registration) {
				l, _, err := nodelist.Decode([]byte(list6))
				if err != nil {
					t.Fatal(err)
				}
				peers := targets.Build(l, targets.Options{FullMeshMax: 3, SubsetPeers: 2, ZonePairMin: 1}).Peers("self")
				seen := probes[0].Probe.(*fakeProbe).seen
				if len(peers) >= 5 || len(seen) != 1 || seen[0] != len(peers) {
					t.Errorf("probed %v targets, want the plan's %d peers %v (fewer than the 5 others)", seen, len(peers), peers)
				}
			},
		},
		{
			name:   "maintenance series name this node and its peers only, not every cordoned node of the list",
			lists:  map[int]string{0: maintenanceList},
			cfg:    func(c *Config) { c.NodeName, c.Plan = "m0", maintenancePlan },
			probes: oneICMP,
			cycles: 1,
			check: func(t *testing.T, file string, _ []Registration) {
				got := pick(file, []string{"nodeping_node_maintenance"})
				if want := maintenanceWant(t, "m0"); got != want {
					t.Errorf("maintenance series:\n%s\nwant (this node and its peers in maintenance):\n%s", got, want)
				}
				n := strings.Count(got, "\n")
				peers := len(targets.Build(decodeList(t, maintenanceList), maintenancePlan).Peers("m0"))
				t.Logf("5,000 nodes, 500 in maintenance, %d peers: %d maintenance series", peers, n)
				if n > peers+1 {
					t.Errorf("%d maintenance series for %d peers, want at most %d", n, peers, peers+1)
				}
			},
		},
		{
			name:  "an overrun is counted, and the next cycle starts at once, not a cycle later",
			lists: map[int]string{0: listAB},
			probes: func(c *fakeClock) []Registration {
				return []Registration{{Protocol: "icmp", Budget: 12 * time.Second, Probe: &fakeProbe{clock: c, took: func(run int) time.Duration {
					if run == 1 {
						return 20 * time.Second
					}
					return 10 * time.Second
				}}}}
			},
			cycles:   4,
			families: []string{"nodeping_cycle_overruns_total", "nodeping_cycles_total", "nodeping_probe_overruns_total", "nodeping_cycle_duration_seconds"},
			want: "nodeping_cycle_duration_seconds 10\n" +
				"nodeping_cycle_overruns_total 1\n" +
				"nodeping_cycles_total 4\n" +
				`nodeping_probe_overruns_total{protocol="icmp"} 1` + "\n",
			check: func(t *testing.T, _ string, probes []Registration) {
				starts := probes[0].Probe.(*fakeProbe).starts
				want := []time.Duration{0, 15 * time.Second, 35 * time.Second, 50 * time.Second}
				if fmt.Sprint(starts) != fmt.Sprint(want) {
					t.Errorf("cycles started at %v, want %v", starts, want)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			nodes, tf := filepath.Join(dir, "nodes.json"), filepath.Join(dir, "nodeping.prom")
			writeList := func(n int) {
				if l, ok := tc.lists[n]; ok {
					if err := os.WriteFile(nodes, []byte(l), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			writeList(0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var file []byte
			clock := &fakeClock{now: epoch}
			clock.onSleep = func(n int) {
				if n < tc.cycles {
					writeList(n)
					return
				}
				var err error
				if file, err = os.ReadFile(tf); err != nil {
					t.Error(err)
				}
				cancel()
			}
			probes := tc.probes(clock)
			cfg := Config{NodeName: "self", NodesFile: nodes, TextfilePath: tf, Interval: 15 * time.Second, Clock: clock,
				Resolver: fakeResolver{}, ResolveTimeout: time.Second, Probes: probes}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			a := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
			if err := a.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if got := pick(string(file), tc.families); got != tc.want {
				t.Errorf("after %d cycles:\n%s\nwant:\n%s", tc.cycles, got, tc.want)
			}
			if _, err := os.Stat(tf); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the file outlived the agent: %v", err)
			}
			if tc.check != nil {
				tc.check(t, string(file), probes)
			}
		})
	}
}

// pick keeps the samples of the named families, in file order.
func pick(file string, families []string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(file, "\n") {
		for _, f := range families {
			if strings.HasPrefix(line, f+"{") || strings.HasPrefix(line, f+" ") {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

// TestCycleDeadline: a probe that hangs is stopped after two intervals, counted as failed, and
// the next cycle starts; it runs on the real clock, for a tenth of a second.
func TestCycleDeadline(t *testing.T) {
	dir := t.TempDir()
	nodes, tf := filepath.Join(dir, "nodes.json"), filepath.Join(dir, "nodeping.prom")
	os.WriteFile(nodes, []byte(listAB), 0o644)
	runs := make(chan time.Time, 10)
	hang := probeFunc(func(ctx context.Context, _ []Target, _ Reporter) error {
		runs <- time.Now()
		<-ctx.Done()
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	a := New(Config{NodeName: "self", NodesFile: nodes, TextfilePath: tf, Interval: 50 * time.Millisecond, Resolver: fakeResolver{},
		Probes: []Registration{{Protocol: "icmp", Probe: hang, Budget: 40 * time.Millisecond}}}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	first := <-runs
	var second time.Time
	select {
	case second = <-runs:
	case <-time.After(5 * time.Second):
		t.Fatal("no second cycle within 5s: a hung probe held the loop")
	}
	b, _ := os.ReadFile(tf)
	cancel()
	<-done
	if gap := second.Sub(first); gap < 90*time.Millisecond || gap > time.Second {
		t.Errorf("second cycle %s after the first, want about two intervals (100ms)", gap)
	}
	for _, want := range []string{`nodeping_probe_success{protocol="icmp"} 0`, `nodeping_probe_overruns_total{protocol="icmp"} 1`, "nodeping_cycle_overruns_total 1"} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("file lacks %s:\n%s", want, b)
		}
	}
}

type probeFunc func(ctx context.Context, targets []Target, rep Reporter) error

func (f probeFunc) Run(ctx context.Context, targets []Target, rep Reporter) error {
	return f(ctx, targets, rep)
}

// countingResolver is a fakeResolver that records every name it is asked.
type countingResolver struct {
	fakeResolver
	mu    sync.Mutex
	asked map[string]int
}

func (r *countingResolver) Lookup(ctx context.Context, fqdn string) (resolve.Answer, error) {
	r.mu.Lock()
	r.asked[fqdn]++
	r.mu.Unlock()
	return r.fakeResolver.Lookup(ctx, fqdn)
}

// TestExternalLookups: over 8 cycles of 15s, each host name is asked once per 30s (the floor of
// the TTL, as this resolver tells none), fully qualified, however many targets share it; a name
// that does not resolve is counted every cycle and logged once.
func TestExternalLookups(t *testing.T) {
	dir := t.TempDir()
	nodes, tf := filepath.Join(dir, "nodes.json"), filepath.Join(dir, "nodeping.prom")
	os.WriteFile(nodes, []byte(`{"nodes":[{"name":"self","addresses":["198.18.0.1"]}],"external_targets":[`+
		`{"name":"gw","host":"gw.example.org"},{"name":"gw-again","host":"gw.example.org"},{"name":"gone","host":"gone.example.org"}]}`), 0o644)
	res := &countingResolver{fakeResolver: fakeResolver{"gw.example.org.": addrs("198.18.9.1")}, asked: map[string]int{}}
	const cycles = 8
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var file []byte
	clock := &fakeClock{now: epoch}
	clock.onSleep = func(n int) {
		if n == cycles {
			file, _ = os.ReadFile(tf)
			cancel()
		}
	}
	var logs logbuf.Buffer
	a := New(Config{NodeName: "self", NodesFile: nodes, TextfilePath: tf, Interval: 15 * time.Second, Clock: clock,
		Resolver: res, ResolveTimeout: time.Second, Probes: oneICMP(clock)}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// 0s, 15s, ... 105s: asked at 0s, 30s, 60s, 90s.
	if fmt.Sprint(res.asked) != "map[gone.example.org.:4 gw.example.org.:4]" {
		t.Errorf("asked %v over %d cycles, want each name fully qualified, 4 times (every 30s)", res.asked, cycles)
	}
	want := "nodeping_resolve_errors_total 8\n"
	if got := pick(string(file), []string{"nodeping_resolve_errors_total"}); got != want {
		t.Errorf("got %q, want %q: every cycle counts", got, want)
	}
	if n := logs.Count("cannot resolve external target"); n != 1 {
		t.Errorf("the failure was logged %d times in %d cycles, want once (every 10m at most):\n%s", n, cycles, logs.String())
	}
}
