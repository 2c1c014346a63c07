package manifesttest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubeUp starts a real API server (etcd and kube-apiserver on loopback, RBAC on, the
// prometheus-operator CRDs installed) with scripts/kube-up, stops it at the end of the test,
// and returns an admin kubeconfig and the environment kubectl needs. It skips when the tree has
// no scripts/kube-up, or when its binaries are not built yet (the first build takes 11-23
// minutes: run scripts/kube-build once), unless NODEPING_KUBE_REQUIRED=1 (as in CI).
func kubeUp(t *testing.T) (kubeconfig string, env []string) {
	t.Helper()
	up := filepath.Join(root, "scripts/kube-up")
	if _, err := os.Stat(up); err != nil {
		t.Skip("skipping: no scripts/kube-up in this tree, so no API server to validate against")
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("skipping: kubectl is not installed")
	}
	err := exec.Command(filepath.Join(root, "scripts/kube-build"), "--cached").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		if os.Getenv("NODEPING_KUBE_REQUIRED") == "1" {
			t.Fatal("NODEPING_KUBE_REQUIRED=1, but kube-apiserver and etcd are not built (scripts/kube-build)")
		}
		t.Skip("skipping: kube-apiserver and etcd are not built yet; run scripts/kube-build once (11-23 min), then this test")
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		if out, err := exec.Command(filepath.Join(root, "scripts/kube-down"), dir).CombinedOutput(); err != nil {
			t.Errorf("scripts/kube-down: %v\n%s", err, out)
		}
	})
	var stderr bytes.Buffer
	cmd := exec.Command(up, dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/kube-up: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], append(os.Environ(), "KUBECACHEDIR="+filepath.Join(dir, "kubecache"))
}

func kubectl(t *testing.T, env []string, stdin []byte, args ...string) {
	t.Helper()
	cmd := exec.Command("kubectl", args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestServerSideDryRun sends every rendering, each overlay and the chart with its defaults,
// with each overlay's values and with everything switched on, to a real API server as a
// server-side dry run with strict field validation: schemas, CRDs, defaulting and admission,
// without storing anything. The namespace exists first, as it would on a real install.
func TestServerSideDryRun(t *testing.T) {
	kubeconfig, env := kubeUp(t)
	renderings := map[string][]byte{}
	for _, ov := range overlayValues {
		out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, ov.overlay)).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", ov.overlay, err)
		}
		renderings["kustomize "+ov.overlay] = out
	}
	helmRender := func(args ...string) []byte {
		return runHelm(t, append([]string{"template", "nodeping", filepath.Join(root, chart), "--namespace", "nodeping"}, args...)...)
	}
	renderings["helm defaults"] = helmRender()
	for _, ov := range overlayValues {
		renderings["helm "+ov.values] = helmRender("--values", filepath.Join(root, chart, ov.values))
	}
	renderings["helm everything on"] = helmRender("--set", "namespace.create=true", "--set", "prometheusRule.enabled=true",
		"--set", "dashboard.enabled=true", "--set", "controller.serviceMonitor.enabled=true", "--set", "nodeExporter.enabled=true",
		"--set", "controller.externalTargets.targets[0].name=gw", "--set", "controller.externalTargets.targets[0].host=gw.example.org",
		"--set", "agent.compat=flant", "--set", "agent.plan.fullMeshMax=100", "--set", "agent.plan.subsetPeers=10")

	kubectl(t, env, nil, "--kubeconfig", kubeconfig, "create", "namespace", "nodeping")
	for name, out := range renderings {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			if len(parse(t, name, out)) == 0 {
				t.Fatal("nothing rendered")
			}
			kubectl(t, env, out, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
		})
	}
}
