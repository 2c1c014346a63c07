package controller

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Options are the controller's command line (kube-state-metrics' options/app split): Parse
// fills them, Validate checks them, and Config and LeaderConfig hand them to New and
// RunAsLeader.
type Options struct {
	Kubeconfig, Namespace, ConfigMap, Key, Lease, Identity string
	ListenAddress, ExternalTargetsFile                     string
	Debounce, DebounceMax, MinWriteInterval                time.Duration
	LeaderElect                                            bool
	// MaxExternal is how many external targets the list holds at most (--max-external-targets).
	MaxExternal int
	Log         cli.LogOptions
}

// ExternalTargetsPeriod is how often --external-targets-file is re-read.
const ExternalTargetsPeriod = 10 * time.Second

// FlagSet defines every flag on a new flag set that writes nothing itself: Parse reports errors
// once, and PrintUsage prints the help.
func (o *Options) FlagSet() *flag.FlagSet {
	fs := cli.NewFlagSet("nodeping-controller")
	host, _ := os.Hostname()
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&o.Namespace, "namespace", "nodeping", "namespace of the ConfigMap and the Lease; $POD_NAMESPACE, when set, replaces the default, and $NODEPING_NAMESPACE and this flag win over it")
	fs.StringVar(&o.ConfigMap, "configmap", "nodeping-nodes", "ConfigMap that holds the nodes list")
	fs.StringVar(&o.Key, "key", "nodes.json", "data key of the nodes list in the ConfigMap (the file name agents read)")
	fs.StringVar(&o.Lease, "lease", "nodeping-controller", "Lease that replicas compete for")
	fs.StringVar(&o.Identity, "identity", host, "this replica's identity in the Lease: the host name, which in Kubernetes is the pod's name")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "take the Lease before writing (run 2 replicas for fail-over)")
	fs.DurationVar(&o.Debounce, "debounce", 2*time.Second, "quiet period: write once Node events have stopped for this long")
	fs.DurationVar(&o.DebounceMax, "debounce-max", 10*time.Second, "longest wait for a quiet period, from the first event of a burst")
	fs.DurationVar(&o.MinWriteInterval, "min-write-interval", 10*time.Second, "least time between two ConfigMap writes (every kubelet re-reads the ConfigMap after each)")
	fs.StringVar(&o.ExternalTargetsFile, "external-targets-file", "", `JSON file of targets outside the cluster, {"external_targets":[{"name":"...","host":"..."}]}, usually mounted from a ConfigMap; re-read every 10s and written into the nodes list`)
	fs.IntVar(&o.MaxExternal, "max-external-targets", nodelist.MaxExternal, "most external targets written into the nodes list, at least 1 (every agent probes each); past it the rest of the file is left out, logged and counted; targets whose host is a loopback, unspecified, link-local, multicast or cloud metadata address are always left out")
	fs.StringVar(&o.ListenAddress, "listen-address", "127.0.0.1:8080", "address of /healthz and /metrics (the manifests set :8080 so that Prometheus and the kubelet reach it)")
	o.Log.AddFlags(fs)
	return fs
}

// usage is the text --help prints before the flags.
const usage = `Usage: nodeping-controller [flags]

Watches the cluster's Nodes and publishes them as the nodes list that every nodeping agent mounts
from a ConfigMap. Every flag can also be set by an environment variable, NODEPING_<FLAG> (for
example NODEPING_DEBOUNCE=5s); flags win. $POD_NAMESPACE replaces --namespace's default.

Flags:
`

// PrintUsage writes the help: usage and every flag with its default.
func PrintUsage(w io.Writer) {
	var o Options
	cli.PrintUsage(w, usage, o.FlagSet())
}

// Parse reads the environment, then the command line (flags win), trims the identity's white
// space, and validates the result. The namespace comes from, last one winning: its default,
// $POD_NAMESPACE, $NODEPING_NAMESPACE, --namespace. It returns flag.ErrHelp for --help.
func Parse(args []string, getenv func(string) string) (Options, error) {
	var o Options
	fs := o.FlagSet()
	if ns := getenv("POD_NAMESPACE"); ns != "" {
		o.Namespace = ns
	}
	if err := cli.Parse(fs, args, getenv); err != nil {
		return o, err
	}
	o.Identity = strings.TrimSpace(o.Identity) // what Validate checks is what the Lease gets
	return o, o.Validate()
}

// Validate checks the options; it changes nothing.
func (o Options) Validate() error {
	switch {
	case o.Namespace == "" || o.ConfigMap == "" || o.Key == "" || o.Lease == "" || o.Identity == "":
		return errors.New("--namespace, --configmap, --key, --lease and --identity must not be empty")
	case o.Debounce < 0 || o.DebounceMax < 0 || o.MinWriteInterval < 0:
		return errors.New("--debounce, --debounce-max and --min-write-interval must not be negative")
	case o.MaxExternal < 1:
		return fmt.Errorf("--max-external-targets %d: must be at least 1 (without --external-targets-file the list has none)", o.MaxExternal)
	}
	return o.Log.Validate()
}

// Config is the controller's configuration from the options: a --debounce-max shorter than
// --debounce waits the quiet period all the same.
func (o Options) Config() Config {
	return Config{Namespace: o.Namespace, Name: o.ConfigMap, Key: o.Key,
		Debounce: o.Debounce, MaxWait: max(o.DebounceMax, o.Debounce), MinWriteInterval: o.MinWriteInterval}
}

// LeaderConfig is the Lease the options name, with client-go's usual timings.
func (o Options) LeaderConfig() LeaderConfig {
	return LeaderConfig{Namespace: o.Namespace, Name: o.Lease, Identity: o.Identity,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}
