// Package docstest ties the facts that README.md and docs/*.md quote to the files and code they
// come from: the alert names and their `for` in manifests/rules, the agent's flags and defaults,
// the metric names, the packages of the layout, and the log lines the runbooks tell an engineer
// to look for.
package docstest

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/nodeping/nodeping/pkg/agent"
	"github.com/nodeping/nodeping/pkg/controller"
	"github.com/nodeping/nodeping/pkg/results"
)

const root = "../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ruleFile is the part of a Prometheus rule file these tests read.
type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert  string            `json:"alert"`
			For    string            `json:"for"`
			Labels map[string]string `json:"labels"`
		} `json:"rules"`
	} `json:"groups"`
}

// alert is what the documents quote of a shipped alert.
type alert struct {
	wait     time.Duration // its for; 0 when it has none
	severity string
}

// alerts returns every alert of the shipped rules.
func alerts(t *testing.T) map[string]alert {
	t.Helper()
	var rf ruleFile
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(read(t, "manifests/rules/nodeping.rules.yml")), 4096)
	if err := dec.Decode(&rf); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	out := map[string]alert{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			var d time.Duration
			if r.For != "" {
				var err error
				if d, err = parseDuration(r.For); err != nil {
					t.Fatalf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			out[r.Alert] = alert{wait: d, severity: r.Labels["severity"]}
		}
	}
	if len(out) == 0 {
		t.Fatal("no alert in manifests/rules/nodeping.rules.yml")
	}
	return out
}

// parseDuration reads a Prometheus duration as the rules and the docs write it: 30s, 1m, 10m, 0s,
// or "none" in a document for no `for`.
func parseDuration(s string) (time.Duration, error) {
	s = strings.Trim(strings.TrimSpace(s), "`")
	if s == "none" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// section returns the text of doc from the heading that starts with head to the next heading of
// the same or a higher level.
func section(t *testing.T, doc, head string) string {
	t.Helper()
	doc = "\n" + doc
	i := strings.Index(doc, "\n"+head)
	if i < 0 {
		t.Fatalf("no heading %q", head)
	}
	level := strings.Index(head, " ")
	rest := doc[i+1+len(head):]
	for _, m := range regexp.MustCompile(`(?m)^#+ `).FindAllStringIndex(rest, -1) {
		if m[1]-m[0]-1 <= level {
			return doc[i+1 : i+1+len(head)+m[0]]
		}
	}
	return doc[i+1:]
}

// tableRows returns the cells of every row of the first Markdown table in text whose header
// starts with the cell first.
func tableRows(t *testing.T, text, first string) (header []string, rows [][]string) {
	t.Helper()
	in := false
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case !in && cells[0] == first:
			in, header = true, cells
		case in && strings.HasPrefix(cells[0], "---"):
		case in:
			rows = append(rows, cells)
		}
	}
	if !in {
		t.Fatalf("no table whose first column is %q", first)
	}
	return header, rows
}

func column(t *testing.T, header []string, prefix string) int {
	t.Helper()
	for i, h := range header {
		if strings.HasPrefix(h, prefix) {
			return i
		}
	}
	t.Fatalf("no column %q in %q", prefix, header)
	return -1
}

var alertName = regexp.MustCompile(`NodePing[A-Z][A-Za-z]+`)

