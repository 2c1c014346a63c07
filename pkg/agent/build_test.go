package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/pkg/results"
)

// TestBuildSaysWhatItTurnsOff: the pro-bing engine has no MTU probe, and the log says so at start;
// no MTU probe is registered. pro-bing opens no socket until it runs, so this needs no root.
func TestBuildSaysWhatItTurnsOff(t *testing.T) {
	o, err := Parse([]string{"--node-name", "a", "--icmp-engine", "pro-bing", "--mtu", "1500", "--once"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	a, closeAll, err := Build(o.Derive(), results.BuildInfo{}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	want := `level=WARN msg="--mtu 1500 is off: the pro-bing engine has no MTU probe (use --icmp-engine=batch)"`
	if !strings.Contains(log.String(), want) {
		t.Errorf("log:\n%s\nwant a line with %s", log.String(), want)
	}
	var protocols []string
	for _, p := range a.probes {
		protocols = append(protocols, p.Protocol)
	}
	if strings.Join(protocols, ",") != "icmp" {
		t.Errorf("probes %v, want icmp only", protocols)
	}
}
