package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
)

// defaultTextfileName is the file the agent owns in the textfile directory.
const defaultTextfileName = "nodeping.prom"

// Options are the agent's command line (kube-state-metrics' options/app split): Parse fills them,
// Validate checks them, Derive computes what no flag says directly, and Build constructs the
// agent from that.
type Options struct {
	NodeName, NodesFile, TextfileDir, TextfileName string
	Interval, Grace                                time.Duration
	// Engine is the ICMP engine: batch or pro-bing.
	Engine, Compat    string
	Once, ShowVersion bool
	Log               cli.LogOptions
	// RTTDetail adds the per-pair RTT min/max/stddev gauges and every protocol's RTT histogram.
	RTTDetail bool
	// MaxExternal is how many of the list's external targets are probed, the first ones.
	MaxExternal int

	// Plan chooses the peers: full mesh, or a subset on large clusters (pkg/targets).
	Plan targets.Options

	// One field per probe; probeOptions lists them in the order they run.
	ICMP ICMPOptions
	MTU  MTUOptions
	TCP  TCPOptions
	UDP  UDPOptions
	DNS  DNSOptions
}

// probeOptions is one probe's part of the options: its flags, its checks, its share of the
// interval and how it is built. Adding a probe: a file with a type that implements it, a field in
// Options, and a line in probes.
type probeOptions interface {
	protocol() string
	addFlags(fs *flag.FlagSet)
	// validate checks the probe's flags; it changes nothing.
	validate(o *Options) error
	// share is the probe's part of the interval; nil when the probe is off.
	share(o *Options) *Share
	// build returns the probe's registration, nil when it is off.
	build(b *builder) (*Registration, error)
}

// probes lists every probe's options, in the order the probes run.
func (o *Options) probes() []probeOptions {
	return []probeOptions{&o.ICMP, &o.MTU, &o.TCP, &o.UDP, &o.DNS}
}

// FlagSet defines every flag on a new flag set that writes nothing itself: Parse reports errors
// once, and PrintUsage prints the help.
func (o *Options) FlagSet() *flag.FlagSet {
	fs := cli.NewFlagSet("nodeping-agent")
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name in the nodes list; it is not probed (default $NODE_NAME, then $MY_NODE_NAME)")
	fs.StringVar(&o.NodesFile, "nodes-file", "/etc/nodeping/nodes.json", "nodes list: Flant's nodes.json, Deckhouse's targets.json or nodeping's own format, detected automatically; re-read every cycle")
	fs.StringVar(&o.TextfileDir, "textfile-dir", "/var/lib/node_exporter/textfile_collector", "directory of node-exporter's textfile collector; the agent writes --textfile-name there")
	fs.StringVar(&o.TextfileName, "textfile-name", defaultTextfileName, "name of the agent's file in --textfile-dir; it must end in .prom (Flant's node-ping used node-ping_<node>.prom in /var/run/node-exporter-textfile)")
	fs.DurationVar(&o.Interval, "interval", 15*time.Second, "time from one probe cycle's start to the next's; every probe's spread and timeout must fit in it")
	fs.DurationVar(&o.Grace, "grace", 30*time.Second, "how long a node that joins the list is exempt from loss (only answered echoes count)")
	fs.IntVar(&o.MaxExternal, "max-external-targets", nodelist.MaxExternal, "most external targets probed, at least 1: the first ones of the nodes list (the controller writes them sorted by name); the others are skipped, logged and counted in nodeping_nodes_list_skipped_entries{reason=\"too_many_external\"}")
	planFlags(fs, &o.Plan)
	for _, p := range o.probes() {
		p.addFlags(fs)
	}
	fs.StringVar(&o.Engine, "icmp-engine", "batch", "ICMP engine: batch (one shared socket per address family, fping-class cost) or pro-bing (one pro-bing Pinger per target; reference; it has no MTU probe)")
	fs.BoolVar(&o.RTTDetail, "rtt-detail", false, "also write each pair's per-cycle RTT min/max/stddev gauges and the RTT histogram of every protocol, not only ICMP's (more than doubles the series; no shipped rule or panel needs them)")
	fs.StringVar(&o.Compat, "compat", "", "also write another tool's series: flant (Flant node-ping's kube_node_ping_* and external_ping_*, from the ICMP probe over IPv4, so its dashboards and alert keep working)")
	fs.BoolVar(&o.Once, "once", false, "run one cycle, write the file, print a one-line summary and exit (the file is kept)")
	o.Log.AddFlags(fs)
	fs.BoolVar(&o.ShowVersion, "version", false, "print the version and exit")
	return fs
}

