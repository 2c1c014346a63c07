package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nodeping/nodeping/internal/testutil/dnstest"
	"github.com/nodeping/nodeping/internal/testutil/netnstest"
	"github.com/nodeping/nodeping/internal/testutil/nodeexporter"
)

// agentBin is the agent built once for the tests that run it as a separate process.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodeping-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // other users run it in the no-CAP_NET_RAW tests
	agentBin = filepath.Join(dir, "nodeping-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func noEnv(string) string { return "" }

// TestCommandLine checks what the command prints where, and its exit codes. The rules of the
// options themselves are tested in pkg/agent (options_test.go), each against its exact message.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name                string
		args                []string
		env                 map[string]string
		wantCode            int
		wantStdout, wantErr string
	}{
		{"help", []string{"--help"}, nil, 0, "NODEPING_<FLAG>", ""},
		{"unknown flag", []string{"--no-such-flag"}, nil, 2, "", "nodeping-agent: flag provided but not defined: -no-such-flag\nRun nodeping-agent --help for the flags.\n"},
		{"stray argument", []string{"--node-name", "a", "extra"}, nil, 2, "", `unexpected arguments: ["extra"]`},
		{"no node name", []string{"--textfile-dir", dir}, nil, 2, "", "--node-name (or $NODE_NAME, or $MY_NODE_NAME) is required"},
		{"bad duration", []string{"--interval", "soon"}, nil, 2, "", `invalid value "soon" for flag -interval`},
		{"bad env", nil, map[string]string{"NODEPING_ICMP_COUNT": "many"}, 2, "", `environment variable NODEPING_ICMP_COUNT="many"`},
		{"burst longer than interval", []string{"--node-name", "a", "--interval", "1s", "--icmp-count", "10", "--icmp-interval", "200ms"}, nil, 2, "", "icmp does not fit in --interval 1s"},
		{"bad log level", []string{"--node-name", "a", "--log-level", "loud", "--textfile-dir", dir}, nil, 2, "", `--log-level "loud"`},
		{"missing textfile dir", []string{"--node-name", "a", "--textfile-dir", filepath.Join(dir, "missing")}, nil, 1, "", "no such file or directory"},
		{"textfile dir is a file", []string{"--node-name", "a", "--textfile-dir", "main.go"}, nil, 1, "", "textfile directory main.go: not a directory"},
		{"version", []string{"--version"}, nil, 0, "nodeping-agent dev", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(context.Background(), tc.args, getenv, &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s\nwant stdout to contain %q and stderr %q", code, tc.wantCode, stdout.String(), stderr.String(), tc.wantStdout, tc.wantErr)
			}
			if tc.wantStdout == "" && stdout.Len() > 0 {
				t.Errorf("stdout is not empty: %q", stdout.String())
			}
			if tc.wantErr != "" && strings.Count(stderr.String(), "flag provided but not defined") > 1 {
				t.Errorf("the error is printed more than once:\n%s", stderr.String())
			}
		})
	}
}

// TestHelpDocumentsEveryFlag: every flag in --help, with its default, on stdout.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stdout bytes.Buffer
	run(context.Background(), []string{"--help"}, noEnv, &stdout, io.Discard)
	for _, want := range []string{"-node-name", "-nodes-file", "-textfile-dir", "-textfile-name", "-once", "-icmp-count", "-icmp-interval",
		"-interval", "(default 15s)", "(default 10)", "(default 1s)", "-icmp-timeout", "-grace", "-icmp-engine", `(default "nodeping.prom")`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestOnceSummary runs one cycle as a user would and reads the one line it prints.
func TestOnceSummary(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--once", "--node-name", "self", "--nodes-file", flantNodes(t, dir, 2), "--textfile-dir", dir,
		"--textfile-name", "node-ping_self.prom", "--icmp-count", "2", "--icmp-interval", "10ms"}, noEnv, &stdout, &stderr)
	want := regexp.MustCompile(`^nodeping-agent: 2 targets in [0-9.]+m?s, icmp 4/4 answered; wrote ` + regexp.QuoteMeta(filepath.Join(dir, "node-ping_self.prom")) + "\n$")
	if code != 0 || !want.MatchString(stdout.String()) {
		t.Errorf("exit %d; stdout %q, want it to match %s; stderr:\n%s", code, stdout.String(), want, stderr.String())
	}
}

// requireRoot skips the test unless it may open raw ICMP sockets.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for raw ICMP sockets (CI runs as root)")
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func flantNodes(t *testing.T, dir string, n int) string {
	var b strings.Builder
	b.WriteString(`[{"name":"self","ipAddress":"127.0.0.1"}`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `,{"name":"node-%d","ipAddress":"127.0.1.%d"}`, i, i+1)
	}
	b.WriteString("]")
	p := filepath.Join(dir, "nodes.json")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNodeExporterServesTheFile runs the agent and a real prometheus-node-exporter on its
