// Package kubetest runs tests against a real Kubernetes control plane: etcd and kube-apiserver on
// loopback, started by scripts/kube-up and stopped by scripts/kube-down, with RBAC enforced.
//
// The binaries take 11-23 minutes to build cold, so Start does not build them: it skips the test
// with a message when scripts/kube-build has not cached them, unless NODEPING_KUBE_REQUIRED=1
// (set by scripts/test after it builds them), where it fails instead.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Server is a running control plane.
type Server struct {
	// Root is the repository's root directory.
	Root string
	// Dir is kube-up's working directory; Kubeconfig is the admin kubeconfig in it.
	Dir, Kubeconfig string
	// Admin is a client with system:masters rights, for setting up what a test needs.
	Admin     kubernetes.Interface
	AdminConf *rest.Config
}

// RepoRoot finds the repository's root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "kube-up")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/kube-up above the working directory")
		}
		dir = parent
	}
}

// Available says whether kube-apiserver and etcd are built; the reason is for a skip message.
func Available(root string) (bool, string) {
	out, err := exec.Command(filepath.Join(root, "scripts", "kube-build"), "--cached").CombinedOutput()
	if err != nil {
		return false, fmt.Sprintf("kube-apiserver and etcd are not built (scripts/kube-build, 11-23 min cold): %s", strings.TrimSpace(string(out)))
	}
	return true, ""
}

// Start brings a control plane up in dir and returns it; Stop takes it down. For a whole test
// binary, call it from TestMain.
func Start(dir string) (*Server, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "kube-up"), dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/kube-up: %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	s := &Server{Root: root, Dir: dir, Kubeconfig: lines[len(lines)-1]}
	if s.AdminConf, err = clientcmd.BuildConfigFromFlags("", s.Kubeconfig); err != nil {
		s.Stop()
		return nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	s.AdminConf.QPS, s.AdminConf.Burst = 1000, 2000
	if s.Admin, err = kubernetes.NewForConfig(s.AdminConf); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop runs scripts/kube-down: no process is left.
func (s *Server) Stop() error {
	out, err := exec.Command(filepath.Join(s.Root, "scripts", "kube-down"), s.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/kube-down: %w: %s", err, out)
	}
	return nil
}

// Kubectl runs kubectl against the server as admin, with stdin, and returns its combined output.
func (s *Server) Kubectl(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(s.Dir, "kubecache"))
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Token issues a token for a ServiceAccount through the TokenRequest API.
func (s *Server) Token(ctx context.Context, namespace, name string) (string, error) {
	exp := int64(3600)
	tr, err := s.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// As returns a client configuration that authenticates with a ServiceAccount's token: what a pod
// running as that ServiceAccount gets, RBAC and all.
func (s *Server) As(ctx context.Context, namespace, name string) (*rest.Config, error) {
	tok, err := s.Token(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(s.AdminConf)
	cfg.BearerToken = tok
	return cfg, nil
}

// WriteKubeconfig writes a kubeconfig for cfg's bearer token to path, for binaries and kubectl.
func (s *Server) WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: sa
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: sa}
current-context: test
`, cfg.Host, cfg.TLSClientConfig.CAFile, cfg.BearerToken)
	return os.WriteFile(path, []byte(kc), 0o600)
}

// Required says whether a missing control plane must fail the tests rather than skip them.
func Required() bool { return os.Getenv("NODEPING_KUBE_REQUIRED") == "1" }

// Main is a TestMain body for a package whose tests all use one server: it starts the server
// (or marks it unavailable), runs the tests and stops it. srv is nil when unavailable; reason
// then says why, for t.Skip.
func Main(m *testing.M, srv **Server, reason *string) int {
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		return 1
	}
	if ok, why := Available(root); !ok {
		if Required() {
			fmt.Fprintln(os.Stderr, "kubetest: NODEPING_KUBE_REQUIRED=1 but", why)
			return 1
		}
		*reason = why
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "nodeping-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	s, err := Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "kubetest: control plane up in %s\n", time.Since(start).Round(100*time.Millisecond))
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		code = 1
	}
	return code
}
