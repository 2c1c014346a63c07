// Command benchrules serves the series that the agents of a synthetic cluster would write, in
// subset mode with the default probe plan, for a real Prometheus to scrape and run the shipped
// rules over (scripts/bench-rules). One process stands in for every node-exporter: it serves
// the agents in shards (/metrics?shard=I&of=S), each sample labelled with the instance and job
// its node-exporter would have, so the scrape job uses honor_labels.
//
// Per agent it writes what the shipped DaemonSet keeps (docs/scale.md): sent, received and RTT
// sum counters per pair for icmp, mtu, tcp and udp; the RTT histogram per destination zone for
// icmp; about thirty self-metrics; and node-exporter's node_textfile_mtime_seconds for the file.
// Counters grow with the wall clock at the shipped rates (10 icmp, 1 mtu, 1 tcp and 5 udp probes
// per pair per 15 s); with --blackhole NAME every probe to and from that node is lost.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/targets"
)

// protocols and their probes per pair per 15 s cycle, as the shipped DaemonSet sends them.
var protocols = []struct {
	name  string
	count float64
}{{"icmp", 10}, {"mtu", 1}, {"tcp", 1}, {"udp", 5}}

// buckets of nodeping_rtt_seconds: 50µs doubling, 15 of them.
func buckets() []float64 {
	b := make([]float64, 15)
	for i := range b {
		b[i] = 50e-6 * float64(int(1)<<i)
	}
	return b
}

// selfMetrics are the agent's own series (values do not matter to the rules).
var selfMetrics = []string{
	`nodeping_build_info{goversion="go1.27.3",revision="bench",version="bench"}`,
	`nodeping_cycle_duration_seconds`, `nodeping_cycle_overruns_total`, `nodeping_cycles_total`,
	`nodeping_inflight_table_full_total{protocol="icmp"}`, `nodeping_late_replies_total{protocol="icmp"}`,
	`nodeping_nodes_list_last_load_timestamp_seconds`, `nodeping_nodes_list_load_errors_total`, `nodeping_nodes_list_nodes`,
	`nodeping_receive_errors_total{protocol="icmp"}`, `nodeping_resolve_errors_total`, `nodeping_textfile_write_errors_total`,
	`nodeping_targets{state="probed"}`, `nodeping_targets{state="grace"}`,
	`nodeping_icmp_socket_info{ip_family="ipv4",mode="raw"}`,
	`nodeping_responder_answered_total{protocol="tcp"}`, `nodeping_responder_answered_total{protocol="udp"}`,
	`nodeping_responder_dropped_total{protocol="udp",reason="rate_limited"}`,
	`nodeping_send_errors_total{ip_family="ipv4",protocol="icmp"}`, `nodeping_send_errors_total{ip_family="ipv4",protocol="udp"}`,
	`nodeping_probe_failures_total{protocol="tcp",reason="timeout"}`, `nodeping_probe_failures_total{protocol="tcp",reason="refused"}`,
	`nodeping_dns_request_duration_seconds_sum{resolver="10.96.0.10:53"}`, `nodeping_dns_request_duration_seconds_count{resolver="10.96.0.10:53"}`,
	`nodeping_dns_responses_total{resolver="10.96.0.10:53",name="kubernetes.default.svc.cluster.local.",rcode="NOERROR"}`,
	`nodeping_probe_plan_info{mode="subset"}`, `nodeping_probe_plan_subset_peers`, `nodeping_probe_plan_peers`,
	`nodeping_probe_plan_zone_pairs_min_pairs`,
}

type agent struct {
	node     nodelist.Node
	labels   string // instance and job
	pairs    []pair
	hists    []string // label sets of the icmp histogram, one per destination zone
	lossAll  bool     // blackholed source
	fileName string
}

type pair struct {
	labels string // without protocol
	lost   bool
}