// planFlags defines the probe-plan flags. The agent and `nodeping-agent plan` share them, so that
// both build the same plan from the same list.
func planFlags(fs *flag.FlagSet, o *targets.Options) {
	*o = targets.DefaultOptions()
	fs.IntVar(&o.FullMeshMax, "full-mesh-max", o.FullMeshMax, "probe every other node while the nodes list has at most this many nodes; above it, probe a subset: a ring as wide as the full mesh, narrowing to --subset-peers at twice this many nodes, so that crossing it by one node changes about one peer per node; every agent must have the same value")
	fs.IntVar(&o.SubsetPeers, "subset-peers", o.SubsetPeers, "above --full-mesh-max, probe the next K nodes on a ring ordered by a hash of node names, plus enough nodes in other zones that every zone pair is covered; every agent must have the same value")
	fs.IntVar(&o.MaxZones, "max-zones", o.MaxZones, "the most zones the probe plan tells apart: past it, the largest keep their own and the nodes of all the others are planned as one zone (logged), so that mislabelled nodes cannot make every agent probe every node; every agent must have the same value")
}

// usage is the text --help prints before the flags.
const usage = `Usage: nodeping-agent [flags]

Probes every other node in the nodes list and writes its results for node-exporter's textfile collector.
Every flag can also be set by an environment variable, NODEPING_<FLAG> (for example NODEPING_ICMP_COUNT=5); flags win.

Flags:
`

// PrintUsage writes the help: usage and every flag with its default.
func PrintUsage(w io.Writer) {
	var o Options
	cli.PrintUsage(w, usage, o.FlagSet())
}

// Parse reads the environment, then the command line (flags win), and validates the result
// unless only the version is asked for. The node name comes from, last one winning: $MY_NODE_NAME
// (Flant node-ping's), $NODE_NAME (ours), $NODEPING_NODE_NAME, --node-name. It returns
// flag.ErrHelp for --help.
func Parse(args []string, getenv func(string) string) (Options, error) {
	var o Options
	fs := o.FlagSet()
	for _, env := range []string{"NODE_NAME", "MY_NODE_NAME"} { // ours, then Flant node-ping's
		if o.NodeName == "" {
			o.NodeName = getenv(env)
		}
	}
	if err := cli.Parse(fs, args, getenv); err != nil {
		return o, err
	}
	if o.ShowVersion {
		return o, nil
	}
	return o, o.Validate()
}

// Validate checks the options and fails closed on anything it cannot make sense of, including
// probes that do not fit in the interval once Derive has filled in the automatic ICMP timeout.
// It changes nothing.
func (o Options) Validate() error {
	switch {
	case o.NodeName == "":
		return errors.New("--node-name (or $NODE_NAME, or $MY_NODE_NAME) is required: the agent must know which node is itself")
	case o.Interval <= 0:
		return fmt.Errorf("--interval %s: must be positive", o.Interval)
	case o.Grace < 0:
		return fmt.Errorf("--grace %s: must not be negative", o.Grace)
	case o.MaxExternal < 1:
		return fmt.Errorf("--max-external-targets %d: must be at least 1 (a list without external targets probes none)", o.MaxExternal)
	case o.Engine != "batch" && o.Engine != "pro-bing":
		return fmt.Errorf("--icmp-engine %q: must be batch or pro-bing", o.Engine)
	case o.Compat != "" && o.Compat != results.CompatFlant:
		return fmt.Errorf("--compat %q: must be empty or flant", o.Compat)
	case o.TextfileName == "" || strings.ContainsAny(o.TextfileName, `/\`) || !strings.HasSuffix(o.TextfileName, ".prom") || strings.HasPrefix(o.TextfileName, "."):
		return fmt.Errorf("--textfile-name %q: want a file name ending in .prom, without a directory or a leading dot", o.TextfileName)
	}
	if err := o.Log.Validate(); err != nil {
		return err
	}
	if err := o.Plan.Validate(); err != nil {
		return err
	}
	for _, p := range o.probes() {
		if err := p.validate(&o); err != nil {
			return err
		}
	}
	return o.Derive().fits()
}
