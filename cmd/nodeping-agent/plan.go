package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/agent"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/targets"
)

// planFlags registers the probe-plan flags, the agent's own.
func planFlags(fs *flag.FlagSet, o *targets.Options) { agent.PlanFlags(fs, o) }

// runPlan is `nodeping-agent plan`: it prints the probe plan of a nodes list, one ordered pair a
// line, SOURCE<TAB>DESTINATION, for one node or for all. It sends nothing. Exit codes: 0 done,
// 1 the list does not read or decode, 2 bad usage.
func runPlan(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var (
		nodeName, nodesFile string
		o                   targets.Options
	)
	fs := flag.NewFlagSet("nodeping-agent plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&nodeName, "node-name", "", "print only the pairs this node probes (default: every node's)")
	fs.StringVar(&nodesFile, "nodes-file", "/etc/nodeping/nodes.json", "nodes list, in any format the agent reads")
	planFlags(fs, &o)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: nodeping-agent plan [flags]\n\nPrints the probe plan of a nodes list without sending anything: one line per ordered pair,\nSOURCE<TAB>DESTINATION (node names), for --node-name only or for every node. It is the plan the\nagents build with the same flags. NODEPING_NODES_FILE, NODEPING_FULL_MESH_MAX,\nNODEPING_SUBSET_PEERS and NODEPING_MAX_ZONES set the flags of the same name, as for the agent; flags win.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// The whole plan unless asked: $NODE_NAME in a pod must not narrow it silently.
	if envErr := cli.BindEnv(fs, getenv, "node-name"); envErr != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: %v\n", envErr)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nodeping-agent plan: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: %v\n", err)
		return 2
	}
	l, skips, err := nodelist.Load(nodesFile)
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: %v\n", err)
		return 1
	}
	for _, s := range skips {
		fmt.Fprintf(stderr, "nodeping-agent plan: entry skipped: %s\n", s)
	}
	p := targets.Build(l, o)
	w := bufio.NewWriter(stdout)
	if nodeName != "" {
		if !slices.ContainsFunc(l.Nodes, func(n nodelist.Node) bool { return n.Name == nodeName }) {
			fmt.Fprintf(stderr, "nodeping-agent plan: %s is not in the nodes list: it probes what an unlisted agent would, and nobody probes it\n", nodeName)
		}
		for _, d := range p.Peers(nodeName) {
			fmt.Fprintf(w, "%s\t%s\n", nodeName, d)
		}
	} else {
		p.Pairs(func(s, d string) { fmt.Fprintf(w, "%s\t%s\n", s, d) })
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: write: %v\n", err)
		return 1
	}
	st := p.Stats()
	fmt.Fprintf(stderr, "nodeping-agent plan: mode %s, %d nodes, %d zones, K %d, M %d: %d pairs, at most %d peers and %d observers per node; %d of %d zone pairs covered, at least %d pairs each; every node observed from at least %d zones\n",
		st.Mode, st.Nodes, st.Zones, st.SubsetPeers, st.ZonePairMin, st.Pairs, st.MaxPeers, st.MaxObservers, st.ZonePairsCovered, st.ZonePairs, st.MinZonePairPairs, st.MinObservingZones)
	if st.FoldedZones > 0 {
		fmt.Fprintf(stderr, "nodeping-agent plan: %d zones past --max-zones %d (%d nodes) are planned as one zone\n", st.FoldedZones, p.Options().MaxZones, st.FoldedNodes)
	}
	return 0
}
