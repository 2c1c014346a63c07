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
		{[]string{"--max-external-targets", "-1"}, 2, "--max-external-targets -1: must not be negative"},
		{[]string{"--log-level", "loud"}, 2, `--log-level "loud"`},
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

func TestNamespaceFromEnvironment(t *testing.T) {
	o, err := parseFlags(nil, func(k string) string {
		if k == "POD_NAMESPACE" {
			return "monitoring"
		}
		return ""
	}, &bytes.Buffer{})
	if err != nil || o.namespace != "monitoring" {
		t.Errorf("namespace %q (%v), want monitoring from $POD_NAMESPACE", o.namespace, err)
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

func TestListenAddressDefaultsToLoopback(t *testing.T) {
	o, err := parseFlags(nil, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil || o.listen != "127.0.0.1:8080" {
		t.Errorf("--listen-address default %q (%v), want 127.0.0.1:8080: outside a cluster it must not bind every interface", o.listen, err)
	}
}
