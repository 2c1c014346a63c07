package kubetest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeping/nodeping/internal/kubetest"
	"github.com/nodeping/nodeping/internal/testutil/poll"
	"github.com/nodeping/nodeping/pkg/controller"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

var (
	srv        *kubetest.Server
	skipReason string
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &srv, &skipReason)) }

// server returns the shared control plane, with the namespace and the repository's RBAC applied,
// and no Node left from an earlier test.
func server(t *testing.T) *kubetest.Server {
	t.Helper()
	if srv == nil {
		t.Skip(skipReason)
	}
	if _, err := srv.Kubectl(nil, "create", "namespace", "nodeping"); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	if _, err := srv.Kubectl(nil, "apply", "-k", filepath.Join(srv.Root, "rbac")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		srv.Admin.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		srv.Admin.CoreV1().ConfigMaps("nodeping").Delete(ctx, "nodeping-nodes", metav1.DeleteOptions{})
		srv.Admin.CoordinationV1().Leases("nodeping").Delete(ctx, "nodeping-controller", metav1.DeleteOptions{})
	})
	return srv
}

func testNode(i int) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%02d", i), Labels: map[string]string{
		"kubernetes.io/hostname": fmt.Sprintf("node-%02d", i), "topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+i%3)}}}
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: n.Name}, {Type: v1.NodeInternalIP, Address: fmt.Sprintf("10.1.0.%d", i)}}
	if i%2 == 0 { // every other node is dual-stack
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: fmt.Sprintf("fd00::%d", i)})
	}
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	return n
}

