package controller

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodeping/nodeping/internal/testutil/golden"
)

const (
	docsPath   = "../../docs/metrics.md"
	beginTable = "<!-- BEGIN GENERATED: go test ./pkg/controller -update-docs -->"
	endTable   = "<!-- END GENERATED -->"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the controller's metric table in docs/metrics.md")

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
