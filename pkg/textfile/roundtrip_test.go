package textfile_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodeping/nodeping/internal/testutil/nodeexporter"
	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/results"
	"github.com/nodeping/nodeping/pkg/textfile"
)

// listToTextfile is the agent's path from a nodes list to its file: decode, observe one probe
// result per node (both ways of writing it: nodeping's and Flant's), write atomically. It
// returns the decoded list and the file's bytes.
func listToTextfile(t testing.TB, list []byte, compat string) (nodelist.List, []byte) {
	t.Helper()
	l, _, err := nodelist.Decode(list)
	if err != nil {
		return l, nil
	}
	r := results.New(results.Source{Node: "self", Zone: "z"}, results.BuildInfo{Version: "v", Revision: "r"}, compat)
	r.BeginCycle()
	for _, n := range l.Nodes {
		for _, a := range n.Addrs() {
			r.Observe(results.Sample{Pair: results.Pair{Kind: results.KindNode, Name: n.Name, Zone: n.Zone, IP: a, Protocol: "icmp"},
				Stats: probe.Stats{Sent: 2, Received: 1, RTTs: []time.Duration{time.Millisecond}}})
		}
	}
	r.EndCycle(time.Second, false, results.AgentState{ListNodes: len(l.Nodes)})
	path := filepath.Join(t.TempDir(), "nodeping.prom")
	if err := textfile.Write(path, r.WriteText); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return l, b
}

// parseLikeNodeExporter parses a file with the reference parser, under both name validations
// (node-exporter releases use one or the other), and refuses client timestamps as node-exporter's
// textfile collector does.
func parseLikeNodeExporter(data []byte) (map[string]*dto.MetricFamily, error) {
	var out map[string]*dto.MetricFamily
	for _, v := range []model.ValidationScheme{model.LegacyValidation, model.UTF8Validation} {
		p := expfmt.NewTextParser(v)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%v parser: %w", v, err)
		}
		for name, mf := range mfs {
			for _, m := range mf.Metric {
				if m.TimestampMs != nil {
					return nil, fmt.Errorf("%s has a client timestamp", name)
				}
			}
		}
		out = mfs
	}
	return out, nil
}

// labelValues collects the values of label in every series of the file.
func labelValues(mfs map[string]*dto.MetricFamily, family, label string) map[string]bool {
	out := map[string]bool{}
	if mf := mfs[family]; mf != nil {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == label {
					out[lp.GetValue()] = true
				}
			}
		}
	}
	return out
}

// nastyList is a nodes list whose names and zones hold what a label value must escape.
func nastyList(names ...string) []byte {
	type node struct {
		Name      string   `json:"name"`
		Zone      string   `json:"zone"`
		Addresses []string `json:"addresses"`
	}
	nodes := []node{{Name: "self", Zone: "z", Addresses: []string{"10.0.0.1"}}}
	for i, n := range names {
		nodes = append(nodes, node{Name: n, Zone: n, Addresses: []string{fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250), fmt.Sprintf("fd00::%x", i+1)}})
	}
	b, _ := json.Marshal(map[string]any{"nodes": nodes})
	return b
}

var nastyNames = []string{"nul\x00in-name", "cr\rand\nnewline", `quote"back\slash`, "tab\tunicode-é-✓", "trailing-\\", strings.Repeat("n", 5000), "{brace}=,\"x\"", "#HELP not-a-comment"}

// FuzzListToTextfile: any node name or zone a nodes list can carry reaches the file as exactly
// that label value, and the file parses as node-exporter parses it.
func FuzzListToTextfile(f *testing.F) {
	for _, n := range nastyNames {
		f.Add(n, n)
	}
	f.Fuzz(func(t *testing.T, name, zone string) {
		list, _ := json.Marshal([]map[string]any{
			{"name": "self", "ipAddress": "10.0.0.1"},
			{"name": name, "zone": zone, "addresses": []string{"10.0.0.2", "fd00::2"}},
		})
		list = []byte(strings.Replace(string(list), "[", `{"nodes":[`, 1) + "}")
		for _, compat := range []string{"", results.CompatFlant} {
			l, data := listToTextfile(t, list, compat)
			if data == nil {
				return
			}
			mfs, err := parseLikeNodeExporter(data)
			if err != nil {
				t.Fatalf("file does not parse: %v\n%q", err, data)
			}
			got := labelValues(mfs, "nodeping_packets_sent_total", "destination_node")
			for _, n := range l.Nodes {
				if !got[n.Name] {
					t.Fatalf("node %q is not a destination_node in the file; got %v", n.Name, got)
				}
			}
		}
	})
}

// TestNastyNamesPassPromtoolAndNodeExporter writes the file for a list of nasty names and has
// the real promtool check it and a real node-exporter serve it with no scrape error.
func TestNastyNamesPassPromtoolAndNodeExporter(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool not installed (apt-get install prometheus)")
	}
	l, data := listToTextfile(t, nastyList(nastyNames...), "")
	if len(l.Nodes) != 1+len(nastyNames) {
		t.Fatalf("decoded %d nodes, want %d", len(l.Nodes), 1+len(nastyNames))
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(data)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "nodeping.prom"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	body, err := nodeexporter.Scrape(nodeexporter.Start(t, dir), 20*time.Second, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "\nnode_textfile_scrape_error 0\n") {
		t.Fatalf("node-exporter reports a scrape error for the file")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("node-exporter's output does not parse: %v", err)
	}
	got := labelValues(mfs, "nodeping_packets_sent_total", "destination_node")
	for _, n := range l.Nodes {
		if !got[n.Name] {
			t.Errorf("node-exporter does not serve destination_node=%q", n.Name)
		}
	}
	if want := 2*len(l.Nodes) - 1; len(mfs["nodeping_packets_sent_total"].GetMetric()) != want {
		t.Errorf("node-exporter serves %d sent series, want about %d", len(mfs["nodeping_packets_sent_total"].GetMetric()), want)
	}
}
