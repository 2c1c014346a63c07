package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nodeping/nodeping/internal/testutil/dnstest"
	"github.com/nodeping/nodeping/pkg/probe"
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

// TestBuildRegistersEveryEngine: the batch ICMP engine and the UDP probe's both report their
// running totals, labelled by protocol, and the ICMP sockets' modes are known. It opens raw or
// ping sockets, so it needs root or ping_group_range.
func TestBuildRegistersEveryEngine(t *testing.T) {
	o, err := Parse([]string{"--node-name", "a", "--udp-port", "40999", "--mtu", "1500", "--once"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, closeAll, err := Build(o.Derive(), results.BuildInfo{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	defer closeAll()
	var protocols []string
	for _, e := range a.cfg.Engines {
		protocols = append(protocols, e.Protocol)
		if e.Counters() != (probe.EngineCounters{}) {
			t.Errorf("%s engine: counters %+v before any run, want zero", e.Protocol, e.Counters())
		}
	}
	if strings.Join(protocols, ",") != "icmp,udp" { // the MTU probe shares the ICMP engine
		t.Errorf("engines %v, want icmp,udp", protocols)
	}
	if len(a.cfg.ICMPModes) == 0 {
		t.Error("no ICMP socket mode")
	}
}

// TestExternalResolverFailsOver: a first nameserver that never answers leaves the second its
// turn within one look-up's bound, as the agent sets it (the whole look-up, not each exchange).
func TestExternalResolverFailsOver(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	good := dnstest.Start(t, func(string) (int, string) { return dns.RcodeSuccess, "192.0.2.7" })
	const lookup = 600 * time.Millisecond
	r := externalResolver([]string{silent.LocalAddr().String(), good}, lookup)
	ctx, cancel := context.WithTimeout(context.Background(), lookup)
	defer cancel()
	ans, err := r.Lookup(ctx, "gw.example.org.")
	if err != nil || !slices.Contains(ans.Addrs, netip.MustParseAddr("192.0.2.7")) {
		t.Errorf("look-up with the first nameserver silent: %v, %v; want 192.0.2.7 from the second within %s", ans.Addrs, err, lookup)
	}
}
