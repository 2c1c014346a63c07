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
		{[]string{"--debounce", "-1s"}, 2, "--debounce -1s: must not be negative"},
		{[]string{"--configmap", ""}, 2, "must not be empty"},
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