// TestAlertTables checks the alert tables of README.md and docs/alerts.md against the shipped
// rules: one row per alert, every alert, and each one's `for` (and severity, where the table
// has a column for it) as the rule has it.
func TestAlertTables(t *testing.T) {
	want := alerts(t)
	for _, tc := range []struct{ doc, section string }{
		{"README.md", "## Alerts"},
		{"docs/alerts.md", "# Alerts and runbooks"},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			header, rows := tableRows(t, section(t, read(t, tc.doc), tc.section), "Alert")
			waits := column(t, header, "Waits")
			sev := -1
			for i, h := range header {
				if h == "Severity" {
					sev = i
				}
			}
			seen := map[string]bool{}
			for _, r := range rows {
				name := alertName.FindString(r[0])
				a, ok := want[name]
				if !ok {
					t.Errorf("row %q: no such alert in manifests/rules/nodeping.rules.yml", r[0])
					continue
				}
				if seen[name] {
					t.Errorf("%s: listed twice", name)
				}
				seen[name] = true
				got, err := parseDuration(r[waits])
				if err != nil {
					t.Errorf("%s: waits %q: %v", name, r[waits], err)
				} else if got != a.wait {
					t.Errorf("%s: the table says it waits %s, the rule's for is %s", name, r[waits], a.wait)
				}
				if sev >= 0 && r[sev] != a.severity {
					t.Errorf("%s: the table says severity %s, the rule %s", name, r[sev], a.severity)
				}
			}
			for name := range want {
				if !seen[name] {
					t.Errorf("%s is not in the table", name)
				}
			}
		})
	}
}

// TestAlertNamesExist checks that every alert name the documents use is a shipped alert (or
// Deckhouse's NodePingPacketLoss, which the compatibility sections discuss).
func TestAlertNamesExist(t *testing.T) {
	want := alerts(t)
	want["NodePingPacketLoss"] = alert{}
	docs := documents()
	for _, d := range docs {
		for _, name := range alertName.FindAllString(read(t, d), -1) {
			if _, ok := want[name]; !ok {
				t.Errorf("%s names %s, which no shipped rule defines", d, name)
			}
		}
	}
}

// forClaim is a `for` quoted in prose: "`for: 30s`", "a 30 s `for`", "waits 1m".
var forClaim = regexp.MustCompile("`for: ([0-9]+[smh])`|([0-9]+) ?(s|m|min) `for`")

