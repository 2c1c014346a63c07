package results

import (
	"bytes"
	"flag"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodeping/nodeping/internal/testutil/golden"
	"github.com/nodeping/nodeping/pkg/probe"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ms(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x * float64(time.Millisecond))
	}
	return out
}

// fixture builds results from a fixed set of cycles, with every optional series (--rtt-detail).
func fixture() *Results { return fixtureWith("") }

func fixtureWith(compat string) *Results { return fixtureDetail(compat, true) }

func fixtureDetail(compat string, detail bool) *Results {
	r := New(Source{Node: "node-a", Zone: "zone-1"}, BuildInfo{Version: "1.2.3", Revision: "abc"}, compat)
	r.SetRTTDetail(detail)
	b := Pair{Kind: KindNode, Name: "node-b", Zone: "zone-1", IP: netip.MustParseAddr("198.18.0.2"), Protocol: "icmp"}
	b6 := Pair{Kind: KindNode, Name: "node-b", Zone: "zone-1", IP: netip.MustParseAddr("fd00::2"), Protocol: "icmp"}
	c := Pair{Kind: KindNode, Name: `node-"c"`, Zone: "zone-2", IP: netip.MustParseAddr("198.18.1.3"), Protocol: "icmp"}
	gone := Pair{Kind: KindNode, Name: "node-gone", Zone: "zone-2", IP: netip.MustParseAddr("198.18.1.9"), Protocol: "icmp"}
	ext := Pair{Kind: KindExternal, Name: "gateway", Host: "gw.example", IP: netip.MustParseAddr("198.18.9.1"), Protocol: "icmp"}
	// The same path over MTU-sized echoes: Flant's series must never take it.
	bMTU := Pair{Kind: KindNode, Name: "node-b", Zone: "zone-1", IP: netip.MustParseAddr("198.18.0.2"), Protocol: "mtu"}
	bTCP := Pair{Kind: KindNode, Name: "node-b", Zone: "zone-1", IP: netip.MustParseAddr("198.18.0.2"), Protocol: "tcp"}
	// A node probed over TCP only (its ICMP probe off or failed): no Flant series at all.
	dTCP := Pair{Kind: KindNode, Name: "node-d", Zone: "zone-2", IP: netip.MustParseAddr("198.18.1.4"), Protocol: "tcp"}
	dns := func(resolver, name, code string, d time.Duration) Sample {
		st := probe.Stats{Sent: 1}
		if code != "timeout" {
			st.Received, st.RTTs = 1, []time.Duration{d}
		}
		return Sample{Pair: Pair{Kind: KindDNS, Name: name, Host: resolver, Protocol: "dns"}, Stats: st, Code: code}
	}
	st := AgentState{
		Plan:          PlanState{Mode: "subset", SubsetPeers: 8, Peers: 11, ZonePairs: 6, ZonePairsCovered: 6, MinZonePairPairs: 3, MinObservingZones: 2},
		ListTooLarge:  1,
		TargetsProbed: 4, TargetsInGrace: 1, ListNodes: 4, ListSkipped: map[string]int{"no_address": 1, "bad_address": 2},
		ListLoadErrors: 1, ListLoaded: time.Unix(1700000000, 0), ICMPModes: map[string]string{"ipv4": "raw", "ipv6": "dgram"},
		Maintenance: map[string]string{"node-x": "cordoned"},
		// Every engine's totals, labelled by protocol: the UDP engine's as well as the ICMP one's.
		Engines:    []EngineStats{{Protocol: "icmp", EngineCounters: probe.EngineCounters{Late: 3}}, {Protocol: "udp", EngineCounters: probe.EngineCounters{Late: 5, RecvErrors: 1, TableFull: 2}}},
		Responders: []ResponderStats{{Protocol: "udp", Answered: 7, Dropped: map[string]uint64{"not_a_node": 2}}},
		Probes:     []ProbeStats{{Protocol: "icmp", Duration: 1200 * time.Millisecond, Success: true}, {Protocol: "mtu", Duration: 300 * time.Millisecond, Overruns: 2}},
	}
	observe := func(p Pair, st probe.Stats) { r.Observe(Sample{Pair: p, Stats: st}) }

	r.BeginCycle()
	observe(b, probe.Stats{Sent: 3, Received: 3, RTTs: ms(0.1, 0.2, 0.3)})
	observe(gone, probe.Stats{Sent: 3, Received: 0})
	r.EndCycle(1500*time.Millisecond, false, st)

	r.BeginCycle()
	observe(b, probe.Stats{Sent: 3, Received: 2, RTTs: ms(0.4, 2)})
	observe(bMTU, probe.Stats{Sent: 1, Received: 0})
	observe(bTCP, probe.Stats{Sent: 1, Received: 0, Failures: map[string]int{"refused": 1}})
	observe(dTCP, probe.Stats{Sent: 1, Received: 1, RTTs: ms(0.3)})
	observe(b6, probe.Stats{Sent: 3, Received: 3, RTTs: ms(0.05, 0.05, 0.05)})
	observe(c, probe.Stats{Sent: 3, Received: 0, SendErrors: 3})
	observe(ext, probe.Stats{Sent: 3, Received: 1, RTTs: ms(12)})
	r.EndCycle(16*time.Second, true, st)
	r.Observe(dns("10.96.0.10:53", "kubernetes.default.svc.cluster.local.", "NOERROR", 700*time.Microsecond))
	r.Observe(dns("10.96.0.10:53", "missing.example.", "NXDOMAIN", 3*time.Millisecond))
	r.Observe(dns("10.96.0.11:53", "kubernetes.default.svc.cluster.local.", "timeout", 2*time.Second))
	r.SetWriteTime(time.Unix(1700000015, 500000000))
	return r
}

func TestWriteTextGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := fixture().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	// The Go version is the one thing that depends on the build.
	got := strings.ReplaceAll(buf.String(), `goversion="`+goVersion()+`"`, `goversion="GO"`)
	golden.Check(t, filepath.Join("testdata", "results.prom"), got, *update)
}

// TestFlantCompatGolden checks Flant node-ping's series: names, labels, HELP, units (ms), and
// per-cycle gauges at 0 for a pair that answered nothing.
func TestFlantCompatGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := fixtureWith(CompatFlant).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	var flant strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if strings.Contains(line, "kube_node_ping_") || strings.Contains(line, "external_ping_") {
			flant.WriteString(line)
		}
	}
	golden.Check(t, filepath.Join("testdata", "flant.prom"), flant.String(), *update)
	var plain bytes.Buffer
	fixture().WriteText(&plain)
	if strings.Contains(plain.String(), "kube_node_ping_") {
		t.Error("Flant series written without --compat=flant")
	}
	// Flant's series are "ICMP packets" over IPv4, one per node: never TCP or MTU counters.
	for _, leak := range []string{"node-d", "fd00::2", "} 1\n" + "kube_node_ping_packets_sent_total{destination_node=\"node-b\",destination_node_ip_address=\"198.18.0.2\"} 7"} {
		if strings.Contains(flant.String(), leak) {
			t.Errorf("Flant series contain %q, which is not an IPv4 ICMP pair", leak)
		}
	}
}

func goVersion() string {
	var buf bytes.Buffer
	New(Source{}, BuildInfo{}, "").WriteText(&buf)
	s := buf.String()
	i := strings.Index(s, `goversion="`) + len(`goversion="`)
	return s[i : i+strings.IndexByte(s[i:], '"')]
}

