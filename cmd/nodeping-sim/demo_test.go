//go:build linux

package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/simcluster"
)

// TestDemoChecksArgumentsFirst: scripts/demo refuses a bad, trailing or missing fault spec with
// exit 2 and a clear message at once (before any build or healthy wait), and its own check of
// the grammar agrees with nodeping-sim's on every kind.
func TestDemoChecksArgumentsFirst(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("skipping: no bash")
	}
	demo := func(args ...string) (int, string) {
		cmd := exec.Command("bash", append([]string{"../../scripts/demo"}, args...)...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if time.Since(start) > 5*time.Second {
			t.Errorf("scripts/demo %q took %s: it must answer before building", args, time.Since(start))
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fault"}, "--fault needs a spec"},
		{[]string{"--fault", ""}, "--fault needs a spec"},
		{[]string{"--fault", "loss:node-2"}, "--fault loss:node-2: not a fault spec; want one of: none, loss:NODE:PERCENT"},
		{[]string{"--fault", "loss:node-2:30", "extra"}, "unknown argument extra"},
		{[]string{"--fault", "latency:node-2:50"}, "not a fault spec"},
		{[]string{"--frobnicate"}, "unknown argument --frobnicate"},
	} {
		if code, out := demo(tc.args...); code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("scripts/demo %q: exit %d, %q; want 2 and %q", tc.args, code, out, tc.want)
		}
	}
	specs := []string{"none", "loss:node-2:1", "loss:node-2:0.5", "loss:node-2", "loss:node-2:x", "blackhole:node-3", "blackhole:",
		"isolate:node-1", "link:node-1:node-2", "zone-link:zone-a:zone-c", "zone-link:zone-a", "partition:zone-b",
		"mtu:node-2:1000", "mtu:node-2:big", "latency:node-2:50ms", "latency:node-2:50ms:5ms", "latency:node-2:50",
		"zone-latency:zone-a:zone-c:50ms", "zone-latency:zone-a:zone-c:1s:100ms", "stop-agent:node-4",
		"cordoned-blackhole:node-5", "background-loss:0.3", "blackhole:node-2+loss:node-6:5", "blackhole:node-2+", "flood:node-1"}
	for _, s := range specs {
		_, err := simcluster.ParseSpec(s)
		code, out := demo("--fault", s, "--validate-only")
		if (err == nil) != (code == 0) {
			t.Errorf("spec %q: nodeping-sim says %v, scripts/demo exits %d (%s)", s, err, code, out)
		}
	}
}
