//go:build linux

// Command nodeping-sim runs a simulated cluster on this machine (network namespaces as nodes, in
// zones joined by a router; the real agent and node-exporter on every node; a real Prometheus),
// injects a fault, and prints where to look and every alert the fault raises. Ctrl-C tears
// everything down. `nodeping-sim campaign` runs a seeded random fault campaign instead and prints
// precision, recall and time to the right alert per fault class. Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodeping/nodeping/internal/simcluster"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// clusterFlags are the flags the demo and the campaign share.
type clusterFlags struct {
	nodes, zones, scale int
	agentBin, rules     string
	interval            time.Duration
	agentArgs           listFlag
}

func (f *clusterFlags) register(fs *flag.FlagSet, defaultScale int) {
	fs.IntVar(&f.nodes, "nodes", 6, "number of nodes")
	fs.IntVar(&f.zones, "zones", 3, "number of zones (node i is in zone i mod zones)")
	fs.StringVar(&f.agentBin, "agent-bin", "", "nodeping-agent binary to run on every node (required)")
	fs.StringVar(&f.rules, "rules", "", "comma-separated Prometheus rule files to load")
	fs.IntVar(&f.scale, "scale", defaultScale, "divide the rules' windows and for: by this factor (1: as shipped)")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "agent --interval")
	fs.Var(&f.agentArgs, "agent-arg", "extra agent flag, repeatable (e.g. --agent-arg=--subset-peers=8)")
}

// config checks the flags and returns the cluster's configuration; the rules are scaled into dir.
// start builds the cluster the flags describe (its rules in a temporary directory, tweak applied
// to its config) under a context that SIGINT and SIGTERM cancel. On failure c is nil and code is
// the exit code (2: bad flags, 1: the cluster did not start); otherwise done removes what start
// made, after the caller's own teardown.
func (f *clusterFlags) start(prog string, log, stderr io.Writer, tweak func(*simcluster.Config)) (ctx context.Context, c *simcluster.Cluster, done func(), code int) {
	dir, err := os.MkdirTemp("", "nodeping-sim-rules-")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return nil, nil, nil, 1
	}
	cfg, err := f.config(log, dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return nil, nil, nil, 2
	}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	c, err = simcluster.Start(ctx, cfg)
	if err != nil {
		stop()
		os.RemoveAll(dir)
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return nil, nil, nil, 1
	}
	return ctx, c, func() { stop(); os.RemoveAll(dir) }, 0
}

func (f *clusterFlags) config(stdout io.Writer, dir string) (simcluster.Config, error) {
	if f.agentBin == "" {
		return simcluster.Config{}, errors.New("--agent-bin is required")
	}
	if f.nodes < 2 || f.zones < 1 || f.zones > f.nodes {
		return simcluster.Config{}, fmt.Errorf("--nodes %d --zones %d: want at least 2 nodes and 1..nodes zones", f.nodes, f.zones)
	}
	if f.scale < 1 {
		return simcluster.Config{}, fmt.Errorf("--scale %d: want 1 or more", f.scale)
	}
	// The MTU probe is on, as in the shipped DaemonSet, so that an MTU fault shows.
	cfg := simcluster.Config{Nodes: f.nodes, Zones: f.zones, AgentBin: f.agentBin, Interval: f.interval, Log: stdout,
		AgentArgs: append([]string{"--mtu", "1500"}, f.agentArgs...)}
	if f.rules == "" {
		return cfg, nil
	}
	for i, r := range strings.Split(f.rules, ",") {
		data, err := os.ReadFile(r)
		if err != nil {
			return cfg, err
		}
		path := filepath.Join(dir, fmt.Sprintf("%d-%s", i, filepath.Base(r)))
		if err := os.WriteFile(path, simcluster.ScaleRules(data, f.scale), 0o644); err != nil {
			return cfg, err
		}
		cfg.RuleFiles = append(cfg.RuleFiles, path)
	}
	return cfg, nil
}

