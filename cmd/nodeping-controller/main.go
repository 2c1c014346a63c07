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
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

type options struct {
	kubeconfig, namespace, configMap, key, lease, identity, listen, logLevel string
	debounce                                                                 time.Duration
	leaderElect                                                              bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("nodeping-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&o.namespace, "namespace", "nodeping", "namespace of the ConfigMap and the Lease (default $POD_NAMESPACE when set)")
	fs.StringVar(&o.configMap, "configmap", "nodeping-nodes", "ConfigMap that holds the nodes list")
	fs.StringVar(&o.key, "key", "nodes.json", "data key of the nodes list in the ConfigMap (the file name agents read)")
	fs.StringVar(&o.lease, "lease", "nodeping-controller", "Lease that replicas compete for")
	fs.StringVar(&o.identity, "identity", host, "this replica's identity in the Lease (default: the host name, the pod's name in Kubernetes)")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "take the Lease before writing (run 2 replicas for fail-over)")
	fs.DurationVar(&o.debounce, "debounce", 2*time.Second, "gather Node events for this long before one write")
	fs.StringVar(&o.listen, "listen-address", ":8080", "address of /healthz and /metrics")
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
	if o.debounce < 0 {
		return o, fmt.Errorf("--debounce %s: must not be negative", o.debounce)
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
	c := controller.New(controller.Config{Namespace: o.namespace, Name: o.configMap, Key: o.key, Debounce: o.debounce}, client, log, m)

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
