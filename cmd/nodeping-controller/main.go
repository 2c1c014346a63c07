// Command nodeping-controller watches the cluster's Nodes and publishes them as the nodes list
// that every nodeping agent mounts from a ConfigMap: one watcher for the whole cluster. It only
// wires: flags -> controller.Options -> the client, the controller and its server -> Run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodeping/nodeping/pkg/controller"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

// run is the whole program; it returns the exit code: 0 done, 1 failed, 2 bad usage. --help,
// errors and the log go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := controller.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		controller.PrintUsage(stderr)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-controller: %v\nRun nodeping-controller --help for the flags.\n", err)
		return 2
	}
	log, _ := o.Log.NewLogger(stderr) // Validate checked it
	var cfg *rest.Config
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
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
	c := controller.New(o.Config(), client, log, m)
	if o.ExternalTargetsFile != "" {
		go controller.WatchExternal(ctx, o.ExternalTargetsFile, controller.ExternalTargetsPeriod, o.MaxExternal, log, m, c.SetExternal)
	}
	go func() {
		if err := controller.Serve(ctx, o.ListenAddress, reg, controller.DefaultServerLimits()); err != nil {
			log.Error("metrics server failed", "err", err)
			stop()
		}
	}()

	log.Info("starting", "namespace", o.Namespace, "configmap", o.ConfigMap, "leader_elect", o.LeaderElect, "identity", o.Identity)
	runController := func(ctx context.Context) {
		if err := c.Run(ctx); err != nil {
			log.Error("controller stopped", "err", err)
		}
	}
	if !o.LeaderElect {
		m.Leader.Set(1)
		runController(ctx)
		return 0
	}
	if err := controller.RunAsLeader(ctx, client, o.LeaderConfig(), log, m, runController); err != nil {
		log.Error("leader election failed", "err", err)
		return 1
	}
	return 0
}
