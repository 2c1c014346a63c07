//go:build linux

// Command pause is the pod sandbox process of scripts/cluster-up's nodes: it holds the pod's
// namespaces, reaps orphans as PID 1 of a shared process namespace would, and exits on SIGINT or
// SIGTERM. It stands in for registry.k8s.io/pause, which cannot be pulled on a machine that
// reaches no registry; scripts/image builds it into an image under that name.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
