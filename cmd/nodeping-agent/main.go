// Command nodeping-agent probes every other node of the cluster and writes the results for
// node-exporter's textfile collector. It only wires: flags -> agent.Options -> agent.Build -> Run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/pkg/agent"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/textfile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// One processor unless GOMAXPROCS says otherwise: more only add thread wake-ups to each send
	// (docs/icmp-engine.md, "Looping beside fping").
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "plan" {
		os.Exit(runPlan(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code: 0 done, 1 failed, 2 bad usage. --help,
// --version and --once's summary go to stdout; errors and the log to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := agent.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		agent.PrintUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-agent: %v\nRun nodeping-agent --help for the flags.\n", err)
		return 2
	}
	if o.ShowVersion {
		fmt.Fprintf(stdout, "nodeping-agent %s (revision %s)\n", version, cli.Revision())
		return 0
	}
	log, _ := o.Log.NewLogger(stderr) // Validate checked it
	if err := textfile.CheckDir(o.TextfileDir); err != nil {
		log.Error("cannot write textfiles", "err", err)
		return 1
	}
	lock, err := textfile.AcquireLock(o.TextfileDir)
	if err != nil {
		log.Error("cannot lock the textfile directory", "err", err)
		return 1
	}
	defer lock.Release()
	if removed, err := textfile.RemoveLeftovers(filepath.Join(o.TextfileDir, o.TextfileName)); err != nil {
		log.Warn("cannot remove leftover temporary files", "err", err)
	} else if len(removed) > 0 {
		log.Info("removed leftover temporary files", "files", removed)
	}
	d := o.Derive()
	a, closeAll, err := agent.Build(d, results.BuildInfo{Version: version, Revision: cli.Revision()}, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer closeAll()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "version", version, "node", o.NodeName, "nodes_file", o.NodesFile, "textfile", o.TextfileDir+"/"+o.TextfileName,
		"interval", d.Interval, "icmp_count", d.ICMP.Count, "icmp_interval", d.ICMP.Interval, "icmp_timeout", d.ICMP.Timeout,
		"icmp_engine", d.Engine, "mtu", d.MTU.Size, "once", d.Once, "budget", d.Budget.String())
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	if o.Once {
		fmt.Fprintf(stdout, "nodeping-agent: %s\n", a.Summary())
	}
	return 0
}