// runController runs the controller in-process with the controller ServiceAccount's token.
func runController(t *testing.T, s *kubetest.Server, identity string) (context.CancelFunc, <-chan struct{}, *controller.Metrics) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := s.As(ctx, "nodeping", "nodeping-controller")
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("replica", identity)
	}
	m := controller.NewMetrics(prometheus.NewRegistry())
	c := controller.New(controller.Config{Namespace: "nodeping", Name: "nodeping-nodes",
		Debounce: 200 * time.Millisecond, MaxWait: time.Second, MaxBackoff: time.Second}, client, log, m)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := controller.RunAsLeader(ctx, client, controller.LeaderConfig{Namespace: "nodeping", Name: "nodeping-controller",
			Identity: identity, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond},
			log, m, func(ctx context.Context) {
				if err := c.Run(ctx); err != nil {
					t.Errorf("controller %s: %v", identity, err)
				}
			})
		if err != nil {
			t.Errorf("leader election %s: %v", identity, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return cancel, done, m
}

func counter(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// listed reads the ConfigMap as admin: its resourceVersion and its nodes, one line each.
func listed(t *testing.T, s *kubetest.Server) (string, []string) {
	t.Helper()
	cm, err := s.Admin.CoreV1().ConfigMaps("nodeping").Get(context.Background(), "nodeping-nodes", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := nodelist.Decode([]byte(cm.Data["nodes.json"]))
	if err != nil {
		return cm.ResourceVersion, []string{"undecodable: " + err.Error()}
	}
	var out []string
	for _, n := range l.Nodes {
		out = append(out, fmt.Sprintf("%s zone=%s v4=%v v6=%v ready=%v schedulable=%v", n.Name, n.Zone, n.IPv4, n.IPv6, n.Ready, n.Schedulable))
	}
	return cm.ResourceVersion, out
}

func want(n int, tweak func(i int, line string) string) []string {
	var out []string
	for i := 1; i <= n; i++ {
		v6 := "invalid IP"
		if i%2 == 0 {
			v6 = fmt.Sprintf("fd00::%d", i)
		}
		line := fmt.Sprintf("node-%02d zone=zone-%c v4=10.1.0.%d v6=%s ready=true schedulable=true", i, 'a'+i%3, i, v6)
		if tweak != nil {
			line = tweak(i, line)
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

func await(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	return poll.Until(t, what, limit, 50*time.Millisecond, cond)
}

func sameList(t *testing.T, s *kubetest.Server, w []string) func() bool {
	return func() bool {
		_, got := listed(t, s)
		return strings.Join(got, "\n") == strings.Join(w, "\n")
	}
}

// TestControllerWithRBAC: the controller, with its ServiceAccount's token and the repository's
// RBAC, against a real API server: 50 Nodes, a heartbeat, a cordon, a NotReady node, a deleted
// node, a hand edit and a deleted ConfigMap, each as docs/install.md says.
func TestControllerWithRBAC(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	nodes := s.Admin.CoreV1().Nodes()
	for i := 1; i <= 50; i++ {
		if _, err := nodes.Create(ctx, testNode(i), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, m := runController(t, s, "replica-a")
	took := await(t, "ConfigMap lists the 50 nodes", 30*time.Second, sameList(t, s, want(50, nil)))
	t.Logf("50 nodes listed %s after the controller started", took.Round(time.Millisecond))

	// Heartbeat: the kubelet's status patch. No write: the resourceVersion stays.
	rv, _ := listed(t, s)
	hb := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":%q}]}}`,
		time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	for i := 1; i <= 50; i++ {
		if _, err := nodes.PatchStatus(ctx, fmt.Sprintf("node-%02d", i), []byte(hb)); err != nil {
			t.Fatal(err)
		}
	}
	irrelevant := m.Events.WithLabelValues("false")
	await(t, "the controller saw the 50 heartbeats", 20*time.Second, func() bool { return counter(irrelevant) >= 50 })
	if rv2, _ := listed(t, s); rv2 != rv {
		t.Errorf("heartbeats changed the ConfigMap: resourceVersion %s -> %s", rv, rv2)
	}

	// Cordon node-01: listed as not schedulable.
	if _, err := nodes.Patch(ctx, "node-01", types.StrategicMergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	took = await(t, "cordon shown", 20*time.Second, sameList(t, s, want(50, func(i int, l string) string {
		if i == 1 {
			return strings.Replace(l, "schedulable=true", "schedulable=false", 1)
		}
		return l
	})))
	t.Logf("cordon in the ConfigMap after %s", took.Round(time.Millisecond))

	// node-02 NotReady: listed as not ready (the alerts stay quiet for it).
	nr := `{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}]}}`
	if _, err := nodes.PatchStatus(ctx, "node-02", []byte(nr)); err != nil {
		t.Fatal(err)
	}
	// node-03 deleted: gone from the list.
	if err := nodes.Delete(ctx, "node-03", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	after := want(50, func(i int, l string) string {
		switch i {
		case 1:
			return strings.Replace(l, "schedulable=true", "schedulable=false", 1)
		case 2:
			return strings.Replace(l, "ready=true", "ready=false", 1)
		case 3:
			return ""
		}
		return l
	})
	took = await(t, "NotReady and deletion shown", 20*time.Second, sameList(t, s, after))
	t.Logf("NotReady and deletion in the ConfigMap after %s", took.Round(time.Millisecond))

	// A hand edit is put back.
	cm, err := s.Admin.CoreV1().ConfigMaps("nodeping").Get(ctx, "nodeping-nodes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["nodes.json"] = `[{"name":"intruder","ipAddress":"192.0.2.1"}]`
	if _, err := s.Admin.CoreV1().ConfigMaps("nodeping").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = await(t, "hand edit repaired", 20*time.Second, sameList(t, s, after))
	t.Logf("hand edit repaired after %s", took.Round(time.Millisecond))

	// Deleted by hand: created again.
	if err := s.Admin.CoreV1().ConfigMaps("nodeping").Delete(ctx, "nodeping-nodes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, "deleted ConfigMap recreated", 20*time.Second, sameList(t, s, after))
}

// TestLeaseHandover: two replicas, each with the controller's own token; the second takes the
// Lease when the first stops, and its writes keep the list in step.
func TestLeaseHandover(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := s.Admin.CoreV1().Nodes().Create(ctx, testNode(i), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	holder := func() string {
		l, err := s.Admin.CoordinationV1().Leases("nodeping").Get(ctx, "nodeping-controller", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	stopA, doneA, _ := runController(t, s, "replica-a")
	await(t, "replica-a holds the Lease", 20*time.Second, func() bool { return holder() == "replica-a" })
	await(t, "replica-a lists 3 nodes", 20*time.Second, sameList(t, s, want(3, nil)))
	runController(t, s, "replica-b")
	time.Sleep(2 * time.Second)
	if h := holder(); h != "replica-a" {
		t.Fatalf("Lease held by %q while replica-a renews", h)
	}
	stopA()
	<-doneA
	took := await(t, "replica-b takes the Lease", 20*time.Second, func() bool { return holder() == "replica-b" })
	t.Logf("replica-b took the Lease %s after replica-a stopped", took.Round(time.Millisecond))
	if _, err := s.Admin.CoreV1().Nodes().Create(ctx, testNode(4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, "replica-b lists the 4th node", 20*time.Second, sameList(t, s, want(4, nil)))
}

// canI is kubectl auth can-i's answer: its last line, after any warning (for a cluster-scoped
// resource asked with a namespace, kubectl warns first).
func canI(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// kubeconfigAs writes a kubeconfig with the token of the ServiceAccount sa in namespace
// nodeping, and returns its path.
func kubeconfigAs(ctx context.Context, t *testing.T, s *kubetest.Server, sa string) string {
	t.Helper()
	cfg, err := s.As(ctx, "nodeping", sa)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), strings.TrimPrefix(sa, "nodeping-")+".kubeconfig")
	if err := s.WriteKubeconfig(cfg, kc); err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestAgentCanDoNothing: the agent's ServiceAccount has no permission beyond what every
// authenticated user has (discovery and asking about itself).
func TestAgentCanDoNothing(t *testing.T) {
	s := server(t)
	kc := kubeconfigAs(context.Background(), t, s, "nodeping-agent")
	for _, ns := range []string{"nodeping", "default", "kube-system"} {
		out, err := s.Kubectl(nil, "--kubeconfig", kc, "auth", "can-i", "--list", "-n", ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
			f := strings.Fields(line)
			// Resources every authenticated user may create about itself; everything else
			// listed must be a non-resource URL (discovery, /healthz, /version).
			switch {
			case len(f) > 0 && strings.HasPrefix(f[0], "self") && strings.Contains(f[0], ".k8s.io"):
			// Public trust anchors, readable by every authenticated user since Kubernetes 1.33
			// (the built-in system:basic-user role); no secret and nothing of nodeping's.
			case len(f) > 0 && f[0] == "clustertrustbundles.certificates.k8s.io":
			case len(f) > 0 && strings.HasPrefix(f[0], "[/"):
			default:
				t.Errorf("namespace %s: the agent may: %s", ns, line)
			}
		}
	}
	for _, q := range [][]string{{"get", "nodes"}, {"list", "configmaps", "-n", "nodeping"}, {"get", "configmaps/nodeping-nodes", "-n", "nodeping"}, {"create", "pods", "-n", "nodeping"}} {
		out, _ := s.Kubectl(nil, append([]string{"--kubeconfig", kc, "auth", "can-i"}, q...)...)
		if canI(out) != "no" {
			t.Errorf("agent can-i %v: %q, want no", q, out)
		}
	}
}

// TestControllerRBACIsNarrow: the controller's token may read Nodes and its own ConfigMap and
// Lease, and nothing else of note.
func TestControllerRBACIsNarrow(t *testing.T) {
	s := server(t)
	kc := kubeconfigAs(context.Background(), t, s, "nodeping-controller")
	for q, w := range map[string]string{
		"watch nodes": "yes", "update nodes": "no", "get secrets -n nodeping": "no",
		"update configmaps/nodeping-nodes -n nodeping": "yes", "update configmaps/other -n nodeping": "no",
		"update configmaps/nodeping-nodes -n default": "no", "update leases.coordination.k8s.io/nodeping-controller -n nodeping": "yes",
		"delete configmaps/nodeping-nodes -n nodeping": "no",
	} {
		out, _ := s.Kubectl(nil, append([]string{"--kubeconfig", kc, "auth", "can-i"}, strings.Fields(q)...)...)
		if got := canI(out); got != w {
			t.Errorf("controller can-i %s: %q, want %s", q, got, w)
		}
	}
}

// TestOverlaysValidateOnServer: every overlay, rendered by kustomize, passes a server-side dry
// run with the prometheus-operator CRDs installed.
func TestOverlaysValidateOnServer(t *testing.T) {
	s := server(t)
	dirs, err := filepath.Glob(filepath.Join(s.Root, "manifests", "overlays", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	dirs = append(dirs, filepath.Join(s.Root, "manifests", "base"))
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			yaml, err := s.Kubectl(nil, "kustomize", d)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Kubectl(yaml, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", out)
		})
	}
}
