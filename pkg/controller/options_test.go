package controller

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

func parseOptions(env map[string]string, args ...string) (Options, error) {
	return Parse(args, func(k string) string { return env[k] })
}

// TestInvalidOptions is every refused command line, each with its exact message.
func TestInvalidOptions(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, nil, "flag provided but not defined: -no-such-flag"},
		{"stray argument", []string{"extra"}, nil, `unexpected arguments: ["extra"]`},
		{"empty configmap", []string{"--configmap", ""}, nil, "--namespace, --configmap, --key, --lease and --identity must not be empty"},
		{"empty identity", []string{"--identity", ""}, nil, "--namespace, --configmap, --key, --lease and --identity must not be empty"},
		{"blank identity", []string{"--identity", " \n"}, nil, "--namespace, --configmap, --key, --lease and --identity must not be empty"},
		{"namespace from the environment", nil, map[string]string{"NODEPING_NAMESPACE": "ops"}, ""},
		{"negative debounce", []string{"--debounce", "-1s"}, nil, "--debounce, --debounce-max and --min-write-interval must not be negative"},
		{"negative min write interval", []string{"--min-write-interval", "-1s"}, nil, "--debounce, --debounce-max and --min-write-interval must not be negative"},
		{"negative external cap", []string{"--max-external-targets", "-1"}, nil, "--max-external-targets -1: must be at least 1 (without --external-targets-file the list has none)"},
		{"no external targets", []string{"--max-external-targets", "0"}, nil, "--max-external-targets 0: must be at least 1 (without --external-targets-file the list has none)"},
		{"bad log level", []string{"--log-level", "loud"}, nil, `--log-level "loud": slog: level string "loud": unknown name`},
		{"bad log format", []string{"--log-format", "xml"}, nil, `--log-format "xml": must be text or json`},
		{"bad env", nil, map[string]string{"NODEPING_DEBOUNCE": "soon"}, `environment variable NODEPING_DEBOUNCE="soon": parse error`},
		{"bad env bool", nil, map[string]string{"NODEPING_LEADER_ELECT": "maybe"}, `environment variable NODEPING_LEADER_ELECT="maybe": parse error`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOptions(tc.env, tc.args...)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Parse: %v, want it accepted", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v\nwant %s", tc.args, err, tc.want)
			}
		})
	}
	if _, err := parseOptions(nil, "--help"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
}

// TestOptionsFromEnvironment: every flag has its NODEPING_ variable, $POD_NAMESPACE replaces
// the namespace's default, and the command line wins.
func TestOptionsFromEnvironment(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, o Options)
	}{
		{"defaults", nil, nil, func(t *testing.T, o Options) {
			if o.Namespace != "nodeping" || o.ConfigMap != "nodeping-nodes" || o.Key != "nodes.json" || o.Lease != "nodeping-controller" ||
				!o.LeaderElect || o.Debounce != 2*time.Second || o.DebounceMax != 10*time.Second || o.MinWriteInterval != 10*time.Second ||
				o.ListenAddress != "127.0.0.1:8080" || o.MaxExternal != nodelist.MaxExternal || o.Log.Level != "info" || o.Log.Format != "text" || o.Identity == "" {
				t.Errorf("defaults %+v", o)
			}
		}},
		{"$POD_NAMESPACE", map[string]string{"POD_NAMESPACE": "monitoring"}, nil, func(t *testing.T, o Options) {
			if o.Namespace != "monitoring" {
				t.Errorf("namespace %q, want monitoring from $POD_NAMESPACE", o.Namespace)
			}
		}},
		{"$NODEPING_NAMESPACE over $POD_NAMESPACE", map[string]string{"POD_NAMESPACE": "monitoring", "NODEPING_NAMESPACE": "ops"}, nil, func(t *testing.T, o Options) {
			if o.Namespace != "ops" {
				t.Errorf("namespace %q, want ops", o.Namespace)
			}
		}},
		{"--namespace over both", map[string]string{"POD_NAMESPACE": "monitoring", "NODEPING_NAMESPACE": "ops"}, []string{"--namespace", "flag"}, func(t *testing.T, o Options) {
			if o.Namespace != "flag" {
				t.Errorf("namespace %q, want flag", o.Namespace)
			}
		}},
		{"every flag", map[string]string{
			"NODEPING_KUBECONFIG": "/kc", "NODEPING_CONFIGMAP": "cm", "NODEPING_KEY": "k.json", "NODEPING_LEASE": "l",
			"NODEPING_IDENTITY": "me", "NODEPING_LEADER_ELECT": "false", "NODEPING_DEBOUNCE": "3s", "NODEPING_DEBOUNCE_MAX": "4s",
			"NODEPING_MIN_WRITE_INTERVAL": "5s", "NODEPING_EXTERNAL_TARGETS_FILE": "/ext.json", "NODEPING_LISTEN_ADDRESS": ":9",
			"NODEPING_MAX_EXTERNAL_TARGETS": "4", "NODEPING_LOG_LEVEL": "debug", "NODEPING_LOG_FORMAT": "json"}, nil,
			func(t *testing.T, o Options) {
				want := Options{Kubeconfig: "/kc", Namespace: "nodeping", ConfigMap: "cm", Key: "k.json", Lease: "l", Identity: "me",
					ListenAddress: ":9", ExternalTargetsFile: "/ext.json", Debounce: 3 * time.Second, DebounceMax: 4 * time.Second,
					MinWriteInterval: 5 * time.Second, LeaderElect: false, MaxExternal: 4}
				want.Log.Level, want.Log.Format = "debug", "json"
				if o != want {
					t.Errorf("options\n%+v\nwant\n%+v", o, want)
				}
			}},
		{"flags win", map[string]string{"NODEPING_DEBOUNCE": "3s", "NODEPING_LOG_FORMAT": "json"}, []string{"--debounce", "1s"}, func(t *testing.T, o Options) {
			if o.Debounce != time.Second || o.Log.Format != "json" {
				t.Errorf("debounce %s, log format %q; want the flag's 1s and the environment's json", o.Debounce, o.Log.Format)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

// TestOptionsConfig: a --debounce-max shorter than --debounce still waits the quiet period, and
// the identity is trimmed for the Lease.
func TestOptionsConfig(t *testing.T) {
	o, err := parseOptions(nil, "--debounce", "5s", "--debounce-max", "1s", "--identity", " pod-1 \n", "--namespace", "ns", "--lease", "l")
	if err != nil {
		t.Fatal(err)
	}
	c, l := o.Config(), o.LeaderConfig()
	if c.Debounce != 5*time.Second || c.MaxWait != 5*time.Second || c.Namespace != "ns" || c.Name != "nodeping-nodes" || c.Key != "nodes.json" {
		t.Errorf("config %+v", c)
	}
	if o.Identity != "pod-1" {
		t.Errorf("identity %q after Parse, want it trimmed once, to pod-1", o.Identity)
	}
	if l.Identity != "pod-1" || l.Namespace != "ns" || l.Name != "l" || l.LeaseDuration != 15*time.Second {
		t.Errorf("leader config %+v", l)
	}
}
