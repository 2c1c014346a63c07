package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updatePlan = flag.Bool("update-plan", false, "rewrite testdata/plan/*.golden")

func TestPlanSubcommand(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), 4<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		golden   string // stdout, testdata/plan/<golden>.golden
		wantErr  string // in stderr
	}{
		{"full mesh", []string{"--nodes-file", "testdata/plan/flant.json"}, nil, 0, "flant-full", "mode full-mesh, 3 nodes, 1 zones"},
		{"full mesh one node", []string{"--nodes-file", "testdata/plan/flant.json", "--node-name", "n2"}, nil, 0, "flant-n2", ""},
		{"subset", []string{"--nodes-file", "testdata/plan/zones.json", "--full-mesh-max", "4", "--subset-peers", "2"}, nil, 0, "zones-subset",
			"mode subset, 12 nodes, 4 zones, K 2, M 3"},
		{"subset from the environment", []string{"--nodes-file", "testdata/plan/zones.json"},
			map[string]string{"NODEPING_FULL_MESH_MAX": "4", "NODEPING_SUBSET_PEERS": "2", "NODE_NAME": "node-01", "NODEPING_NODE_NAME": "node-01"}, 0, "zones-subset", ""},
		{"subset one node", []string{"--nodes-file", "testdata/plan/zones.json", "--full-mesh-max", "4", "--subset-peers", "2", "--node-name", "node-03"}, nil, 0, "zones-node-03", ""},
		{"unlisted node", []string{"--nodes-file", "testdata/plan/zones.json", "--full-mesh-max", "4", "--subset-peers", "2", "--node-name", "stranger"}, nil, 0, "zones-stranger",
			"stranger is not in the nodes list"},
		{"zones past --max-zones", []string{"--nodes-file", "testdata/plan/zones.json", "--full-mesh-max", "4", "--subset-peers", "2", "--max-zones", "3"}, nil, 0, "zones-max-3",
			"mode subset, 12 nodes, 4 zones, K 2, M 3: 46 pairs, at most 5 peers and 5 observers per node; 6 of 6 zone pairs covered, at least 5 pairs each; every node observed from at least 2 zones\nnodeping-agent plan: 2 zones past --max-zones 3 (4 nodes) are planned as one zone\n"},
		{"bad zone cap", []string{"--nodes-file", "testdata/plan/flant.json", "--max-zones", "1"}, nil, 2, "", "--max-zones 1: must be at least 2 (0: 16)"},
		{"help", []string{"--help"}, nil, 0, "", "-subset-peers"},
		{"unknown flag", []string{"--interval", "1s"}, nil, 2, "", "flag provided but not defined: -interval"},
		{"stray argument", []string{"--nodes-file", "testdata/plan/flant.json", "n1"}, nil, 2, "", `unexpected arguments: ["n1"]`},
		{"bad K", []string{"--nodes-file", "testdata/plan/flant.json", "--subset-peers", "1"}, nil, 2, "", "--subset-peers 1: must be at least 2"},
		{"bad maximum", []string{"--nodes-file", "testdata/plan/flant.json", "--full-mesh-max", "-3"}, nil, 2, "", "--full-mesh-max -3: must not be negative"},
		{"bad env", nil, map[string]string{"NODEPING_SUBSET_PEERS": "many"}, 2, "", `environment variable NODEPING_SUBSET_PEERS="many"`},
		{"truncated list", []string{"--nodes-file", "testdata/plan/truncated.json"}, nil, 1, "", "nodes file testdata/plan/truncated.json: malformed: decode nodes list object: line 1, column 11: unexpected end of JSON input"},
		{"missing list", []string{"--nodes-file", "testdata/plan/missing.json"}, nil, 1, "", "no such file or directory"},
		{"list too large", []string{"--nodes-file", big}, nil, 1, "", "nodes list too large: " + big + " is larger than 4194304 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runPlan(tc.args, func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", code, tc.wantCode, stderr.String(), tc.wantErr)
			}
			if tc.golden == "" {
				if code != 0 && stdout.Len() > 0 {
					t.Errorf("failed, yet wrote %q", stdout.String())
				}
				return
			}
			path := filepath.Join("testdata", "plan", tc.golden+".golden")
			if *updatePlan {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != string(want) {
				t.Errorf("stdout:\n%s\nwant (%s):\n%s", stdout.String(), path, want)
			}
		})
	}
}

// TestPlanSubcommandBinary runs the built agent: its plan matches runPlan's, and exit codes
// reach the shell.
func TestPlanSubcommandBinary(t *testing.T) {
	out, err := exec.Command(agentBin, "plan", "--nodes-file", "testdata/plan/zones.json", "--full-mesh-max", "4", "--subset-peers", "2").Output()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	want, err := os.ReadFile("testdata/plan/zones-subset.golden")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("binary's plan differs from testdata/plan/zones-subset.golden:\n%s", out)
	}
	for args, code := range map[string]int{"--nodes-file testdata/plan/truncated.json": 1, "--no-such-flag": 2} {
		err := exec.Command(agentBin, append([]string{"plan"}, strings.Fields(args)...)...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != code {
			t.Errorf("plan %s: %v, want exit %d", args, err, code)
		}
	}
}
