// Command rulecampaign runs the synthetic fault campaign against the shipped rules through
// promtool and prints, per fault class, precision, recall, the median and worst time to the right
// alert and alerts per fault. scripts/campaign runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/rulecampaign"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		slog.Error("campaign failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rulecampaign", flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "random seed")
	n := fs.Int("cases", 240, "number of cases")
	rules := fs.String("rules", "manifests/rules/nodeping.rules.yml", "rules file under test")
	batch := fs.Int("batch", 10, "cases per promtool run")
	parallel := fs.Int("parallel", 2, "promtool runs at once")
	keep := fs.String("keep", "", "write the promtool test files to this directory and keep them")
	classes := fs.String("classes", "", "comma-separated fault classes to run (default all)")
	rescore := fs.Bool("rescore", false, "score the promtool reports already in -keep (of a run with the same -seed, -cases, -classes and -clusters) instead of running promtool; cases without a report are left out")
	scrape := fs.Int("scrape", rulecampaign.StepSeconds, "seconds between scrapes and rule evaluations: 15, or a multiple of it (30 is kube-prometheus-stack's default)")
	clusters := fs.String("clusters", "", "comma-separated cluster shapes to use (default all: 12n-3z, 38n-3z, 60n-5z-k8)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		return fmt.Errorf("promtool not found (apt-get install prometheus): %w", err)
	}
	dir := *keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "nodeping-campaign-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cls := filterNamed(rulecampaign.Classes(), *classes, func(c rulecampaign.Class) string { return c.Name })
	cts := filterNamed(rulecampaign.Clusters(), *clusters, func(c rulecampaign.Cluster) string { return c.Name })
	if len(cls) == 0 || len(cts) == 0 {
		return fmt.Errorf("no class or cluster left after -classes %q -clusters %q", *classes, *clusters)
	}
	if *scrape <= 0 || *scrape%rulecampaign.StepSeconds != 0 {
		return fmt.Errorf("-scrape %d: want a positive multiple of %d", *scrape, rulecampaign.StepSeconds)
	}
	cases := rulecampaign.Generate(*seed, *n, cts, cls)
	for i := range cases {
		cases[i].Scrape = *scrape
	}
	start := time.Now()
	var fired map[int][]rulecampaign.Fired
	if *rescore {
		f, seen, err := rulecampaign.Load(dir)
		if err != nil {
			return err
		}
		var done []rulecampaign.Case
		for _, cs := range cases {
			if seen[cs.ID] {
				done = append(done, cs)
			}
		}
		fmt.Printf("rescoring %d of %d cases from %s\n", len(done), len(cases), dir)
		cases, fired = done, f
	} else if fired, err = rulecampaign.Run(context.Background(), rulecampaign.Options{Promtool: promtool, RulesPath: *rules, Dir: dir, Batch: *batch, Parallel: *parallel}, cases); err != nil {
		return err
	}
	scores, outcomes := rulecampaign.Score(cases, fired, cls)
	fmt.Printf("synthetic campaign: seed %d, %d cases, %ds scrape and evaluation, rules %s, %s in promtool\n", *seed, len(cases), *scrape, *rules, time.Since(start).Round(time.Second))
	rulecampaign.Report(os.Stdout, scores, outcomes)
	return nil
}

// filterNamed keeps the items of all whose name is in the comma-separated names, or all of them
// when names is empty.
func filterNamed[T any](all []T, names string, name func(T) string) []T {
	if names == "" {
		return all
	}
	var out []T
	for _, c := range all {
		if strings.Contains(","+names+",", ","+name(c)+",") {
			out = append(out, c)
		}
	}
	return out
}