// TestForClaims checks every `for` that a paragraph of the documents quotes: the paragraph must
// name an alert that waits that long. A `for` quoted without its alert ("every alert waits 30 s")
// fails: the alerts do not all wait the same.
func TestForClaims(t *testing.T) {
	want := alerts(t)
	docs := documents()
	checked := 0
	for _, d := range docs {
		for _, para := range strings.Split(read(t, d), "\n\n") {
			names := alertName.FindAllString(para, -1)
			for _, c := range forClaim.FindAllStringSubmatch(para, -1) {
				v := c[1]
				if v == "" {
					v = c[2] + strings.TrimSuffix(c[3], "in")
				}
				got, err := parseDuration(v)
				if err != nil {
					t.Fatalf("%s: %q: %v", d, c[0], err)
				}
				checked++
				ok := false
				for _, n := range names {
					if a, known := want[n]; known && a.wait == got {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s: %q in a paragraph naming %v, none of which waits %s:\n%s", d, c[0], names, got, para)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no `for` claim found: the pattern no longer matches the documents")
	}
}

// goStrings returns every string literal of the product's non-test Go code.
func goStrings(t *testing.T) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	for _, dir := range []string{"cmd", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						out = append(out, s)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A runbook's paragraph or list item that mentions a log quotes, in backticks, the lines the
// engineer is told to look for. Commands, metrics, flags, paths and label matchers are not
// log lines, and neither is a quote of one word (a name), but for the one-word messages isLogWord
// lists.
var (
	mentionsLog = regexp.MustCompile(`(?i)\blog(s|ged|'s)?\b`)
	backticked  = regexp.MustCompile("`([^`]+)`")
	notLogLine  = regexp.MustCompile(`^(kubectl |nodeping_|NodePing|--|df |ip )|[{}=/]|^[^ ]*$`)
)

// TestRunbookLogLines checks that every log line a runbook in docs/alerts.md quotes is printed
// by the agent or the controller: it must be part of a string literal in cmd/ or pkg/. One-word
// quotes ("leading") are checked too.
func TestRunbookLogLines(t *testing.T) {
	lits := goStrings(t)
	runbooks := section(t, read(t, "docs/alerts.md"), "## Runbooks")
	quoted := 0
	for _, block := range regexp.MustCompile(`\n\n|\n(?:[0-9]+\.|-) `).Split(runbooks, -1) {
		if !mentionsLog.MatchString(block) {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(strings.ReplaceAll(block, "\n", " "), -1) {
			q := m[1]
			if notLogLine.MatchString(q) && !isLogWord(q) {
				continue
			}
			quoted++
			found := false
			for _, s := range lits {
				if strings.Contains(s, q) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("docs/alerts.md quotes the log line %q, which no string in cmd/ or pkg/ holds:\n%s", q, block)
			}
		}
	}
	if quoted == 0 {
		t.Error("no log line found in the runbooks: the pattern no longer matches docs/alerts.md")
	}
}

// isLogWord reports the one-word log messages the runbooks quote, which notLogLine would
// otherwise take for a label or a name.
func isLogWord(q string) bool { return q == "leading" || q == "following" }

var flagName = regexp.MustCompile("`(--[a-z0-9-]+)`")

// TestReadmeFlagTable checks the README's table of the agent's flags against the agent's flag
// set: every flag is in it, and each default the table quotes is the flag's.
func TestReadmeFlagTable(t *testing.T) {
	var o agent.Options
	fs := o.FlagSet()
	header, rows := tableRows(t, read(t, "README.md"), "Flag")
	def := column(t, header, "Default")
	// Flags whose default the table describes in words, because it is computed or taken from
	// elsewhere: the flag set shows none.
	described := map[string]bool{"node-name": true, "icmp-timeout": true, "dns-resolvers": true}
	seen := map[string]bool{}
	for _, r := range rows {
		names := flagName.FindAllStringSubmatch(r[0], -1)
		var defs []string
		for _, m := range backticked.FindAllStringSubmatch(r[def], -1) {
			defs = append(defs, m[1])
		}
		// "none" is written without backticks: a default of "".
		for i, m := range names {
			name := strings.TrimPrefix(m[1], "--")
			f := fs.Lookup(name)
			if f == nil {
				t.Errorf("README: %s is not a flag of nodeping-agent", m[1])
				continue
			}
			seen[name] = true
			if described[name] {
				continue
			}
			switch {
			case f.DefValue == "":
				if !strings.HasPrefix(r[def], "none") && !(i < len(defs) && defs[i] == "") {
					t.Errorf("README: %s has no default; the table says %q", m[1], r[def])
				}
			case len(defs) == 1 && len(names) > 1:
				if defs[0] != f.DefValue {
					t.Errorf("README: %s defaults to %q; the table says %q", m[1], f.DefValue, defs[0])
				}
			case i >= len(defs):
				t.Errorf("README: the row of %s quotes no default for it (want %q)", m[1], f.DefValue)
			case defs[i] != f.DefValue:
				t.Errorf("README: %s defaults to %q; the table says %q", m[1], f.DefValue, defs[i])
			}
		}
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			missing = append(missing, "--"+f.Name)
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README's flag table leaves out %s", strings.Join(missing, ", "))
	}
}

// TestArchitectureNamesEveryPackage checks that docs/architecture.md's layout names every Go
// package of the repository: its path, or a tail of it (`agent`, `cmd/rulecampaign`), in
// backticks.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	doc := read(t, "docs/architecture.md")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(doc, -1) {
		named[m[1]] = true
	}
	dirs := map[string]bool{}
	for _, top := range []string{"cmd", "pkg", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && e.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !e.IsDir() && strings.HasSuffix(path, ".go") {
				rel, err := filepath.Rel(root, filepath.Dir(path))
				if err != nil {
					return err
				}
				dirs[filepath.ToSlash(rel)] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for dir := range dirs {
		ok := named[dir]
		for p := dir; !ok && strings.Contains(p, "/"); {
			p = p[strings.Index(p, "/")+1:]
			ok = named[p]
		}
		if !ok {
			t.Errorf("docs/architecture.md does not name the package %s", dir)
		}
	}
	if len(dirs) < 10 {
		t.Fatalf("found only %d packages: is root right?", len(dirs))
	}
}

var metricName = regexp.MustCompile(`\bnodeping_[a-z0-9_]*[a-z0-9]`)

// TestMetricNamesExist checks that every nodeping_ metric the documents name is one the agent
// writes (pkg/results) or the controller serves (pkg/controller), with a histogram's series
// suffixes.
func TestMetricNamesExist(t *testing.T) {
	known := map[string]bool{}
	for _, f := range results.Families() {
		known[f.Name] = true
		if f.Type == results.Histogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[f.Name+suffix] = true
			}
		}
	}
	reg := prometheus.NewRegistry()
	controller.NewMetrics(reg)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		known[f.GetName()] = true
	}
	docs := documents()
	checked := 0
	for _, d := range docs {
		doc := read(t, d)
		for _, ix := range metricName.FindAllStringIndex(doc, -1) {
			name := doc[ix[0]:ix[1]]
			checked++
			if known[name] {
				continue
			}
			// A prefix, as in `nodeping_controller_*` or `nodeping_external_` families.
			if ix[1] < len(doc) && doc[ix[1]] == '_' {
				prefix := false
				for k := range known {
					prefix = prefix || strings.HasPrefix(k, name+"_")
				}
				if prefix {
					continue
				}
			}
			t.Errorf("%s names %s, which neither the agent nor the controller writes", d, name)
		}
	}
	if checked == 0 {
		t.Error("no metric name found in the documents")
	}
}

// TestLongSteps checks that docs/reliability.md and docs/testing.md list the steps of
// scripts/test-long that the script runs by default, in its order.
func TestLongSteps(t *testing.T) {
	m := regexp.MustCompile(`(?m)^\[ \$\{#steps\[@\]\} -gt 0 \] \|\| steps=\(([a-z ]+)\)$`).FindStringSubmatch(read(t, "scripts/test-long"))
	if m == nil {
		t.Fatal("scripts/test-long: no default steps=(...) line")
	}
	want := strings.Fields(m[1])
	rel := read(t, "docs/reliability.md")
	usage := regexp.MustCompile("`scripts/test-long \\[([a-z|]+)\\]`").FindStringSubmatch(rel)
	if usage == nil {
		t.Fatal("docs/reliability.md: no `scripts/test-long [step|...]` line")
	}
	var bullets []string
	for _, b := range regexp.MustCompile(`(?m)^- \*\*([a-z]+)\*\*: `).FindAllStringSubmatch(section(t, rel, "## The long target"), -1) {
		bullets = append(bullets, b[1])
	}
	paren := regexp.MustCompile("`scripts/test-long` \\(([a-z, ]+); as root\\)").FindStringSubmatch(strings.ReplaceAll(read(t, "docs/testing.md"), "\n", " "))
	if paren == nil {
		t.Fatal("docs/testing.md: no `scripts/test-long` (step, ...; as root) list")
	}
	for _, got := range []struct {
		where string
		steps []string
	}{
		{"docs/reliability.md's usage line", strings.Split(usage[1], "|")},
		{"docs/reliability.md's list", bullets},
		{"docs/testing.md", strings.Split(paren[1], ", ")},
	} {
		if strings.Join(got.steps, " ") != strings.Join(want, " ") {
			t.Errorf("%s lists the steps %q; scripts/test-long runs %q", got.where, got.steps, want)
		}
	}
}

// documents are the README and every page under docs/, as paths from the repository's root.
func documents() []string {
	md, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs := []string{"README.md"}
	for _, p := range md {
		docs = append(docs, "docs/"+filepath.Base(p))
	}
	return docs
}

var testName = regexp.MustCompile(`\bTest[A-Z][A-Za-z0-9_]+`)

// TestTestNamesExist checks that every test the documents name (as the proof of a claim) is a
// test function of the module.
func TestTestNamesExist(t *testing.T) {
	have := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		for _, m := range decl.FindAllSubmatch(src, -1) {
			have[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range documents() {
		for _, name := range testName.FindAllString(read(t, d), -1) {
			if !have[name] {
				t.Errorf("%s names %s, which no test of the module defines", d, name)
			}
		}
	}
}
