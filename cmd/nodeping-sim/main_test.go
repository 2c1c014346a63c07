//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{nil, 2, "--agent-bin is required"},
		{[]string{"--help"}, 0, "loss:NODE:PERCENT"},
		{[]string{"--fault", "loss:node-1"}, 2, `--fault "loss:node-1": want loss:NODE:PERCENT`},
		{[]string{"--fault", "loss:node-1:lots"}, 2, `"lots" is not a percentage`},
		{[]string{"--fault", "flood:node-1"}, 2, `unknown kind "flood"; want one of none, loss:NODE:PERCENT`},
		{[]string{"--fault", "mtu:node-1:big"}, 2, `"big" is not a number of bytes`},
		{[]string{"--fault", "blackhole:node-7"}, 2, `no node "node-7" (the cluster has node-1..node-6)`},
		{[]string{"--nodes", "12", "--fault", "blackhole:node-7", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--fault", "partition:zone-d"}, 2, `no zone "zone-d"`},
		{[]string{"campaign"}, 2, "--rules is required"},
		{[]string{"campaign", "--rules", "x.yml", "--classes", "node-blackhole,flood"}, 2, `unknown class "flood"`},
		{[]string{"campaign", "--rules", "x.yml", "extra"}, 2, `nodeping-sim campaign: unexpected argument "extra"`},
		{[]string{"campaign", "--help"}, 0, "class cases precision recall median_s worst_s alerts_per_fault"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}