func main() {
	var (
		nodes, zones int
		listen       string
		blackhole    string
	)
	flag.IntVar(&nodes, "nodes", 1000, "nodes in the synthetic cluster")
	flag.IntVar(&zones, "zones", 3, "zones, of equal size")
	flag.StringVar(&listen, "listen", "127.0.0.1:0", "address to serve on; the chosen one is printed on stdout")
	flag.StringVar(&blackhole, "blackhole", "", "a node that loses every probe to and from it")
	table := flag.Bool("table", false, "print docs/scale.md's series table for 10, 100, 1,000 and 5,000 nodes in --zones zones, and exit")
	promtoolRules := flag.String("promtool-test", "", "print a promtool test file over this rules file, with 5m of the series the rules read (icmp and mtu pairs, node_textfile_mtime_seconds) as input, and exit")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *table {
		printTable(zones)
		return
	}
	if *promtoolRules != "" {
		printPromtoolTest(syntheticList(nodes, zones), *promtoolRules, blackhole)
		return
	}

	l := syntheticList(nodes, zones)
	plan := targets.Build(l, shippedPlan)
	byName := map[string]nodelist.Node{}
	for _, n := range l.Nodes {
		byName[n.Name] = n
	}
	agents := make([]agent, len(l.Nodes))
	series := 0
	for i, n := range l.Nodes {
		a := agent{node: n, labels: fmt.Sprintf(`instance="%s:9100",job="node-exporter"`, n.Name), lossAll: n.Name == blackhole}
		dz := map[string]bool{}
		for _, d := range plan.Peers(n.Name) {
			dn := byName[d]
			a.pairs = append(a.pairs, pair{
				labels: fmt.Sprintf(`source_node="%s",source_zone="%s",destination_node="%s",destination_zone="%s",destination_ip="%s",ip_family="ipv4"`,
					n.Name, n.Zone, dn.Name, dn.Zone, dn.IPv4),
				lost: a.lossAll || d == blackhole,
			})
			if !dz[dn.Zone] {
				dz[dn.Zone] = true
				a.hists = append(a.hists, fmt.Sprintf(`source_node="%s",source_zone="%s",destination_zone="%s",ip_family="ipv4",protocol="icmp"`, n.Name, n.Zone, dn.Zone))
			}
		}
		agents[i] = a
		series += len(a.pairs)*3*len(protocols) + len(a.hists)*18 + len(selfMetrics) + 2
	}
	st := plan.Stats()
	log.Info("synthetic cluster", "nodes", nodes, "zones", zones, "mode", st.Mode, "pairs", st.Pairs, "series", series)

	start := time.Now()
	le := buckets()
	http.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		shard, _ := strconv.Atoi(r.URL.Query().Get("shard"))
		of, _ := strconv.Atoi(r.URL.Query().Get("of"))
		if of < 1 {
			of = 1
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		bw := bufio.NewWriterSize(w, 1<<16)
		cycles := time.Since(start).Seconds() / 15
		now := float64(time.Now().Unix())
		for i := shard; i < len(agents); i += of {
			writeAgent(bw, &agents[i], cycles, now, le)
		}
		bw.Flush()
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	if err := http.Serve(ln, nil); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// printPromtoolTest writes a promtool test whose input is 5 minutes of the series the rules read,
// at 30s steps, so that `promtool test rules` evaluates every group 11 times over them.
func printPromtoolTest(l nodelist.List, rules, blackhole string) {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	plan := targets.Build(l, shippedPlan)
	byName := map[string]nodelist.Node{}
	for _, n := range l.Nodes {
		byName[n.Name] = n
	}
	fmt.Fprintf(w, "rule_files: [%q]\nevaluation_interval: 30s\ntests:\n  - interval: 30s\n    input_series:\n", rules)
	for _, n := range l.Nodes {
		inst := fmt.Sprintf(`instance="%s:9100",job="node-exporter"`, n.Name)
		fmt.Fprintf(w, "      - series: 'node_textfile_mtime_seconds{file=\"/var/lib/node_exporter/textfile_collector/nodeping.prom\",%s}'\n        values: '0+30x10'\n", inst)
		for _, d := range plan.Peers(n.Name) {
			dn := byName[d]
			lbl := fmt.Sprintf(`source_node="%s",source_zone="%s",destination_node="%s",destination_zone="%s",destination_ip="%s",ip_family="ipv4",%s`,
				n.Name, n.Zone, dn.Name, dn.Zone, dn.IPv4, inst)
			lost := n.Name == blackhole || d == blackhole
			for _, pr := range []struct {
				name string
				per  int
			}{{"icmp", 20}, {"mtu", 2}} {
				recv := pr.per
				if lost {
					recv = 0
				}
				fmt.Fprintf(w, "      - series: 'nodeping_packets_sent_total{%s,protocol=\"%s\"}'\n        values: '0+%dx10'\n", lbl, pr.name, pr.per)
				fmt.Fprintf(w, "      - series: 'nodeping_packets_received_total{%s,protocol=\"%s\"}'\n        values: '0+%dx10'\n", lbl, pr.name, recv)
				fmt.Fprintf(w, "      - series: 'nodeping_rtt_seconds_total{%s,protocol=\"%s\"}'\n        values: '0+%gx10'\n", lbl, pr.name, float64(recv)*0.0004)
			}
		}
	}
	fmt.Fprint(w, "    promql_expr_test:\n      - expr: vector(1)\n        eval_time: 5m\n        exp_samples: [{labels: '{}', value: 1}]\n")
}

// syntheticList is n single-stack nodes named node-00000.. in zones zone-a.. taken in turn.
func syntheticList(n, zones int) nodelist.List {
	l := nodelist.List{}
	for i := range n {
		l.Nodes = append(l.Nodes, nodelist.Node{
			Name: fmt.Sprintf("node-%05d", i), Zone: fmt.Sprintf("zone-%c", 'a'+i%zones), Ready: true, Schedulable: true,
			IPv4: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		})
	}
	return l
}

// shippedPlan is the probe plan of the shipped DaemonSet and chart (--full-mesh-max=50): subset
// mode above 50 nodes. The binary's own default keeps a full mesh up to 5,000 nodes.
var shippedPlan = targets.Options{FullMeshMax: targets.RecommendedFullMeshMax, SubsetPeers: targets.DefaultSubsetPeers, ZonePairMin: targets.DefaultZonePairMin}

// printTable prints the series per agent and per cluster, from the plan's real peers of every
// node: "with --rtt-detail" adds the min/max/stddev gauges and a histogram for every protocol,
// "shipped" is what the DaemonSet keeps (counters for every protocol, the
// histogram for icmp only). selfSeries is the self-metrics, DNS probe and responders.
func printTable(zones int) {
	const selfSeries = 50
	p := len(protocols)
	fmt.Println("| Nodes | Mode | Peers per agent (mean / max) | Series per agent, with `--rtt-detail` (mean / max) | Series per agent, shipped (mean / max) | Series per cluster, with `--rtt-detail` | Series per cluster, shipped |")
	fmt.Println("|---:|---|---|---|---|---:|---:|")
	for _, n := range []int{10, 100, 1000, 5000} {
		l := syntheticList(n, zones)
		for _, o := range []targets.Options{{FullMeshMax: 1 << 30, SubsetPeers: 8, ZonePairMin: 3}, shippedPlan} {
			plan := targets.Build(l, o)
			if o.FullMeshMax == shippedPlan.FullMeshMax && n <= o.FullMeshMax {
				continue // below the shipped threshold its plan is the full-mesh row
			}
			zoneOf := map[string]string{}
			for _, nd := range l.Nodes {
				zoneOf[nd.Name] = nd.Zone
			}
			var peers, maxPeers, detail, maxDetail, shipped, maxShipped int
			for _, nd := range l.Nodes {
				ps := plan.Peers(nd.Name)
				dz := map[string]bool{}
				for _, d := range ps {
					dz[zoneOf[d]] = true
				}
				t := 6*p*len(ps) + 18*len(dz)*p + selfSeries
				s := 3*p*len(ps) + 18*len(dz) + selfSeries
				peers += len(ps)
				detail += t
				shipped += s
				maxPeers, maxDetail, maxShipped = max(maxPeers, len(ps)), max(maxDetail, t), max(maxShipped, s)
			}
			mode := plan.Mode()
			if plan.Mode() == targets.ModeFullMesh && n > shippedPlan.FullMeshMax {
				mode += " (forced)"
			}
			fmt.Printf("| %d | %s | %.1f / %d | %.0f / %d | %.0f / %d | %d | %d |\n", n, mode,
				float64(peers)/float64(n), maxPeers, float64(detail)/float64(n), maxDetail, float64(shipped)/float64(n), maxShipped, detail, shipped)
		}
	}
}

func writeAgent(w *bufio.Writer, a *agent, cycles, now float64, le []float64) {
	for _, p := range a.pairs {
		for _, pr := range protocols {
			sent := float64(int64(cycles * pr.count))
			recv := sent
			if p.lost {
				recv = 0
			}
			fmt.Fprintf(w, "nodeping_packets_sent_total{%s,protocol=%q,%s} %g\n", p.labels, pr.name, a.labels, sent)
			fmt.Fprintf(w, "nodeping_packets_received_total{%s,protocol=%q,%s} %g\n", p.labels, pr.name, a.labels, recv)
			fmt.Fprintf(w, "nodeping_rtt_seconds_total{%s,protocol=%q,%s} %g\n", p.labels, pr.name, a.labels, recv*0.0004)
		}
	}
	per := float64(int64(cycles*10)) * float64(len(a.pairs))
	for _, h := range a.hists {
		for _, b := range le {
			v := 0.0
			if b >= 0.0004 {
				v = per
			}
			fmt.Fprintf(w, "nodeping_rtt_seconds_bucket{%s,le=\"%g\",%s} %g\n", h, b, a.labels, v)
		}
		fmt.Fprintf(w, "nodeping_rtt_seconds_bucket{%s,le=\"+Inf\",%s} %g\n", h, a.labels, per)
		fmt.Fprintf(w, "nodeping_rtt_seconds_sum{%s,%s} %g\n", h, a.labels, per*0.0004)
		fmt.Fprintf(w, "nodeping_rtt_seconds_count{%s,%s} %g\n", h, a.labels, per)
	}
	for _, m := range selfMetrics {
		if m[len(m)-1] == '}' {
			fmt.Fprintf(w, "%s,%s} 1\n", m[:len(m)-1], a.labels)
		} else {
			fmt.Fprintf(w, "%s{%s} 1\n", m, a.labels)
		}
	}
	// A file written this cycle: NodePingTextfileStale reads the agent's own timestamp.
	fmt.Fprintf(w, "nodeping_last_write_timestamp_seconds{%s} %g\n", a.labels, now)
	fmt.Fprintf(w, "node_textfile_mtime_seconds{file=\"/var/lib/node_exporter/textfile_collector/nodeping.prom\",%s} %g\n", a.labels, now)
}
