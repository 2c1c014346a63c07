// Command nodeping-sim runs a simulated cluster on this machine (network namespaces as nodes, in
// zones joined by a router; the real agent and node-exporter on every node; a real Prometheus),
// injects a fault, and prints where to look. Ctrl-C tears everything down. Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodeping/nodeping/internal/simcluster"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const faultSpecs = `none, loss:NODE:PERCENT, blackhole:NODE, link:NODE:NODE, zone-link:ZONE:ZONE, mtu:NODE:BYTES`

// inject parses a fault spec and injects it.
func inject(c *simcluster.Cluster, spec string) (*simcluster.Fault, error) {
	parts := strings.Split(spec, ":")
	arg := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	num := func(i int) (int, error) {
		n, err := strconv.Atoi(arg(i))
		if err != nil {
			return 0, fmt.Errorf("--fault %q: %q is not a number", spec, arg(i))
		}
		return n, nil
	}
	want := map[string]int{"none": 1, "loss": 3, "blackhole": 2, "link": 3, "zone-link": 3, "mtu": 3}
	if n, ok := want[parts[0]]; !ok || n != len(parts) {
		return nil, fmt.Errorf("--fault %q: want one of %s", spec, faultSpecs)
	}
	switch parts[0] {
	case "loss":
		p, err := num(2)
		if err != nil {
			return nil, err
		}
		return c.Loss(arg(1), p)
	case "blackhole":
		return c.Blackhole(arg(1))
	case "link":
		return c.BreakLink(arg(1), arg(2))
	case "zone-link":
		return c.BreakZoneLink(arg(1), arg(2))
	case "mtu":
		n, err := num(2)
		if err != nil {
			return nil, err
		}
		return c.MTUBlackhole(arg(1), n)
	}
	return nil, nil
}

