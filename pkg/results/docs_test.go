package results

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/internal/testutil/golden"
)

const (
	docsPath   = "../../docs/metrics.md"
	beginTable = "<!-- BEGIN GENERATED: go test ./pkg/results -update-docs -->"
	endTable   = "<!-- END GENERATED -->"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the metric table in docs/metrics.md")

// docsTable renders the table of every metric family, as docs/metrics.md holds it.
func docsTable() string {
	var b strings.Builder
	b.WriteString("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n")
	// Compatibility families go last, in a table of their own.
	var compat []Family
	row := func(f Family) {
		labels := make([]string, len(f.Labels))
		for i, l := range f.Labels {
			labels[i] = "`" + l + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, f.Type, strings.Join(labels, ", "), strings.ReplaceAll(f.Help, "|", `\|`))
	}
	for _, f := range Families() {
		if f.Compat != "" {
			compat = append(compat, f)
			continue
		}
		row(f)
	}
	b.WriteString("\nWith `--compat=flant` (Flant node-ping's names, labels, HELP texts and units; taken from the ICMP probe over IPv4 only, one series per node or target, as Flant had):\n\n| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n")
	for _, f := range compat {
		row(f)
	}
	return b.String()
}

// TestDocsListEveryMetric keeps docs/metrics.md in step with the metrics the agent writes.
func TestDocsListEveryMetric(t *testing.T) {
	golden.Section(t, filepath.FromSlash(docsPath), beginTable, endTable, docsTable(), *updateDocs)
}
