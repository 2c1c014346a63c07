package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/targets"
)

// DefaultTextfileName is the file the agent owns in the textfile directory.
const DefaultTextfileName = "nodeping.prom"

// Options are the agent's command line (kube-state-metrics' options/app split): Parse fills them,
// Validate checks them and derives what is left to derive, Build constructs the agent from them.
type Options struct {
	NodeName, NodesFile, TextfileDir, TextfileName string
	Interval, Grace                                time.Duration
	// Engine is the ICMP engine: batch or pro-bing.
	Engine, Compat    string
	Once, ShowVersion bool
	Log               cli.LogOptions
	// RTTDetail adds the per-pair RTT min/max/stddev gauges and every protocol's RTT histogram.
	RTTDetail bool

	// Plan chooses the peers: full mesh, or a subset on large clusters (pkg/targets).
	Plan targets.Options

	// One field per probe; probeOptions lists them in the order they run.
	ICMP ICMPOptions
	MTU  MTUOptions
	TCP  TCPOptions
	UDP  UDPOptions
	DNS  DNSOptions

	// Notices are what Validate turned off or changed, for the log at start.
	Notices []string
	// Budget is how the probes share the interval, set by Validate.
	Budget Budget
}

// probeOptions is one probe's part of the options: its flags, its checks, its share of the
// interval and how it is built. Adding a probe: a file with a type that implements it, a field in
// Options, and a line in probes.
type probeOptions interface {
	protocol() string
	addFlags(fs *flag.FlagSet)
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
	fs := flag.NewFlagSet("nodeping-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name in the nodes list; it is not probed (default $NODE_NAME, then $MY_NODE_NAME)")
	fs.StringVar(&o.NodesFile, "nodes-file", "/etc/nodeping/nodes.json", "nodes list: Flant's nodes.json, Deckhouse's targets.json or nodeping's own format, detected automatically; re-read every cycle")
	fs.StringVar(&o.TextfileDir, "textfile-dir", "/var/lib/node_exporter/textfile_collector", "directory of node-exporter's textfile collector; the agent writes --textfile-name there")
	fs.StringVar(&o.TextfileName, "textfile-name", DefaultTextfileName, "name of the agent's file in --textfile-dir; it must end in .prom (Flant's node-ping used node-ping_<node>.prom in /var/run/node-exporter-textfile)")
	fs.DurationVar(&o.Interval, "interval", 15*time.Second, "time from one probe cycle's start to the next's; every probe's spread and timeout must fit in it")
	fs.DurationVar(&o.Grace, "grace", 30*time.Second, "how long a node that joins the list is exempt from loss (only answered echoes count)")
	PlanFlags(fs, &o.Plan)
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

// PlanFlags defines the probe-plan flags. The agent and `nodeping-agent plan` share them, so that
// both build the same plan from the same list.
func PlanFlags(fs *flag.FlagSet, o *targets.Options) {
	*o = targets.DefaultOptions()
	fs.IntVar(&o.FullMeshMax, "full-mesh-max", o.FullMeshMax, "probe every other node while the nodes list has at most this many nodes; above it, probe a subset: a ring as wide as the full mesh, narrowing to --subset-peers at twice this many nodes, so that crossing it by one node changes about one peer per node; every agent must have the same value")
	fs.IntVar(&o.SubsetPeers, "subset-peers", o.SubsetPeers, "above --full-mesh-max, probe the next K nodes on a ring ordered by a hash of node names, plus enough nodes in other zones that every zone pair is covered; every agent must have the same value")
	fs.IntVar(&o.MaxZones, "max-zones", o.MaxZones, "the most zones the probe plan tells apart: past it, the largest keep their own and the nodes of all the others are planned as one zone (logged), so that mislabelled nodes cannot make every agent probe every node; every agent must have the same value")
}

// Usage is the text --help prints before the flags.
const Usage = `Usage: nodeping-agent [flags]

Probes every other node in the nodes list and writes its results for node-exporter's textfile collector.
Every flag can also be set by an environment variable, NODEPING_<FLAG> (for example NODEPING_ICMP_COUNT=5); flags win.

Flags:
`

// PrintUsage writes the help: Usage and every flag with its default.
func PrintUsage(w io.Writer) {
	var o Options
	fs := o.FlagSet()
	fs.SetOutput(w)
	fmt.Fprint(w, Usage)
	fs.PrintDefaults()
}

// Parse reads the environment, then the command line (flags win), and validates the result
// unless only the version is asked for. It returns flag.ErrHelp for --help.
func Parse(args []string, getenv func(string) string) (Options, error) {
	var o Options
	fs := o.FlagSet()
	if err := cli.BindEnv(fs, getenv); err != nil {
		return o, err
	}
	for _, env := range []string{"NODE_NAME", "MY_NODE_NAME"} { // ours, then Flant node-ping's
		if o.NodeName == "" {
			o.NodeName = getenv(env)
		}
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.ShowVersion {
		return o, nil
	}
	return o, o.Validate()
}

// Validate checks the options, fails closed on anything it cannot make sense of, and derives
// what is left: the automatic ICMP timeout, DF for the MTU probe, and the interval's budget.
func (o *Options) Validate() error {
	o.Notices = nil
	switch {
	case o.NodeName == "":
		return errors.New("--node-name (or $NODE_NAME, or $MY_NODE_NAME) is required: the agent must know which node is itself")
	case o.Interval <= 0:
		return fmt.Errorf("--interval %s: must be positive", o.Interval)
	case o.Grace < 0:
		return fmt.Errorf("--grace %s: must not be negative", o.Grace)
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
		if err := p.validate(o); err != nil {
			return err
		}
	}
	return o.fit()
}

// Budget is how the probes share one interval.
type Budget struct {
	Interval time.Duration
	// Available is what the probes may use: the interval less a tenth, kept for reading the
	// list, resolving external targets and writing the file.
	Available time.Duration
	// Shares are the probes that are on, in the order they run.
	Shares []Share
}

// Share is one probe's worst case in a cycle: its sends spread over Spread, then a wait of up to
// Wait for the last answers.
type Share struct {
	Protocol string
	// What says where Spread comes from, in flags ("--icmp-count 10 x --icmp-interval 1s").
	What         string
	Spread, Wait time.Duration
	// Beside: the probe runs beside the others (its own sockets), so it needs the budget, not a
	// part of it.
	Beside bool
}

// String tells the budget in one line, for the log at start.
func (b Budget) String() string {
	var parts []string
	for _, s := range b.Shares {
		part := fmt.Sprintf("%s %s", s.Protocol, s.Need())
		if s.Beside {
			part += " beside"
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("%s of %s: %s", b.Available, b.Interval, strings.Join(parts, ", "))
}

// resolveTimeout bounds the look-ups of external targets' host names: within the tenth of the
// interval the probes leave, at most 2s.
func (o *Options) resolveTimeout() time.Duration { return min(2*time.Second, o.Interval/10) }

// Need is the share's worst case.
func (s Share) Need() time.Duration { return s.Spread + s.Wait }

// extraSpread is the time between two probes to one target for the probes that follow the ICMP
// burst (MTU, TCP, UDP): short, so that they fit in the cycle.
func (o *Options) extraSpread() time.Duration { return min(o.ICMP.Interval, 200*time.Millisecond) }

// afterBurst is the share of a probe that follows the ICMP burst (MTU, TCP, UDP): count probes
// per target spread over extraSpread each, then the shared ICMP timeout. nil when it is off.
func (o *Options) afterBurst(protocol string, on bool, count int) *Share {
	if !on {
		return nil
	}
	return &Share{Protocol: protocol, What: fmt.Sprintf("--%s-count %d x %s", protocol, count, o.extraSpread()),
		Spread: time.Duration(count) * o.extraSpread(), Wait: o.ICMP.Timeout}
}

// fit derives the automatic ICMP timeout and checks that every probe fits the interval. The ICMP
// timeout is shared by the probes that follow the ICMP burst (MTU, TCP, UDP): each may wait it.
func (o *Options) fit() error {
	avail := o.Interval - o.Interval/10
	auto := o.ICMP.Timeout == 0
	if auto {
		o.ICMP.Timeout = time.Nanosecond // a placeholder while the shares' spreads are summed
	}
	var spreads time.Duration
	waits := 0
	for _, p := range o.probes() {
		if s := p.share(o); s != nil && !s.Beside {
			spreads += s.Spread
			waits++
		}
	}
	if auto {
		o.ICMP.Timeout = 2 * time.Second
		if waits > 0 && avail > spreads {
			o.ICMP.Timeout = min(2*time.Second, (avail-spreads)/time.Duration(waits))
		}
	}
	o.Budget = Budget{Interval: o.Interval, Available: avail}
	for _, p := range o.probes() {
		if s := p.share(o); s != nil {
			o.Budget.Shares = append(o.Budget.Shares, *s)
		}
	}
	if o.Once { // one cycle: nothing follows it, so it may take what it takes
		return o.ICMP.config().Validate()
	}
	var used time.Duration
	for _, s := range o.Budget.Shares {
		need := s.Need()
		if s.Beside {
			if need > avail {
				return fmt.Errorf("%s does not fit in --interval %s: %s = %s, over the %s the probes may use (nine tenths of the interval)",
					s.Protocol, o.Interval, s.What, need, avail)
			}
			continue
		}
		if used+need > avail || auto && s.Wait <= 0 {
			return fmt.Errorf("%s does not fit in --interval %s: %s + timeout %s = %s, and the probes before it take %s of the %s the probes may use (nine tenths of the interval)",
				s.Protocol, o.Interval, s.What, max(s.Wait, 0), need, used, avail)
		}
		used += need
	}
	return o.ICMP.config().Validate()
}
