package controller

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodeping/nodeping/internal/cli"
	"github.com/nodeping/nodeping/internal/testutil/golden"
)

const (
	docsPath   = "../../docs/metrics.md"
	beginTable = "<!-- BEGIN GENERATED: go test ./pkg/controller -update-docs -->"
	endTable   = "<!-- END GENERATED -->"
)

const (
	flagsDocsPath = "../../docs/install.md"
	beginFlags    = "<!-- BEGIN GENERATED: go test ./pkg/controller -update-docs (flags) -->"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the controller's metric table in docs/metrics.md and its flag table in docs/install.md")

// docsTable renders the table of the controller's metric families, as docs/metrics.md holds it:
// every series exists from the start, so a fresh registry shows every family with its labels.
func docsTable(t *testing.T) string {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n")
	for _, f := range families {
		var labels []string
		if ms := f.GetMetric(); len(ms) > 0 {
			for _, l := range ms[0].GetLabel() {
				labels = append(labels, "`"+l.GetName()+"`")
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.GetName(), strings.ToLower(f.GetType().String()),
			strings.Join(labels, ", "), strings.ReplaceAll(f.GetHelp(), "|", `\|`))
	}
	return b.String()
}

// TestDocsListEveryMetric keeps the Controller section of docs/metrics.md in step with NewMetrics.
func TestDocsListEveryMetric(t *testing.T) {
	golden.Section(t, filepath.FromSlash(docsPath), beginTable, endTable, docsTable(t), *updateDocs)
}

// flagsTable renders the controller's flags as docs/install.md holds them: flag, environment
// variable, default and meaning. The identity's default, the host name, is named, not shown.
func flagsTable() string {
	var o Options
	var b strings.Builder
	b.WriteString("| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n")
	o.FlagSet().VisitAll(func(f *flag.Flag) {
		def := "`" + f.DefValue + "`"
		switch {
		case f.Name == "identity":
			def = "the host name"
		case f.DefValue == "":
			def = "none"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, cli.EnvName(f.Name), def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}

// TestDocsListEveryFlag keeps the controller's flag table in docs/install.md in step with
// Options.FlagSet.
func TestDocsListEveryFlag(t *testing.T) {
	golden.Section(t, filepath.FromSlash(flagsDocsPath), beginFlags, endTable, flagsTable(), *updateDocs)
}
