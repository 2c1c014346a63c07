package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nodeping/nodeping/pkg/agent"
)

// runPlan is `nodeping-agent plan`: it prints the probe plan of a nodes list and sends nothing.
// Exit codes: 0 done, 1 the list does not read or decode, 2 bad usage.
func runPlan(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := agent.ParsePlan(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		agent.PrintPlanUsage(stderr)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: %v\nRun nodeping-agent plan --help for the flags.\n", err)
		return 2
	}
	if err := agent.WritePlan(o, stdout, stderr, "nodeping-agent plan: "); err != nil {
		fmt.Fprintf(stderr, "nodeping-agent plan: %v\n", err)
		return 1
	}
	return 0
}