// expect says what a fault should look like in Prometheus.
func expect(s simcluster.Spec) string {
	var parts []string
	for _, p := range append([]simcluster.Spec{s}, s.Parts...) {
		a := func(i int) string {
			if i < len(p.Nodes) {
				return p.Nodes[i]
			}
			return p.Zones[i-len(p.Nodes)]
		}
		var e string
		switch p.Kind {
		case "loss":
			e = fmt.Sprintf("%s drops %g%% of the echoes it receives and of those it sends: every pair to or from it loses about %.0f%% of its round trips, every other pair nothing", a(0), p.Percent, 100*(1-(1-p.Percent/100)*(1-p.Percent/100)))
		case "blackhole":
			e = fmt.Sprintf("every node loses all packets to %s, and Prometheus can no longer scrape it (up == 0)", a(0))
		case "isolate":
			e = fmt.Sprintf("%s loses every peer (its own echo requests are dropped), while they all still reach it", a(0))
		case "link":
			e = fmt.Sprintf("only the pairs %s<->%s lose everything; both nodes reach everyone else", a(0), a(1))
		case "zone-link":
			e = fmt.Sprintf("every pair between %s and %s loses everything; pairs inside a zone and to other zones do not", a(0), a(1))
		case "partition":
			e = fmt.Sprintf("%s's nodes reach each other and no one else; Prometheus still scrapes them", a(0))
		case "mtu":
			e = fmt.Sprintf("nothing at the default 56-byte payload; only echoes larger than %d bytes to %s are lost (the MTU probe, protocol=\"mtu\", shows it)", p.Bytes, a(0))
		case "latency":
			e = fmt.Sprintf("every round trip to or from %s takes %s longer (jitter ±%s)", a(0), p.RTT, p.Jitter)
		case "zone-latency":
			e = fmt.Sprintf("every round trip between %s and %s takes %s longer (jitter ±%s)", a(0), a(1), p.RTT, p.Jitter)
		case "stop-agent":
			e = fmt.Sprintf("%s's agent stops and removes its file: its series vanish, its node-exporter still answers", a(0))
		case "cordoned-blackhole":
			e = fmt.Sprintf("%s is cordoned (every agent reports it in maintenance), then blackholed: no alert should fire", a(0))
		case "background-loss":
			e = fmt.Sprintf("every pair loses about %g%%: no alert should fire", p.Percent)
		}
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "; and ")
}

// visibleQuery returns a query that shows the fault in the agents' series, and what it shows.
func visibleQuery(s simcluster.Spec) (q, what string) {
	kind := s.Kind
	if kind == "+" {
		kind = s.Parts[0].Kind
	}
	switch kind {
	case "latency", "zone-latency":
		rtt := s.RTT
		if s.Kind == "+" {
			rtt = s.Parts[0].RTT
		}
		return fmt.Sprintf(`sum by (source_node, destination_node) (rate(nodeping_rtt_seconds_total{protocol="icmp"}[20s])) / sum by (source_node, destination_node) (rate(nodeping_packets_received_total{protocol="icmp"}[20s])) > %g`, rtt.Seconds()/2), "slow"
	case "stop-agent", "cordoned-blackhole":
		return "", "" // nothing to see in the pair series, or only what must not alert
	}
	return `sum by (source_node, destination_node) (increase(nodeping_packets_sent_total[30s])) - sum by (source_node, destination_node) (increase(nodeping_packets_received_total[30s])) > 0`, "loss"
}

