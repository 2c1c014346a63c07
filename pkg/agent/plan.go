package agent

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/targets"
)

// PlanOptions are the command line of `nodeping-agent plan`.
type PlanOptions struct {
	// NodeName, when set, narrows the plan to the pairs this node probes.
	NodeName, NodesFile string
	Plan                targets.Options
}

// planUsage is the text `nodeping-agent plan --help` prints before the flags.
const planUsage = `Usage: nodeping-agent plan [flags]

Prints the probe plan of a nodes list without sending anything: one line per ordered pair,
SOURCE<TAB>DESTINATION (node names), for --node-name only or for every node. It is the plan the
agents build with the same flags. NODEPING_NODES_FILE, NODEPING_FULL_MESH_MAX,
NODEPING_SUBSET_PEERS and NODEPING_MAX_ZONES set the flags of the same name, as for the agent; flags win.

Flags:
`

func (o *PlanOptions) flagSet() *flag.FlagSet {
	fs := cli.NewFlagSet("nodeping-agent plan")
	fs.StringVar(&o.NodeName, "node-name", "", "print only the pairs this node probes (default: every node's)")
	fs.StringVar(&o.NodesFile, "nodes-file", "/etc/nodeping/nodes.json", "nodes list, in any format the agent reads")
	planFlags(fs, &o.Plan)
	return fs
}

// PrintPlanUsage writes the help of `nodeping-agent plan`.
func PrintPlanUsage(w io.Writer) {
	var o PlanOptions
	cli.PrintUsage(w, planUsage, o.flagSet())
}

// ParsePlan reads the environment (not $NODEPING_NODE_NAME: $NODE_NAME in a pod must not narrow
// the plan silently), then the command line, and validates the result. It returns flag.ErrHelp
// for --help.
func ParsePlan(args []string, getenv func(string) string) (PlanOptions, error) {
	var o PlanOptions
	if err := cli.Parse(o.flagSet(), args, getenv, "node-name"); err != nil {
		return o, err
	}
	return o, o.Plan.Validate()
}

// WritePlan loads the nodes list and writes its probe plan to out, one ordered pair a line,
// SOURCE<TAB>DESTINATION, for o.NodeName or for every node. Skipped entries, an unlisted
// o.NodeName and the plan's statistics go to notes, each line prefixed with prefix.
func WritePlan(o PlanOptions, out, notes io.Writer, prefix string) error {
	l, skips, err := nodelist.Load(o.NodesFile)
	if err != nil {
		return err
	}
	for _, s := range skips {
		fmt.Fprintf(notes, "%sentry skipped: %s\n", prefix, s)
	}
	p := targets.Build(l, o.Plan)
	w := bufio.NewWriter(out)
	if o.NodeName != "" {
		if !slices.ContainsFunc(l.Nodes, func(n nodelist.Node) bool { return n.Name == o.NodeName }) {
			fmt.Fprintf(notes, "%s%s is not in the nodes list: it probes what an unlisted agent would, and nobody probes it\n", prefix, o.NodeName)
		}
		for _, d := range p.Peers(o.NodeName) {
			fmt.Fprintf(w, "%s\t%s\n", o.NodeName, d)
		}
	} else {
		p.Pairs(func(s, d string) { fmt.Fprintf(w, "%s\t%s\n", s, d) })
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	st := p.Stats()
	fmt.Fprintf(notes, "%smode %s, %d nodes, %d zones, K %d, M %d: %d pairs, at most %d peers and %d observers per node; %d of %d zone pairs covered, at least %d pairs each; every node observed from at least %d zones\n",
		prefix, st.Mode, st.Nodes, st.Zones, st.SubsetPeers, st.ZonePairMin, st.Pairs, st.MaxPeers, st.MaxObservers, st.ZonePairsCovered, st.ZonePairs, st.MinZonePairPairs, st.MinObservingZones)
	if st.FoldedZones > 0 {
		fmt.Fprintf(notes, "%s%d zones past --max-zones %d (%d nodes) are planned as one zone\n", prefix, st.FoldedZones, p.Options().MaxZones, st.FoldedNodes)
	}
	return nil
}
