//go:build linux

package simcluster

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	nodes, zones := Names(6, 3)
	good := []struct {
		spec  string
		class string
		want  string // expected alerts, joined by " "
	}{
		{"none", "healthy", ""},
		{"loss:node-2:1", "node-gray-1-3pct", "NodePingNodeUnreachable{node=node-2,zone=zone-b}"},
		{"loss:node-2:0.5", "node-gray-1-3pct", "NodePingNodeUnreachable{node=node-2,zone=zone-b}"},
		{"loss:node-2:30", "node-lossy-5-30pct", "NodePingNodeUnreachable{node=node-2,zone=zone-b}"},
		{"blackhole:node-3", "node-blackhole", "NodePingNodeUnreachable{node=node-3,zone=zone-c}"},
		{"isolate:node-4", "node-own-echoes-dropped", "NodePingNodeIsolated{node=node-4,zone=zone-a}"},
		{"link:node-1:node-2", "pair-lossy-both-ways", "NodePingPairLoss{source_zone=zone-a,destination_zone=zone-b,source_node=node-1,destination_node=node-2} NodePingPairLoss{source_zone=zone-b,destination_zone=zone-a,source_node=node-2,destination_node=node-1}"},
		{"pair-loss:node-1:node-2:50", "pair-lossy-one-way", "NodePingPairLoss{source_zone=zone-a,destination_zone=zone-b,source_node=node-1,destination_node=node-2}"},
		{"link:node-1:node-2:30", "pair-lossy-both-ways", "NodePingPairLoss{source_zone=zone-a,destination_zone=zone-b,source_node=node-1,destination_node=node-2} NodePingPairLoss{source_zone=zone-b,destination_zone=zone-a,source_node=node-2,destination_node=node-1}"},
		{"zone-link:zone-a:zone-c:20", "zone-link-lossy", "NodePingZoneLinkDegraded{source_zone=zone-a,destination_zone=zone-c} NodePingZoneLinkDegraded{source_zone=zone-c,destination_zone=zone-a}"},
		{"zone-link:zone-a:zone-c", "zone-link-down", "NodePingZoneLinkDegraded{source_zone=zone-a,destination_zone=zone-c} NodePingZoneLinkDegraded{source_zone=zone-c,destination_zone=zone-a}"},
		{"partition:zone-b", "zone-partition", "NodePingZoneIsolated{zone=zone-b}"},
		{"mtu:node-2:1000", "mtu-blackhole", "NodePingMTUBlackhole{node=node-2,zone=zone-b}"},
		{"latency:node-2:50ms", "node-latency", "NodePingHighLatency{node=node-2,zone=zone-b}"},
		{"latency:node-2:50ms:10ms", "node-latency", "NodePingHighLatency{node=node-2,zone=zone-b}"},
		{"zone-latency:zone-a:zone-c:50ms", "zone-link-latency", "NodePingZoneLinkLatency{source_zone=zone-a,destination_zone=zone-c} NodePingZoneLinkLatency{source_zone=zone-c,destination_zone=zone-a}"},
		{"stop-agent:node-5", "agent-missing", "NodePingAgentMissing{node=node-5}"},
		{"cordoned-blackhole:node-6", "cordoned-blackhole", ""},
		{"background-loss:0.3", "healthy", ""},
		{"blackhole:node-2+loss:node-6:5", "two-node-faults", "NodePingNodeUnreachable{node=node-2,zone=zone-b} NodePingNodeUnreachable{node=node-6,zone=zone-c}"},
	}
	zoneOf := func(n string) string { return zones[(int(n[len(n)-1]-'0')-1)%3] }
	for _, tc := range good {
		s, err := ParseSpec(tc.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.spec, err)
			continue
		}
		if err := s.Check(nodes, zones); err != nil {
			t.Errorf("%q: Check: %v", tc.spec, err)
		}
		if s.String() != tc.spec || s.Class() != tc.class {
			t.Errorf("%q: String %q, Class %q; want %q", tc.spec, s, s.Class(), tc.class)
		}
		var got []string
		for _, a := range s.Expected(zoneOf) {
			got = append(got, a.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: expected alerts\n  %s\nwant\n  %s", tc.spec, strings.Join(got, " "), tc.want)
		}
	}
	if s, _ := ParseSpec("latency:node-2:50ms:10ms"); s.RTT != 50*time.Millisecond || s.Jitter != 10*time.Millisecond {
		t.Errorf("latency:node-2:50ms:10ms: RTT %v, jitter %v", s.RTT, s.Jitter)
	}

	bad := map[string]string{
		"":                        `unknown kind ""`,
		"flood:node-1":            `unknown kind "flood"; want one of none, loss:NODE:PERCENT`,
		"loss:node-1":             `want loss:NODE:PERCENT`,
		"loss:node-1:lots":        `"lots" is not a percentage`,
		"loss:node-1:0":           `"0" is not a percentage`,
		"loss:node-1:30:extra":    `want loss:NODE:PERCENT`,
		"blackhole:":              `empty argument 1`,
		"mtu:node-1:big":          `"big" is not a number of bytes`,
		"latency:node-1":          `want latency:NODE:RTT[:JITTER]`,
		"latency:node-1:50":       `"50" is not a duration`,
		"latency:node-1:-5ms":     `"-5ms" is not a duration`,
		"link:node-1:node-1":      `the two ends are the same`,
		"zone-link:zone-a:zone-a": `the two ends are the same`,
		"none+blackhole:node-1":   `none cannot be combined`,
		"blackhole:node-1+":       `unknown kind ""`,
		"background-loss:20":      `not background`,
	}
	for spec, want := range bad {
		if _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
	for spec, want := range map[string]string{
		"blackhole:node-7":        `no node "node-7" (the cluster has node-1..node-6)`,
		"partition:zone-d":        `no zone "zone-d" (the cluster has zone-a, zone-b, zone-c)`,
		"loss:node-1:1+isolate:n": `no node "n"`,
	} {
		s, err := ParseSpec(spec)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", spec, err)
		}
		if err := s.Check(nodes, zones); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: Check = %v, want %q", spec, err, want)
		}
	}
}
