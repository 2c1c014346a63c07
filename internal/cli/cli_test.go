package cli

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"icmp-count":            "NODEPING_ICMP_COUNT",
		"nodes-file":            "NODEPING_NODES_FILE",
		"external-targets-file": "NODEPING_EXTERNAL_TARGETS_FILE",
		"once":                  "NODEPING_ONCE",
	} {
		if got := EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// TestBindEnv: the environment sets flags, the command line wins, skipped flags stay as they
// are, and a refused value names its variable.
func TestBindEnv(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		skip    []string
		want    string // count, interval, node
		wantErr string
	}{
		{"defaults", nil, nil, nil, "1 1s ", ""},
		{"environment", map[string]string{"NODEPING_COUNT": "3", "NODEPING_INTERVAL": "5s", "NODEPING_NODE_NAME": "a"}, nil, nil, "3 5s a", ""},
		{"flags win", map[string]string{"NODEPING_COUNT": "3", "NODEPING_INTERVAL": "5s"}, []string{"--count", "4"}, nil, "4 5s ", ""},
		{"empty is unset", map[string]string{"NODEPING_COUNT": ""}, nil, nil, "1 1s ", ""},
		{"skipped", map[string]string{"NODEPING_NODE_NAME": "a", "NODEPING_COUNT": "2"}, nil, []string{"node-name"}, "2 1s ", ""},
		{"other variables", map[string]string{"COUNT": "7", "NODEPING_OTHER": "x"}, nil, nil, "1 1s ", ""},
		{"refused", map[string]string{"NODEPING_COUNT": "many"}, nil, nil, "", `environment variable NODEPING_COUNT="many": parse error`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			count := fs.Int("count", 1, "")
			interval := fs.Duration("interval", time.Second, "")
			node := fs.String("node-name", "", "")
			err := BindEnv(fs, func(k string) string { return tc.env[k] }, tc.skip...)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("BindEnv: %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join([]string{fs.Lookup("count").Value.String(), interval.String(), *node}, " "); got != tc.want {
				t.Errorf("count interval node = %q, want %q (count %d)", got, tc.want, *count)
			}
		})
	}
}

// TestNewLogger: the format sets the handler, the level filters, and bad values are refused
// with the flag's name.
func TestNewLogger(t *testing.T) {
	cases := []struct {
		name    string
		o       LogOptions
		want    string // what logging "hello" at debug then info writes
		wantErr string
	}{
		{"text info", LogOptions{"info", "text"}, `level=INFO msg=hello k=v`, ""},
		{"text debug", LogOptions{"debug", "text"}, `level=DEBUG msg=hello k=v`, ""},
		{"json", LogOptions{"warn", "json"}, ``, ""},
		{"json info", LogOptions{"INFO", "json"}, `"level":"INFO","msg":"hello","k":"v"}`, ""},
		{"bad level", LogOptions{"loud", "text"}, "", `--log-level "loud": slog: level string "loud": unknown name`},
		{"bad format", LogOptions{"info", "logfmt"}, "", `--log-format "logfmt": must be text or json`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			log, err := tc.o.NewLogger(&b)
			if verr := tc.o.Validate(); (verr == nil) != (err == nil) {
				t.Errorf("Validate %v, NewLogger %v: want the same verdict", verr, err)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("NewLogger: %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("hello", "k", "v")
			log.Info("hello", "k", "v")
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if tc.want == "" {
				if b.Len() > 0 {
					t.Errorf("wrote %q, want nothing", b.String())
				}
				return
			}
			if !strings.HasSuffix(lines[0], tc.want) {
				t.Errorf("first line %q, want it to end in %q", lines[0], tc.want)
			}
		})
	}
}

func TestLogFlags(t *testing.T) {
	var o LogOptions
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.AddFlags(fs)
	if o != (LogOptions{"info", "text"}) {
		t.Errorf("defaults %+v, want info and text", o)
	}
	if err := fs.Parse([]string{"--log-level", "debug", "--log-format", "json"}); err != nil || o != (LogOptions{"debug", "json"}) {
		t.Errorf("parsed %+v (%v), want debug and json", o, err)
	}
}
