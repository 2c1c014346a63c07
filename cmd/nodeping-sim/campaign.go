//go:build linux

package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/simcluster"
)

// runCampaign is `nodeping-sim campaign`: seeded random faults on one simulated cluster with
// real agents, and the figures per fault class.
func runCampaign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodeping-sim campaign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clusterFlags
	cf.register(fs, 6)
	seed := fs.Uint64("seed", 1, "seed of the faults drawn (and of delay links' jitter)")
	cases := fs.Int("cases", 0, "number of faults (default: one per class)")
	classes := fs.String("classes", strings.Join(simcluster.CampaignClasses, ","), "fault classes to draw from, comma-separated")
	observe := fs.Duration("observe", 0, "longest a fault stays on (default: 6m divided by --scale, at least 1m)")
	linger := fs.Duration("linger", 0, "how long a fault stays on once its alerts fired, to catch stray ones (default: 3m divided by --scale, at least 20s)")
	settle := fs.Duration("settle", 0, "healthy time after each fault's alerts resolve (default: 2m divided by --scale)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodeping-sim campaign --agent-bin BIN --rules FILES [flags]\n\nRuns seeded random faults on a simulated cluster with real agents and prints, per fault class:\nclass cases precision recall median_s worst_s alerts_per_fault. Progress goes to stderr.\nShort run: --cases 3 --classes blackhole,partition,latency\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cf.interval = 2 * time.Second
	if code, ok := parseArgs(fs, args, "nodeping-sim campaign", stderr); !ok {
		return code
	}
	if cf.rules == "" {
		fmt.Fprintln(stderr, "nodeping-sim campaign: --rules is required (the campaign measures the alerts)")
		return 2
	}
	scaled := func(d, floor time.Duration) time.Duration { return max(d/time.Duration(max(cf.scale, 1)), floor) }
	cc := simcluster.CampaignConfig{Seed: *seed, Cases: *cases, Classes: strings.Split(*classes, ","), Scale: cf.scale,
		Observe: *observe, Linger: *linger, Settle: *settle, Log: stderr}
	if cc.Observe == 0 {
		cc.Observe = scaled(6*time.Minute, time.Minute)
	}
	if cc.Linger == 0 {
		cc.Linger = scaled(3*time.Minute, 20*time.Second)
	}
	if cc.Settle == 0 {
		cc.Settle = scaled(2*time.Minute, 0)
	}
	for _, class := range cc.Classes {
		if !slices.Contains(simcluster.CampaignClasses, class) {
			fmt.Fprintf(stderr, "nodeping-sim campaign: unknown class %q; want some of %s\n", class, strings.Join(simcluster.CampaignClasses, ","))
			return 2
		}
	}
	ctx, c, done, code := cf.start("nodeping-sim campaign", stderr, stderr, func(cfg *simcluster.Config) {
		cfg.ScrapeInterval = 2 * time.Second
		cfg.Seed = *seed
	})
	if c == nil {
		return code
	}
	defer done()
	defer c.Close()
	// Every pair answered on both protocols before the first fault.
	pairs := float64(2 * cf.nodes * (cf.nodes - 1))
	for start := time.Now(); ; time.Sleep(2 * time.Second) {
		s, err := c.Query(ctx, `count(nodeping:pair_loss_ratio:rate2m == 0) + count(nodeping:pair_mtu_loss_ratio:rate2m == 0)`)
		if err == nil && len(s) == 1 && s[0].Value >= pairs {
			break
		}
		if time.Since(start) > 3*time.Minute || ctx.Err() != nil {
			fmt.Fprintf(stderr, "nodeping-sim campaign: the cluster's pairs did not all answer within 3 minutes (%v, %v)\n", s, err)
			return 1
		}
	}
	started := time.Now()
	results, err := c.RunCampaign(ctx, cc)
	fmt.Fprintf(stdout, "# nodeping-sim campaign: seed %d, %d nodes in %d zones, %d faults in %s; rules' windows and for: divided by %d, agents every %s, scrapes every 2s\n",
		*seed, cf.nodes, cf.zones, len(results), time.Since(started).Round(time.Second), cf.scale, cf.interval)
	simcluster.WriteRows(stdout, simcluster.Summarize(results))
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-sim campaign: %v\n", err)
		return 1
	}
	return 0
}