// textfile directory: node-exporter serves every pair with no scrape error, and SIGTERM makes the
// agent remove its file.
func TestNodeExporterServesTheFile(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tf := filepath.Join(dir, "textfile")
	os.Mkdir(tf, 0o755)
	nodes := flantNodes(t, dir, 5)
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer agentLog.Close()
	readLog := func() string { b, _ := os.ReadFile(agentLog.Name()); return string(b) }
	tcpPort := freePort(t)
	agent := exec.Command(agentBin, "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf,
		"--interval", "300ms", "--icmp-count", "2", "--icmp-interval", "20ms", "--tcp-port", fmt.Sprint(tcpPort), "--udp-port", fmt.Sprint(tcpPort),
		"--dns-names", "ok.test.", "--dns-timeout", "200ms", "--dns-resolvers", dnstest.Start(t, func(string) (int, string) { return dns.RcodeSuccess, "198.18.0.1" }))
	agent.Stderr = agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	body, err := nodeexporter.Scrape(nodeexporter.Start(t, tf), 15*time.Second, func(body string) bool {
		return answered(body, "icmp") == 5 && answered(body, "tcp") == 5 && answered(body, "udp") == 5
	})
	if err != nil {
		t.Fatalf("node-exporter did not serve 5 answered pairs on icmp, tcp and udp: %v; agent log:\n%s\nlast body:\n%s", err, readLog(), body)
	}
	if !strings.Contains(body, "\nnode_textfile_scrape_error 0\n") {
		t.Errorf("node_textfile_scrape_error is not 0:\n%s", body)
	}
	for _, want := range []string{`nodeping_responder_answered_total{protocol="udp"}`, `name="ok.test.",rcode="NOERROR"`, "nodeping_dns_request_duration_seconds_bucket{", "nodeping_build_info{", "nodeping_cycle_duration_seconds ", "nodeping_last_write_timestamp_seconds ", "nodeping_rtt_seconds_bucket{"} {
		if !strings.Contains(body, want) {
			t.Errorf("node-exporter does not serve %s", want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		check := exec.Command(promtool, "check", "metrics")
		check.Stdin, _ = os.Open(filepath.Join(tf, "nodeping.prom"))
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on the agent's file: %v\n%s", err, out)
		}
	}
	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		t.Errorf("agent exit after SIGTERM: %v\n%s", err, readLog())
	}
	if _, err := os.Stat(filepath.Join(tf, "nodeping.prom")); !os.IsNotExist(err) {
		t.Errorf("agent left its file after SIGTERM: %v", err)
	}
}

// answered counts the pairs of a protocol with a non-zero received counter in an exposition.
func answered(body, protocol string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "nodeping_packets_received_total{") && strings.Contains(line, `protocol="`+protocol+`"`) && !strings.HasSuffix(line, " 0") {
			n++
		}
	}
	return n
}

// TestWithoutCapNetRaw runs the agent as nobody, without CAP_NET_RAW, in namespaces where
// unprivileged ping sockets are forbidden (a clear error) and allowed (it falls back to them and
// says so in nodeping_icmp_socket_info).
func TestWithoutCapNetRaw(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: setpriv not installed (util-linux)")
	}
	for _, tc := range []struct {
		name, pingGroups string
		wantCode         int
		wantLog          string
	}{
		{"ping sockets forbidden", "1 0", 1, "needs CAP_NET_RAW"},
		{"ping sockets allowed", "0 2147483647", 0, ""},
		{"textfile dir not writable", "0 2147483647", 1, "is not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t)
			ns.Exec("sysctl", "-q", "-w", "net.ipv4.ping_group_range="+tc.pingGroups)
			// t.TempDir's parent is private to root; nobody needs a path it can walk.
			dir, err := os.MkdirTemp("", "nodeping-nocap-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o755)
			nodes := flantNodes(t, dir, 3)
			tf := filepath.Join(dir, "tf")
			os.Mkdir(tf, 0o755)
			if tc.name != "textfile dir not writable" {
				os.Chmod(tf, 0o777)
			}
			cmd := ns.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
				agentBin, "--once", "--node-name", "self", "--nodes-file", nodes, "--textfile-dir", tf, "--icmp-count", "2", "--icmp-interval", "10ms")
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantLog) {
				t.Fatalf("exit %d, want %d; output:\n%s\nwant it to contain %q", code, tc.wantCode, out, tc.wantLog)
			}
			if tc.wantCode != 0 {
				return
			}
			data, err := os.ReadFile(filepath.Join(tf, "nodeping.prom"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), `nodeping_icmp_socket_info{ip_family="ipv4",mode="dgram"} 1`) {
				t.Errorf("file does not report the dgram fallback:\n%s", data)
			}
			if n := strings.Count(string(data), `nodeping_packets_received_total{`); n != 3 || strings.Contains(string(data), "} 0\nnodeping_packets_sent") {
				t.Errorf("want 3 answered pairs over ping sockets:\n%s", data)
			}
		})
	}
}
