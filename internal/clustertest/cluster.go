//go:build linux

// Package clustertest runs the documented install paths on a real cluster: scripts/cluster-up's
// kubelets, containerd and CNI in network and mount namespaces, with the images scripts/image
// builds. The commands it runs are the docs' own: Doc reads the shell blocks of docs/install.md
// that a `<!-- cluster-test: NAME -->` line marks, so the docs and the tests cannot drift apart.
//
// The Kubernetes binaries take minutes to build cold, so Start skips when scripts/kube-build has
// not cached them or the machine cannot run a cluster (not root, no containerd), unless
// NODEPING_CLUSTER_REQUIRED=1, where it fails instead.
package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodeping/nodeping/internal/kubetest"
)

// Node is one node of the cluster, as cluster-up's DIR/cluster.env names it.
type Node struct {
	Name, Zone, IPv4, NetNS string
	// Root is the directory that the node sees as / for /var/lib, /var/log and /run.
	Root string
}

// HostPath is where the node's hostPath p lives on this machine.
func (n Node) HostPath(p string) string {
	for _, pre := range []string{"/var/lib/", "/var/log/", "/run/"} {
		if rest, ok := strings.CutPrefix(p, pre); ok {
			return filepath.Join(n.Root, strings.ReplaceAll(strings.Trim(pre, "/"), "/", "-"), rest)
		}
	}
	if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
		return filepath.Join(n.Root, "run", rest)
	}
	return p
}

// Cluster is a running cluster.
type Cluster struct {
	Root, Dir, Kubeconfig, Router string
	Nodes                         []Node
	// Up is how long cluster-up took, to every node Ready.
	Up time.Duration
}

// Start runs scripts/cluster-up in a temporary directory and registers cluster-down.
func Start(t *testing.T) *Cluster {
	t.Helper()
	required := os.Getenv("NODEPING_CLUSTER_REQUIRED") == "1"
	skip := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf("NODEPING_CLUSTER_REQUIRED=1, but "+format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("the cluster needs root (network and mount namespaces, cgroups)")
	}
	for _, b := range []string{"containerd", "runc", "ctr", "nsenter", "unshare"} {
		if _, err := exec.LookPath(b); err != nil {
			skip("%s is not installed (scripts/deps installs it)", b)
		}
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(root, "scripts", "kube-build"), "--cached").CombinedOutput(); err != nil {
		skip("the Kubernetes binaries are not built (scripts/kube-build): %s", strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	c := &Cluster{Root: root, Dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range []string{"node-1-kubelet.log", "node-1-containerd.log", "clusterfwd.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, "logs", l)); err == nil {
					t.Logf("--- last of %s:\n%s", l, tail(b, 3000))
				}
			}
		}
		out, err := exec.Command(filepath.Join(root, "scripts", "cluster-down"), dir).CombinedOutput()
		if err != nil {
			t.Errorf("scripts/cluster-down: %v: %s", err, out)
		}
	})
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "cluster-up"), dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/cluster-up: %v\n%s", err, tail(stderr.Bytes(), 6000))
	}
	c.Up = time.Since(start)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	c.Kubeconfig = lines[len(lines)-1]
	if err := c.readEnv(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster-up: %d nodes Ready in %s", len(c.Nodes), c.Up.Round(time.Second))
	return c
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *Cluster) readEnv() error {
	f, err := os.Open(filepath.Join(c.Dir, "cluster.env"))
	if err != nil {
		return err
	}
	defer f.Close()
	node := regexp.MustCompile(`^NODEPING_CLUSTER_NODE_\d+="(\S+) (\S+) (\S+) (\S+)"$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := node.FindStringSubmatch(line); m != nil {
			c.Nodes = append(c.Nodes, Node{Name: m[1], Zone: m[2], IPv4: m[3], NetNS: m[4], Root: filepath.Join(c.Dir, "nodes", m[1])})
		} else if v, ok := strings.CutPrefix(line, "NODEPING_CLUSTER_ROUTER="); ok {
			c.Router = v
		}
	}
	if len(c.Nodes) == 0 || c.Router == "" {
		return fmt.Errorf("%s/cluster.env names no nodes or router", c.Dir)
	}
	return sc.Err()
}

// Env is the environment the docs' commands run in: the cluster's kubeconfig, and helm on PATH.
func (c *Cluster) Env() []string {
	return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "KUBECACHEDIR="+filepath.Join(c.Dir, "control", "kubecache"))
}

// Sh runs a shell script in the repository's root, in the cluster's environment.
func (c *Cluster) Sh(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = c.Root
	cmd.Env = c.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	return string(out), nil
}

// Kubectl runs kubectl against the cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = c.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Doc returns the shell block of docs/install.md that `<!-- cluster-test: name -->` marks.
func Doc(root, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "install.md"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?s)<!-- cluster-test: ` + regexp.QuoteMeta(name) + ` -->\n( *)` + "```sh\n(.*?)\n *```\n").FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("docs/install.md has no shell block marked %q", name)
	}
	indent := string(m[1])
	var lines []string
	for _, l := range strings.Split(string(m[2]), "\n") {
		lines = append(lines, strings.TrimPrefix(l, indent))
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// Await calls f every 500 ms until it returns nil or within has passed, and returns how long
// that took.
func Await(within time.Duration, f func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return time.Since(start), fmt.Errorf("not within %s: %w", within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
