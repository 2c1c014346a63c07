// Command nodeping-controller watches the cluster's Nodes and publishes them as the nodes list
// that every nodeping agent mounts from a ConfigMap: one watcher for the whole cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodeping/nodeping/pkg/controller"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

type options struct {
	kubeconfig, namespace, configMap, key, lease, identity, listen, logLevel string
	externalFile                                                             string
	debounce, debounceMax, minWriteInterval                                  time.Duration
	leaderElect                                                              bool
	maxExternal                                                              int
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("nodeping-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&o.namespace, "namespace", "nodeping", "namespace of the ConfigMap and the Lease; $POD_NAMESPACE, when set, replaces the default")
	fs.StringVar(&o.configMap, "configmap", "nodeping-nodes", "ConfigMap that holds the nodes list")
	fs.StringVar(&o.key, "key", "nodes.json", "data key of the nodes list in the ConfigMap (the file name agents read)")
	fs.StringVar(&o.lease, "lease", "nodeping-controller", "Lease that replicas compete for")
	fs.StringVar(&o.identity, "identity", host, "this replica's identity in the Lease: the host name, which in Kubernetes is the pod's name")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "take the Lease before writing (run 2 replicas for fail-over)")
	fs.DurationVar(&o.debounce, "debounce", 2*time.Second, "quiet period: write once Node events have stopped for this long")
	fs.DurationVar(&o.debounceMax, "debounce-max", 10*time.Second, "longest wait for a quiet period, from the first event of a burst")
	fs.DurationVar(&o.minWriteInterval, "min-write-interval", 10*time.Second, "least time between two ConfigMap writes (every kubelet re-reads the ConfigMap after each)")
	fs.StringVar(&o.externalFile, "external-targets-file", "", `JSON file of targets outside the cluster, {"external_targets":[{"name":"...","host":"..."}]}, usually mounted from a ConfigMap; re-read every 10s and written into the nodes list`)
	fs.IntVar(&o.maxExternal, "max-external-targets", nodelist.MaxExternal, "most external targets written into the nodes list (every agent probes each); past it the rest of the file is left out, logged and counted; targets whose host is a loopback, unspecified, link-local, multicast or cloud metadata address are always left out")
	fs.StringVar(&o.listen, "listen-address", "127.0.0.1:8080", "address of /healthz and /metrics (the manifests set :8080 so that Prometheus and the kubelet reach it)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if ns := getenv("POD_NAMESPACE"); ns != "" {
		o.namespace = ns
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.namespace == "" || o.configMap == "" || o.key == "" || o.lease == "" || o.identity == "" {
		return o, errors.New("--namespace, --configmap, --key, --lease and --identity must not be empty")
	}
	if o.debounce < 0 || o.debounceMax < 0 || o.minWriteInterval < 0 {
		return o, errors.New("--debounce, --debounce-max and --min-write-interval must not be negative")
	}
	if o.maxExternal < 0 {
		return o, fmt.Errorf("--max-external-targets %d: must not be negative", o.maxExternal)
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-controller: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "nodeping-controller: --log-level %q: %v\n", o.logLevel, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var cfg *rest.Config
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		log.Error("cannot configure the Kubernetes client", "err", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("cannot build the Kubernetes client", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := controller.NewMetrics(reg)
	c := controller.New(controller.Config{Namespace: o.namespace, Name: o.configMap, Key: o.key,
		Debounce: o.debounce, MaxWait: max(o.debounceMax, o.debounce), MinWriteInterval: o.minWriteInterval}, client, log, m)
	if o.externalFile != "" {
		go controller.WatchExternal(ctx, o.externalFile, 10*time.Second, o.maxExternal, log, m, c.SetExternal)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Healthy while the process serves: a follower waiting for the Lease is healthy too, so both
	// replicas pass their probes and a rolling update completes.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: o.listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err)
			stop()
		}
	}()
	defer srv.Shutdown(context.Background())

	log.Info("starting", "namespace", o.namespace, "configmap", o.configMap, "leader_elect", o.leaderElect, "identity", o.identity)
	runController := func(ctx context.Context) {
		if err := c.Run(ctx); err != nil {
			log.Error("controller stopped", "err", err)
		}
	}
	if !o.leaderElect {
		m.Leader.Set(1)
		runController(ctx)
		return 0
	}
	err = controller.RunAsLeader(ctx, client, controller.LeaderConfig{
		Namespace: o.namespace, Name: o.lease, Identity: strings.TrimSpace(o.identity),
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	}, log, m, runController)
	if err != nil {
		log.Error("leader election failed", "err", err)
		return 1
	}
	return 0
}
