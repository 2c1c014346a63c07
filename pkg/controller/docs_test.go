package controller

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	data, err := os.ReadFile(filepath.FromSlash(docsPath))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i := strings.Index(doc, beginTable)
	j := -1
	if i >= 0 {
		if k := strings.Index(doc[i:], endTable); k >= 0 {
			j = i + k
		}
	}
	if i < 0 || j < 0 {
		t.Fatalf("%s lacks the %q ... %q markers", docsPath, beginTable, endTable)
	}
	want := docsTable(t)
	got := doc[i+len(beginTable)+1 : j]
	if *updateDocs {
		doc = doc[:i+len(beginTable)+1] + want + doc[j:]
		if err := os.WriteFile(filepath.FromSlash(docsPath), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("the controller's metric table in %s is out of date; run go test ./pkg/controller -update-docs\nwant:\n%s", docsPath, want)
	}
}