// parseArgs parses args into fs; ok is false when the command is to exit at once with code: 0
// after --help, 2 on a bad flag or an argument left over (told to stderr as prog's).
func parseArgs(fs *flag.FlagSet, args []string, prog string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see --help)\n", prog, fs.Arg(0))
		return 2, false
	}
	return 0, true
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "campaign" {
		return runCampaign(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("nodeping-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodeping-sim [flags]        run a simulated cluster and inject one fault\n       nodeping-sim campaign [flags]  run a seeded random fault campaign (campaign --help)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cf clusterFlags
	cf.register(fs, 1)
	fault := fs.String("fault", "loss:node-2:30", "fault to inject: "+simcluster.SpecSyntax())
	faultAfter := fs.Duration("fault-after", 20*time.Second, "how long the cluster runs healthy before the fault")
	check := fs.Bool("check", false, "exit 0 once Prometheus shows the fault (exit 1 if it does not within 2 minutes)")
	if code, ok := parseArgs(fs, args, "nodeping-sim", stderr); !ok {
		return code
	}
	// The fault is checked before anything is built or started.
	spec, err := simcluster.ParseSpec(*fault)
	if err == nil {
		err = spec.Check(simcluster.Names(cf.nodes, cf.zones))
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-sim: --%v\n", err)
		return 2
	}
	var withRules bool
	ctx, c, done, code := cf.start("nodeping-sim", stdout, stderr, func(cfg *simcluster.Config) { withRules = len(cfg.RuleFiles) > 0 })
	if c == nil {
		return code
	}
	defer done()
	defer func() {
		fmt.Fprintln(stdout, "nodeping-sim: tearing down")
		if err := c.Close(); err != nil {
			fmt.Fprintf(stderr, "nodeping-sim: teardown: %v\n", err)
		}
	}()

	fmt.Fprintf(stdout, "\nCluster up: %d nodes in zones %s. Working directory (logs, nodes list, textfiles): %s\n", len(c.Nodes), strings.Join(c.Zones, ", "), c.Dir())
	for _, nd := range c.Nodes {
		fmt.Fprintf(stdout, "  %-8s %-7s %-15s %s\n", nd.Name, nd.Zone, nd.IPv4, nd.IPv6)
	}
	first := c.Nodes[0]
	fmt.Fprintf(stdout, "\nPrometheus: %s   (graph: %s/graph)\n", c.PrometheusURL, c.PrometheusURL)
	fmt.Fprintf(stdout, "A node's node-exporter, serving its agent's file:\n  ip netns exec %s curl -s http://%s:9100/metrics | grep ^nodeping_packets\n", first.NS, first.IPv4)
	fmt.Fprintf(stdout, `
Queries to paste into it:
  loss ratio per pair:
    1 - sum by (source_node, destination_node) (rate(nodeping_packets_received_total[1m]))
      / sum by (source_node, destination_node) (rate(nodeping_packets_sent_total[1m]))
  share of sources that lose each destination (the culprit stands out):
    avg by (destination_node) ((1 - sum by (source_node, destination_node) (rate(nodeping_packets_received_total[1m]))
      / sum by (source_node, destination_node) (rate(nodeping_packets_sent_total[1m]))) > bool 0.05)
  mean RTT per pair:
    sum by (source_node, destination_node) (rate(nodeping_rtt_seconds_total{protocol="icmp"}[1m]))
      / sum by (source_node, destination_node) (rate(nodeping_packets_received_total{protocol="icmp"}[1m]))
`)
	if spec.Kind == "none" {
		fmt.Fprintln(stdout, "\nNo fault injected. Ctrl-C to stop.")
		<-ctx.Done()
		return 0
	}
	fmt.Fprintf(stdout, "\nInjecting %q in %s, so that you can see the cluster healthy first...\n", spec, *faultAfter)
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(*faultAfter):
	}
	f, err := c.Inject(spec)
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-sim: %v\n", err)
		return 1
	}
	injected := time.Now()
	fmt.Fprintf(stdout, "Fault on: %s.\nWhat to expect: %s\n", f, expect(spec))
	if q, what := visibleQuery(spec); what != "" {
		fmt.Fprintf(stdout, "Waiting for Prometheus to show it")
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s, err := c.Query(ctx, q)
			if err == nil && len(s) > 0 {
				var pairs []string
				for _, x := range s {
					pairs = append(pairs, x.Labels["source_node"]+"->"+x.Labels["destination_node"])
				}
				fmt.Fprintf(stdout, "\nPrometheus shows %s pairs %s after the fault, %d of them: %s\n", what, time.Since(injected).Round(time.Second), len(pairs), strings.Join(pairs, " "))
				break
			}
			if time.Since(injected) > 2*time.Minute {
				fmt.Fprintf(stdout, "\nnodeping-sim: nothing %s visible in Prometheus 2 minutes after the fault\n", what)
				return 1
			}
			select {
			case <-ctx.Done():
				return 0
			case <-tick.C:
				fmt.Fprint(stdout, ".")
			}
		}
	}
	if *check {
		return 0
	}
	if withRules {
		var want []string
		for _, a := range spec.Expected(c.ZoneOf) {
			want = append(want, a.String())
		}
		reportAlerts(ctx, c, stdout, injected, want, 6*time.Minute/time.Duration(cf.scale)+time.Minute)
	}
	fmt.Fprintln(stdout, "Ctrl-C to stop and tear everything down.")
	<-ctx.Done()
	return 0
}

// reportAlerts prints every alert that fires after the fault, as it fires, until every expected
// alert has fired and 30 s more have passed (to show stray ones), or until within; then it says
// which expected alerts are missing and which fired unexpected.
func reportAlerts(ctx context.Context, c *simcluster.Cluster, stdout io.Writer, since time.Time, want []string, within time.Duration) {
	if len(want) == 0 {
		fmt.Fprintf(stdout, "No alert should fire for this fault; watching for %s", within.Round(time.Second))
	} else {
		fmt.Fprintf(stdout, "Waiting for the alerts that name the culprit (%s; gross loss is named within about a minute, gray loss once the baseline holds 3 minutes)", strings.Join(want, " "))
	}
	seen := map[string]bool{}
	var allAt time.Time
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for time.Since(since) < within && (allAt.IsZero() || time.Since(allAt) < 30*time.Second) {
		if fired, err := c.FiringAlerts(ctx); err == nil {
			for _, a := range fired {
				if !seen[a] {
					seen[a] = true
					fmt.Fprintf(stdout, "\nFiring %s after the fault: %s", time.Since(since).Round(time.Second), a)
				}
			}
		}
		if allAt.IsZero() && len(want) > 0 {
			all := true
			for _, w := range want {
				all = all && seen[w]
			}
			if all {
				allAt = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(stdout, ".")
		}
	}
	fmt.Fprintln(stdout)
	var missing, extra []string
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
		if !seen[w] {
			missing = append(missing, w)
		}
	}
	for a := range seen {
		if !wanted[a] {
			extra = append(extra, a)
		}
	}
	switch {
	case len(missing) == 0 && len(extra) == 0 && len(want) > 0:
		fmt.Fprintf(stdout, "All %d expected alerts fired, and nothing else.\n", len(want))
	case len(missing) == 0 && len(extra) == 0:
		fmt.Fprintln(stdout, "No alert fired, as expected.")
	default:
		if len(missing) > 0 {
			fmt.Fprintf(stdout, "Expected but not fired: %s\n", strings.Join(missing, " "))
		}
		if len(extra) > 0 {
			fmt.Fprintf(stdout, "Fired but not expected: %s\n", strings.Join(extra, " "))
		}
	}
	fmt.Fprintf(stdout, "See them at %s/alerts\n", c.PrometheusURL)
}
