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
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

func TestFaultSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"loss:node-1":      `--fault "loss:node-1": want one of none, loss:NODE:PERCENT`,
		"loss:node-1:lots": `--fault "loss:node-1:lots": "lots" is not a number`,
		"flood:node-1":     `--fault "flood:node-1": want one of none`,
		"mtu:node-1:big":   `"big" is not a number`,
	} {
		if _, err := inject(nil, spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("inject(%q) = %v, want %q", spec, err, want)
		}
	}
}