// TestWriteTextParses checks the output with the reference parser: every family has the type
// and help of Families, values are as observed, and nothing carries a timestamp.
func TestWriteTextParses(t *testing.T) {
	var buf bytes.Buffer
	if err := fixture().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	byName := map[string]Family{}
	for _, f := range Families() {
		byName[f.Name] = f
	}
	for name, mf := range mfs {
		f, ok := byName[name]
		if !ok {
			t.Errorf("%s is not in Families()", name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != string(f.Type) || mf.GetHelp() != f.Help {
			t.Errorf("%s: type %s help %q, want %s %q", name, got, mf.GetHelp(), f.Type, f.Help)
		}
		for _, m := range mf.GetMetric() {
			if m.TimestampMs != nil {
				t.Errorf("%s has a timestamp", name)
			}
		}
	}
	find := func(name, dst string) float64 {
		for _, m := range mfs[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination_node" && l.GetValue() == dst && strings.Contains(m.String(), "198.18") {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no %s for %s", name, dst)
		return 0
	}
	if s, r := find("nodeping_packets_sent_total", "node-b"), find("nodeping_packets_received_total", "node-b"); s != 6 || r != 5 {
		t.Errorf("node-b sent %v received %v, want 6 and 5", s, r)
	}
	if strings.Contains(buf.String(), "node-gone") {
		t.Error("a node that left the list is still in the output")
	}
	h := mfs["nodeping_rtt_seconds"].GetMetric()
	if len(h) != 3 { // icmp to zone-1 over ipv4 and ipv6, tcp to zone-2; icmp to zone-2 answered nothing
		t.Fatalf("%d rtt histograms, want 3", len(h))
	}
	if c := h[0].GetHistogram().GetSampleCount() + h[1].GetHistogram().GetSampleCount() + h[2].GetHistogram().GetSampleCount(); c != 9 {
		t.Errorf("histograms count %d RTTs, want 9", c)
	}
}

// TestRTTDetailOff: without --rtt-detail (the DaemonSet's default) there are no per-pair RTT
// gauges, and only ICMP has an RTT histogram; the counters are all there.
func TestRTTDetailOff(t *testing.T) {
	var full, lean bytes.Buffer
	fixtureDetail("", true).WriteText(&full)
	fixtureDetail("", false).WriteText(&lean)
	for _, name := range []string{"nodeping_rtt_min_seconds{", "nodeping_rtt_max_seconds{", "nodeping_rtt_stddev_seconds{", "nodeping_external_rtt_min_seconds{"} {
		if !strings.Contains(full.String(), name) {
			t.Errorf("with --rtt-detail, no %s", name)
		}
		if strings.Contains(lean.String(), name) {
			t.Errorf("without --rtt-detail, %s is written", name)
		}
	}
	for _, line := range strings.Split(lean.String(), "\n") {
		if strings.HasPrefix(line, "nodeping_rtt_seconds_count{") && !strings.Contains(line, `protocol="icmp"`) {
			t.Errorf("without --rtt-detail, a non-ICMP histogram: %s", line)
		}
	}
	if !strings.Contains(full.String(), `nodeping_rtt_seconds_count{source_node="node-a",source_zone="zone-1",destination_zone="zone-2",ip_family="ipv4",protocol="tcp"}`) {
		t.Error("with --rtt-detail, no TCP histogram")
	}
	count := func(b bytes.Buffer, prefix string) int { return strings.Count(b.String(), "\n"+prefix) }
	for _, c := range []string{"nodeping_packets_sent_total{", "nodeping_packets_received_total{", "nodeping_rtt_seconds_total{"} {
		if count(full, c) != count(lean, c) || count(lean, c) == 0 {
			t.Errorf("%s: %d series with --rtt-detail, %d without; want the same, more than 0", c, count(full, c), count(lean, c))
		}
	}
}

// TestEngineCountersPerProtocol: every engine the agent reports, UDP as well as ICMP, gets the
// same counters, labelled by protocol, and its send errors from the start (at 0, both families).
func TestEngineCountersPerProtocol(t *testing.T) {
	r := New(Source{Node: "node-a"}, BuildInfo{}, "")
	st := AgentState{Engines: []EngineStats{
		{Protocol: "icmp", EngineCounters: probe.EngineCounters{Late: 1, RecvErrors: 2, TableFull: 3}},
		{Protocol: "udp", EngineCounters: probe.EngineCounters{Late: 4, RecvErrors: 5, TableFull: 6}},
	}}
	r.BeginCycle()
	r.Observe(Sample{Pair: Pair{Kind: KindNode, Name: "node-b", IP: netip.MustParseAddr("198.18.0.2"), Protocol: "udp"}, Stats: probe.Stats{Sent: 2, SendErrors: 2}})
	r.EndCycle(time.Second, false, st)
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`nodeping_inflight_table_full_total{protocol="icmp"} 3`, `nodeping_inflight_table_full_total{protocol="udp"} 6`,
		`nodeping_late_replies_total{protocol="icmp"} 1`, `nodeping_late_replies_total{protocol="udp"} 4`,
		`nodeping_receive_errors_total{protocol="icmp"} 2`, `nodeping_receive_errors_total{protocol="udp"} 5`,
		`nodeping_send_errors_total{ip_family="ipv4",protocol="icmp"} 0`, `nodeping_send_errors_total{ip_family="ipv6",protocol="icmp"} 0`,
		`nodeping_send_errors_total{ip_family="ipv4",protocol="udp"} 2`, `nodeping_send_errors_total{ip_family="ipv6",protocol="udp"} 0`,
	} {
		if !strings.Contains(buf.String(), "\n"+want+"\n") {
			t.Errorf("no line %s in:\n%s", want, buf.String())
		}
	}
	// Without an engine (the pro-bing ICMP engine counts none of these), none is written.
	var none bytes.Buffer
	New(Source{Node: "node-a"}, BuildInfo{}, "").WriteText(&none)
	for _, name := range []string{"nodeping_inflight_table_full_total", "nodeping_late_replies_total", "nodeping_receive_errors_total", "nodeping_send_errors_total"} {
		if strings.Contains(none.String(), "\n"+name) {
			t.Errorf("%s written with no engine", name)
		}
	}
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool not installed (apt-get install prometheus)")
	}
	var buf bytes.Buffer
	if err := fixture().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestLabelKeysFromFamily ties every family's declared label names to what it renders: each sample
// carries exactly the family's labels, in its order (plus le on histogram buckets).
func TestLabelKeysFromFamily(t *testing.T) {
	var buf bytes.Buffer
	if err := fixtureWith(CompatFlant).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Family{}
	for _, f := range Families() {
		byName[f.Name] = f
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		f, ok := byName[name]
		if !ok && f.Type != Histogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if g, ok2 := byName[strings.TrimSuffix(name, suffix)]; ok2 && g.Type == Histogram && strings.HasSuffix(name, suffix) {
					f, ok = g, true
				}
			}
		}
		if !ok {
			t.Errorf("sample %q is of no family", line)
			continue
		}
		seen[f.Name] = true
		var got []string
		if rest != "" {
			labels, _, _ := strings.Cut(rest, "} ")
			for _, kv := range strings.Split(labels, `",`) {
				k, _, _ := strings.Cut(kv, `="`)
				got = append(got, k)
			}
		}
		want := append([]string(nil), f.Labels...)
		if strings.HasPrefix(line, f.Name+"_bucket") {
			want = append(want, "le")
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: sample has labels %v, family declares %v", line, got, want)
		}
	}
	for _, f := range Families() {
		if !seen[f.Name] {
			t.Errorf("the fixture renders no sample of %s: its labels are untested", f.Name)
		}
	}
}

func TestRTTBucketsSorted(t *testing.T) {
	for i := 1; i < len(rttBuckets); i++ {
		if rttBuckets[i] <= rttBuckets[i-1] {
			t.Fatalf("bucket %d (%v) not above %v", i, rttBuckets[i], rttBuckets[i-1])
		}
	}
}

// BenchmarkWriteText renders the output of a 1,000-node cluster.
func BenchmarkWriteText(b *testing.B) {
	r := New(Source{Node: "self", Zone: "z"}, BuildInfo{}, "")
	r.BeginCycle()
	for i := 0; i < 1000; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)})
		r.Observe(Sample{Pair: Pair{Kind: KindNode, Name: "node-" + ip.String(), Zone: "z", IP: ip, Protocol: "icmp"},
			Stats: probe.Stats{Sent: 10, Received: 10, RTTs: ms(0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2)}})
	}
	r.EndCycle(time.Second, false, AgentState{})
	b.ReportAllocs()
	for b.Loop() {
		if err := r.WriteText(discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
