// Command nodeping-agent probes every other node of the cluster and writes the results for
// node-exporter's textfile collector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/nodeping/nodeping/pkg/agent"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/responder"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/textfile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// textfileName is the file the agent owns in the textfile directory.
const textfileName = "nodeping.prom"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "plan" {
		os.Exit(runPlan(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

// options are the parsed command line.
type options struct {
	nodeName, nodesFile, textfileDir string
	interval, grace                  time.Duration
	icmp                             probe.ICMPConfig
	mtu, mtuCount                    int
	tcpPort, tcpCount                int
	udpPort, udpCount, udpRate       int
	dnsNames, dnsResolvers           string
	dnsTimeout                       time.Duration
	icmpOn                           bool
	mtuEvery, tcpEvery, udpEvery     int
	dnsEvery                         int
	engine, compat                   string
	once, showVersion                bool
	logLevel, logFormat              string
}

// envName is the environment variable that sets a flag: NODEPING_ and the flag in upper snake case.
func envName(flagName string) string {
	return "NODEPING_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("nodeping-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.nodeName, "node-name", "", "this node's name in the nodes list; it is not probed (default $NODE_NAME)")
	fs.StringVar(&o.nodesFile, "nodes-file", "/etc/nodeping/nodes.json", "nodes list: Flant's nodes.json, Deckhouse's targets.json or nodeping's own format, detected automatically; re-read every cycle")
	fs.StringVar(&o.textfileDir, "textfile-dir", "/var/lib/node_exporter/textfile_collector", "directory of node-exporter's textfile collector; the agent writes "+textfileName+" there")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "time from one probe cycle's start to the next's")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "how long a node that joins the list is exempt from loss (only answered echoes count)")
	fs.BoolVar(&o.icmpOn, "icmp", true, "run the ICMP probe (--icmp=false leaves only the other probes; the MTU probe still uses the ICMP sockets)")
	fs.IntVar(&o.icmp.Count, "icmp-count", 10, "ICMP echoes per target per cycle")
	fs.DurationVar(&o.icmp.Interval, "icmp-interval", time.Second, "time between two echoes to the same target; sends to different targets are spread over it")
	fs.DurationVar(&o.icmp.Timeout, "icmp-timeout", 0, "how long an echo may take before it counts as lost (default: what the cycle leaves after the bursts, at most 2s)")
	fs.IntVar(&o.icmp.Size, "icmp-size", 56, "ICMP echo payload in bytes")
	fs.BoolVar(&o.icmp.DontFragment, "icmp-dont-fragment", false, "set the DF bit on ICMP echoes (always set when --mtu is on: the MTU probe shares the sockets)")
	fs.IntVar(&o.mtu, "mtu", 0, "packet size in bytes of the MTU probe: echoes that fill the path MTU (1500 on most networks), with DF set, after each ICMP burst, reported with protocol=\"mtu\"; 0 leaves it off (batch engine only)")
	fs.IntVar(&o.mtuCount, "mtu-count", 1, "MTU probe echoes per target per cycle")
	fs.IntVar(&o.tcpPort, "tcp-port", 0, "TCP probe and responder port: the agent answers TCP handshakes on it and times its own to every peer's (protocol=\"tcp\", failures by reason); 0 leaves both off")
	fs.IntVar(&o.tcpCount, "tcp-count", 1, "TCP handshakes per target per cycle")
	fs.IntVar(&o.mtuEvery, "mtu-every", 1, "run the MTU probe every N cycles")
	fs.IntVar(&o.tcpEvery, "tcp-every", 1, "run the TCP probe every N cycles")
	fs.IntVar(&o.udpEvery, "udp-every", 1, "run the UDP probe every N cycles")
	fs.IntVar(&o.dnsEvery, "dns-every", 1, "run the DNS probe every N cycles")
	fs.IntVar(&o.udpPort, "udp-port", 0, "UDP probe and echo responder port: the agent echoes probes from listed nodes on it and sends its own to every peer's, from rotating source ports (protocol=\"udp\"); 0 leaves both off")
	fs.IntVar(&o.udpCount, "udp-count", 5, "UDP probes per target per cycle")
	fs.IntVar(&o.udpRate, "udp-responder-rate", 0, "most UDP probes the responder answers per second from each source address (burst: as many); the rest are dropped and counted (default 0: derived from --udp-count and --interval, see responder.DefaultPerSourceLimit)")
	fs.StringVar(&o.dnsNames, "dns-names", "", "comma-separated names the DNS probe resolves every cycle (the DaemonSet sets kubernetes.default.svc.cluster.local.); empty leaves it off")
	fs.StringVar(&o.dnsResolvers, "dns-resolvers", "", "comma-separated host:port resolvers for the DNS probe (default: the nameservers of /etc/resolv.conf)")
	fs.DurationVar(&o.dnsTimeout, "dns-timeout", 2*time.Second, "how long the DNS probe waits for an answer")
	fs.StringVar(&o.engine, "icmp-engine", "batch", "ICMP engine: batch (one shared socket per address family, fping-class cost) or pro-bing (one pro-bing Pinger per target; reference)")
	fs.StringVar(&o.compat, "compat", "", "also write another tool's series: flant (Flant node-ping's kube_node_ping_* and external_ping_*, so its dashboards and alert keep working)")
	fs.BoolVar(&o.once, "once", false, "run one cycle, write the file, exit (the file is kept)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nodeping-agent [flags]\n\nProbes every other node in the nodes list and writes %s for node-exporter's textfile collector.\nEvery flag can also be set by an environment variable, NODEPING_<FLAG> (for example NODEPING_ICMP_COUNT=5); flags win.\n\nFlags:\n", textfileName)
		fs.PrintDefaults()
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("environment variable %s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if o.nodeName == "" {
		o.nodeName = getenv("NODE_NAME")
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.showVersion {
		return o, nil
	}
	return o, o.validate()
}

func (o *options) validate() error {
	if o.nodeName == "" {
		return errors.New("--node-name (or $NODE_NAME) is required: the agent must know which node is itself")
	}
	if o.interval <= 0 {
		return fmt.Errorf("--interval %s: must be positive", o.interval)
	}
	if o.grace < 0 {
		return fmt.Errorf("--grace %s: must not be negative", o.grace)
	}
	if o.engine != "batch" && o.engine != "pro-bing" {
		return fmt.Errorf("--icmp-engine %q: must be batch or pro-bing", o.engine)
	}
	if o.compat != "" && o.compat != results.CompatFlant {
		return fmt.Errorf("--compat %q: must be empty or flant", o.compat)
	}
	if o.mtu != 0 && (o.mtu < 68 || o.mtu > 65000) {
		return fmt.Errorf("--mtu %d: must be 0 (off) or between 68 and 65000", o.mtu)
	}
	if o.mtu != 0 && o.mtuCount < 1 {
		return fmt.Errorf("--mtu-count %d: must be at least 1", o.mtuCount)
	}
	if o.engine == "pro-bing" {
		o.mtu = 0
	}
	if o.tcpPort < 0 || o.tcpPort > 65535 || o.tcpPort != 0 && o.tcpCount < 1 {
		return fmt.Errorf("--tcp-port %d, --tcp-count %d: want a port 0..65535 (0 is off) and a count of at least 1", o.tcpPort, o.tcpCount)
	}
	if o.udpPort < 0 || o.udpPort > 65535 || o.udpPort != 0 && (o.udpCount < 1 || o.udpRate < 0) {
		return fmt.Errorf("--udp-port %d, --udp-count %d, --udp-responder-rate %d: want a port 0..65535 (0 is off), a count of at least 1 and a rate of 0 (derived) or more", o.udpPort, o.udpCount, o.udpRate)
	}
	for name, v := range map[string]int{"--mtu-every": o.mtuEvery, "--tcp-every": o.tcpEvery, "--udp-every": o.udpEvery, "--dns-every": o.dnsEvery} {
		if v < 1 {
			return fmt.Errorf("%s %d: must be at least 1", name, v)
		}
	}
	burst := time.Duration(o.icmp.Count) * o.icmp.Interval
	if o.icmp.Timeout == 0 {
		// The probes after the ICMP burst take their own spread, and each may wait a timeout.
		left, waits := o.interval-burst, time.Duration(1)
		for _, extra := range []struct{ on, count int }{{o.mtu, o.mtuCount}, {o.tcpPort, o.tcpCount}, {o.udpPort, o.udpCount}} {
			if extra.on != 0 {
				left -= time.Duration(extra.count) * o.extraSpread()
				waits++
			}
		}
		o.icmp.Timeout = min(2*time.Second, left/waits)
		if !o.once && o.icmp.Timeout <= 0 {
			return fmt.Errorf("--icmp-count %d x --icmp-interval %s = %s does not fit in --interval %s", o.icmp.Count, o.icmp.Interval, burst, o.interval)
		}
		if o.icmp.Timeout <= 0 {
			o.icmp.Timeout = 2 * time.Second
		}
	}
	return o.icmp.Validate()
}

// extraSpread is the time between two probes to one target for the probes that follow the ICMP
// burst (MTU, TCP, UDP): short, so that they fit in the cycle.
func (o *options) extraSpread() time.Duration { return min(o.icmp.Interval, 200*time.Millisecond) }

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", format)
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// run is the whole program; it returns the exit code: 0 done, 1 failed, 2 bad usage.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-agent: %v\n", err)
		return 2
	}
	if o.showVersion {
		fmt.Fprintf(stderr, "nodeping-agent %s (revision %s)\n", version, revision())
		return 0
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-agent: %v\n", err)
		return 2
	}
	if err := textfile.CheckDir(o.textfileDir); err != nil {
		log.Error("cannot write textfiles", "err", err)
		return 1
	}
	lock, err := textfile.AcquireLock(o.textfileDir)
	if err != nil {
		log.Error("cannot lock the textfile directory", "err", err)
		return 1
	}
	defer lock.Release()
	if removed, err := textfile.RemoveLeftovers(filepath.Join(o.textfileDir, textfileName)); err != nil {
		log.Warn("cannot remove leftover temporary files", "err", err)
	} else if len(removed) > 0 {
		log.Info("removed leftover temporary files", "files", removed)
	}

	var (
		probes   []agent.Probe
		modes    = map[string]string{}
		counters func() probe.ICMPCounters
	)
	var mtuEngine *probe.ICMP
	switch o.engine {
	case "batch":
		if o.mtu != 0 {
			// The MTU probe shares the engine's sockets, which then set DF on every echo: harmless
			// for small ones, and every raw socket costs a copy of every ICMP packet on the host.
			o.icmp.DontFragment, o.icmp.MTUSize = true, o.mtu-28
		}
		e, err := probe.NewICMP(o.icmp, log)
		if err != nil {
			log.Error("cannot open ICMP sockets", "err", err)
			return 1
		}
		defer e.Close()
		v4, v6 := e.Modes()
		for fam, m := range map[string]probe.SocketMode{"ipv4": v4, "ipv6": v6} {
			if m != "" {
				modes[fam] = string(m)
			}
		}
		counters = e.Counters
		if o.icmpOn {
			probes = append(probes, agent.Probe{Protocol: "icmp", Pinger: e})
		}
		if o.mtu != 0 {
			mtuEngine = e
		}
	case "pro-bing":
		p, err := probe.NewProBing(o.icmp)
		if err != nil {
			log.Error("cannot set up pro-bing", "err", err)
			return 1
		}
		if o.icmpOn {
			probes = append(probes, agent.Probe{Protocol: "icmp", Pinger: p})
		}
	}
	if mtuEngine != nil {
		p, err := mtuEngine.NewMTUProbe(o.mtu, o.mtuCount, o.extraSpread())
		if err != nil {
			log.Error("cannot set up the MTU probe", "err", err)
			return 1
		}
		probes = append(probes, agent.Probe{Protocol: "mtu", Pinger: p, NodesOnly: true, Every: o.mtuEvery})
	}

	var dnsProbe agent.DNSProber
	if o.dnsNames != "" {
		resolvers := strings.Split(o.dnsResolvers, ",")
		if o.dnsResolvers == "" {
			if resolvers, err = probe.ResolversFromFile("/etc/resolv.conf"); err != nil {
				log.Error("cannot set up the DNS probe", "err", err)
				return 1
			}
		}
		d, err := probe.NewDNS(probe.DNSConfig{Names: strings.Split(o.dnsNames, ","), Resolvers: resolvers, Timeout: o.dnsTimeout})
		if err != nil {
			log.Error("cannot set up the DNS probe", "err", err)
			return 1
		}
		dnsProbe = d
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var (
		stats  []func() results.ResponderStats
		onList func(nodelist.List)
		allow  []func([]netip.Addr) // the responders' SetAllowed, called on every list reload
	)
	if o.tcpPort != 0 {
		p, err := probe.NewTCP(probe.TCPConfig{Port: o.tcpPort, Count: o.tcpCount, Interval: o.extraSpread(), Timeout: o.icmp.Timeout})
		if err != nil {
			log.Error("cannot set up the TCP probe", "err", err)
			return 1
		}
		probes = append(probes, agent.Probe{Protocol: "tcp", Pinger: p, NodesOnly: true, Every: o.tcpEvery})
		if !o.once { // a one-shot run answers nobody
			r, err := responder.ListenTCP(fmt.Sprintf(":%d", o.tcpPort), log)
			if err != nil {
				log.Error("cannot start the TCP responder", "err", err)
				return 1
			}
			go r.Serve(ctx)
			allow = append(allow, r.SetAllowed)
			stats = append(stats, func() results.ResponderStats {
				return results.ResponderStats{Protocol: "tcp", Answered: r.Accepted(), Dropped: r.Dropped()}
			})
		}
	}
	if o.udpPort != 0 {
		p, err := probe.NewUDP(probe.UDPConfig{Port: o.udpPort, Count: o.udpCount, Interval: o.extraSpread(), Timeout: o.icmp.Timeout})
		if err != nil {
			log.Error("cannot set up the UDP probe", "err", err)
			return 1
		}
		defer p.Close()
		probes = append(probes, agent.Probe{Protocol: "udp", Pinger: p, NodesOnly: true, Every: o.udpEvery})
		if !o.once {
			lim := responder.DefaultPerSourceLimit(o.udpCount, o.interval)
			if o.udpRate > 0 {
				lim = responder.Limit{Rate: float64(o.udpRate), Burst: o.udpRate}
			}
			r, err := responder.ListenUDPLimit(fmt.Sprintf(":%d", o.udpPort), lim, log)
			if err != nil {
				log.Error("cannot start the UDP responder", "err", err)
				return 1
			}
			go r.Serve(ctx)
			allow = append(allow, r.SetAllowed)
			stats = append(stats, func() results.ResponderStats {
				return results.ResponderStats{Protocol: "udp", Answered: r.Answered(), Dropped: r.Dropped()}
			})
		}
	}
	if len(allow) > 0 {
		onList = func(l nodelist.List) {
			var addrs []netip.Addr
			for _, n := range l.Nodes {
				addrs = append(addrs, n.Addrs()...)
			}
			for _, set := range allow {
				set(addrs)
			}
		}
	}
	a := agent.New(agent.Config{
		NodeName:       o.nodeName,
		NodesFile:      o.nodesFile,
		TextfilePath:   filepath.Join(o.textfileDir, textfileName),
		Interval:       o.interval,
		Grace:          o.grace,
		ResolveTimeout: 2 * time.Second,
		Once:           o.once,
		Compat:         o.compat,
		OnList:         onList,
		DNS:            dnsProbe,
		DNSEvery:       o.dnsEvery,
		Responders: func() []results.ResponderStats {
			out := make([]results.ResponderStats, len(stats))
			for i, f := range stats {
				out[i] = f()
			}
			return out
		},
	}, log, probes, net.DefaultResolver, results.BuildInfo{Version: version, Revision: revision()}, modes, counters)
	log.Info("starting", "version", version, "node", o.nodeName, "nodes_file", o.nodesFile, "textfile_dir", o.textfileDir,
		"interval", o.interval, "icmp_count", o.icmp.Count, "icmp_interval", o.icmp.Interval, "icmp_timeout", o.icmp.Timeout,
		"icmp_engine", o.engine, "mtu", o.mtu, "once", o.once)
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}