// expect says what a fault should look like in the queries above.
func expect(spec string) string {
	parts := strings.Split(spec, ":")
	switch parts[0] {
	case "loss":
		return fmt.Sprintf("every pair to or from %s loses about %s%% (both directions cross its lossy input), every other pair nothing; the share-of-sources query shows %s near 1", parts[1], parts[2], parts[1])
	case "blackhole":
		return fmt.Sprintf("every node loses all packets to %s, and Prometheus can no longer scrape it (up == 0)", parts[1])
	case "link":
		return fmt.Sprintf("only the pairs %s<->%s lose everything; both nodes reach everyone else", parts[1], parts[2])
	case "zone-link":
		return fmt.Sprintf("every pair between %s and %s loses everything; pairs inside a zone and to the third zone do not", parts[1], parts[2])
	case "mtu":
		return fmt.Sprintf("nothing at the default 56-byte payload; only probes larger than %s bytes to %s are lost (the MTU probe will show it)", parts[2], parts[1])
	}
	return ""
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodeping-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 6, "number of nodes")
	zones := fs.Int("zones", 3, "number of zones (node i is in zone i mod zones)")
	agentBin := fs.String("agent-bin", "", "nodeping-agent binary to run on every node (required)")
	fault := fs.String("fault", "loss:node-2:30", "fault to inject: "+faultSpecs)
	faultAfter := fs.Duration("fault-after", 20*time.Second, "how long the cluster runs healthy before the fault")
	interval := fs.Duration("interval", 5*time.Second, "agent --interval")
	rules := fs.String("rules", "", "comma-separated Prometheus rule files to load")
	check := fs.Bool("check", false, "exit 0 once Prometheus shows the fault's loss (exit 1 if it does not within 2 minutes)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *agentBin == "" {
		fmt.Fprintln(stderr, "nodeping-sim: --agent-bin is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The MTU probe is on, as in the shipped DaemonSet, so that an MTU fault shows.
	cfg := simcluster.Config{Nodes: *nodes, Zones: *zones, AgentBin: *agentBin, Interval: *interval, Log: stdout,
		AgentArgs: []string{"--mtu", "1500"}}
	if *rules != "" {
		cfg.RuleFiles = strings.Split(*rules, ",")
	}
	c, err := simcluster.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-sim: %v\n", err)
		return 1
	}
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
  99th percentile RTT into each zone:
    histogram_quantile(0.99, sum by (destination_zone, le) (rate(nodeping_rtt_seconds_bucket[1m])))
`)
	if *fault == "none" {
		fmt.Fprintln(stdout, "\nNo fault injected. Ctrl-C to stop.")
		<-ctx.Done()
		return 0
	}
	fmt.Fprintf(stdout, "\nInjecting %q in %s, so that you can see the cluster healthy first...\n", *fault, *faultAfter)
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(*faultAfter):
	}
	f, err := inject(c, *fault)
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-sim: %v\n", err)
		return 2
	}
	injected := time.Now()
	fmt.Fprintf(stdout, "Fault on: %s.\nWhat to expect: %s\n", f, expect(*fault))
	if strings.HasPrefix(*fault, "mtu:") {
		// The agents' ICMP echoes are small; nothing to wait for until the MTU probe exists.
		if *check {
			return 0
		}
		fmt.Fprintln(stdout, "Ctrl-C to stop and tear everything down.")
		<-ctx.Done()
		return 0
	}
	fmt.Fprint(stdout, "Waiting for Prometheus to show it")
	q := `sum by (source_node, destination_node) (increase(nodeping_packets_sent_total[30s])) - sum by (source_node, destination_node) (increase(nodeping_packets_received_total[30s])) > 0`
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s, err := c.Query(ctx, q)
		if err == nil && len(s) > 0 {
			var pairs []string
			for _, x := range s {
				pairs = append(pairs, x.Labels["source_node"]+"->"+x.Labels["destination_node"])
			}
			fmt.Fprintf(stdout, "\nPrometheus shows loss %s after the fault, on %d pairs: %s\n", time.Since(injected).Round(time.Second), len(pairs), strings.Join(pairs, " "))
			break
		}
		if time.Since(injected) > 2*time.Minute {
			fmt.Fprintln(stdout, "\nnodeping-sim: no loss visible in Prometheus 2 minutes after the fault")
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
			fmt.Fprint(stdout, ".")
		}
	}
	if *check {
		return 0
	}
	if *rules != "" {
		waitForAlert(ctx, c, stdout, injected)
	}
	fmt.Fprintln(stdout, "Ctrl-C to stop and tear everything down.")
	<-ctx.Done()
	return 0
}

// waitForAlert polls Prometheus's ALERTS until a nodeping alert fires (the shipped rules use 2m
// windows and for: 1m, so that takes a minute or two) and prints it.
func waitForAlert(ctx context.Context, c *simcluster.Cluster, stdout io.Writer, since time.Time) {
	fmt.Fprint(stdout, "Waiting for the alert that names the culprit (the shipped rules need a minute or two)")
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for time.Since(since) < 5*time.Minute {
		s, err := c.Query(ctx, `ALERTS{alertstate="firing",alertname=~"NodePing.*"}`)
		if err == nil && len(s) > 0 {
			fmt.Fprintf(stdout, "\nFiring %s after the fault:\n", time.Since(since).Round(time.Second))
			for _, a := range s {
				var ls []string
				for _, k := range []string{"node", "zone", "source_zone", "destination_zone", "source_node", "destination_node"} {
					if v, ok := a.Labels[k]; ok {
						ls = append(ls, k+"="+v)
					}
				}
				fmt.Fprintf(stdout, "  %s{%s}\n", a.Labels["alertname"], strings.Join(ls, ", "))
			}
			fmt.Fprintf(stdout, "See them at %s/alerts\n", c.PrometheusURL)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(stdout, ".")
		}
	}
	fmt.Fprintln(stdout, "\nno alert fired within 5 minutes")
}
