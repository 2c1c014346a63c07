package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "-configmap"},
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"--debounce", "-1s"}, 2, "must not be negative"},
		{[]string{"--min-write-interval", "-1s"}, 2, "must not be negative"},
		{[]string{"--configmap", ""}, 2, "must not be empty"},
		{[]string{"--max-external-targets", "-1"}, 2, "--max-external-targets -1: must be at least 1"},
		{[]string{"--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, 2, `--log-format "xml": must be text or json`},
		{[]string{"--help"}, 0, "NODEPING_<FLAG>"},
		{[]string{"--log-format", "json", "--kubeconfig", "/nonexistent/kubeconfig"}, 1, `"level":"ERROR","msg":"cannot configure the Kubernetes client"`},
		{[]string{"--kubeconfig", "/nonexistent/kubeconfig"}, 1, "cannot configure the Kubernetes client"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		code := run(context.Background(), tc.args, func(string) string { return "" }, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestHelpNamesEachDefaultOnce: the flag package appends "(default ...)" itself, so no usage text
// may say its default again.
func TestHelpNamesEachDefaultOnce(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stderr); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	flags := strings.Split(stderr.String(), "\n  -")
	if len(flags) < 10 {
		t.Fatalf("--help lists %d flags:\n%s", len(flags)-1, stderr.String())
	}
	for _, f := range flags[1:] {
		if n := strings.Count(f, "(default"); n > 1 {
			t.Errorf("flag -%s names its default %d times", f, n)
		}
	}
}
