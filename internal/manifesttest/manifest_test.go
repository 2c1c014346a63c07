// Package manifesttest builds every kustomize overlay with kubectl and the Helm chart with helm
// (built from the module proxy by scripts/tool-helm), and checks the rendered objects (parsed,
// not grepped): the agent's and the controller's security properties, RBAC, images and ports,
// the Flant drop-in; that the chart and the overlays render the same objects for the same
// choices; and, with scripts/kube-up, that a real API server accepts every rendering. It keeps
// the generated overlay and chart files in step with their sources, and runs Deckhouse's own
// NodePingPacketLoss rule over the agent's --compat=flant output in promtool.
package manifesttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/nodeping/nodeping/internal/testutil/golden"
)

var update = flag.Bool("update", false, "regenerate the overlay files generated from rules and dashboards")

const root = "../.."

// prometheusRule wraps the shipped rule file in a PrometheusRule for the Prometheus operator.
func prometheusRule(t *testing.T) string {
	rules, err := os.ReadFile(filepath.Join(root, "manifests/rules/nodeping.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Generated from manifests/rules/nodeping.rules.yml by go test ./internal/manifesttest -update; do not edit.\n")
	b.WriteString("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: nodeping\n  namespace: nodeping\n")
	b.WriteString("  labels:\n    app.kubernetes.io/name: nodeping\n    release: kube-prometheus-stack  # the stack's default ruleSelector\nspec:\n")
	for _, line := range strings.SplitAfter(string(rules), "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(line)
			continue
		}
		b.WriteString("  " + line)
	}
	return b.String()
}

func TestGeneratedFilesInStep(t *testing.T) {
	overlay := filepath.Join(root, "manifests/overlays/kube-prometheus-stack")
	golden.Check(t, filepath.Join(overlay, "prometheusrule.yaml"), prometheusRule(t), *update)
	dash, err := os.ReadFile(filepath.Join(root, "dashboards/nodeping.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join(overlay, "nodeping-dashboard.json"), string(dash), *update)
	// The chart's copies: Helm reads only files inside the chart.
	rules, err := os.ReadFile(filepath.Join(root, "manifests/rules/nodeping.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join(root, chart, "files/nodeping.rules.yml"), string(rules), *update)
	golden.Check(t, filepath.Join(root, chart, "files/nodeping-dashboard.json"), string(dash), *update)
}

// object is one rendered manifest: its kind and name, and its JSON for typed decoding.
type object struct {
	Kind, Name, Namespace string
	raw                   json.RawMessage
}

func build(t *testing.T, dir string) []object {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("skipping: kubectl (with its built-in kustomize) is not installed")
	}
	path := dir // relative to the repository, or absolute (a test's own overlay)
	if !filepath.IsAbs(dir) {
		path = filepath.Join(root, dir)
	}
	out, err := exec.Command(kubectl, "kustomize", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return parse(t, dir, out)
}

// parse splits a multi-document YAML stream into objects; empty documents are dropped.
func parse(t *testing.T, what string, out []byte) []object {
	t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []object
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: parse: %v", what, err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var meta struct {
			Kind     string                           `json:"kind"`
			Metadata struct{ Name, Namespace string } `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, raw: raw})
	}
	return objs
}

func find[T any](t *testing.T, objs []object, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			var v T
			if err := json.Unmarshal(o.raw, &v); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return &v
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

func TestOverlays(t *testing.T) {
	for _, dir := range []string{"manifests/base", "manifests/overlays/kube-prometheus-stack", "manifests/overlays/standalone", "manifests/overlays/flant-compat"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			checkAll(t, objs, dir)
			switch filepath.Base(dir) {
			case "flant-compat":
				checkFlantDropIn(t, objs)
			case "kube-prometheus-stack":
				checkServiceMonitor(t, objs, "kube-prometheus-stack")
				pr := find[map[string]any](t, objs, "PrometheusRule", "nodeping")
				if promtool, err := exec.LookPath("promtool"); err == nil {
					spec, _ := json.Marshal((*pr)["spec"]) // JSON is YAML: a rule file promtool reads
					f := filepath.Join(t.TempDir(), "rules.yml")
					os.WriteFile(f, spec, 0o644)
					if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
						t.Errorf("the PrometheusRule's spec is not a valid rule file: %v\n%s", err, out)
					}
				}
				cm := find[v1.ConfigMap](t, objs, "ConfigMap", "nodeping-dashboard")
				if cm.Labels["grafana_dashboard"] != "1" || !json.Valid([]byte(cm.Data["nodeping-dashboard.json"])) {
					t.Error("dashboard ConfigMap lacks the sidecar label or valid JSON")
				}
			case "standalone":
				ne := find[appsv1.DaemonSet](t, objs, "DaemonSet", "nodeping-node-exporter")
				c := ne.Spec.Template.Spec.Containers[0]
				if !slices.Contains(c.Args, "--collector.textfile.directory="+agentTextfileDir(t, objs)) {
					t.Errorf("node-exporter does not read the agents' textfile directory: %v", c.Args)
				}
			}
		})
	}
}

func agentTextfileDir(t *testing.T, objs []object) string {
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "nodeping-agent")
	for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--textfile-dir="); ok {
			return v
		}
	}
	t.Fatal("agent has no --textfile-dir")
	return ""
}

// checkAll runs the checks every rendering of the manifests passes, overlay or chart: the agent
// (rendered from dir), the controller, RBAC, the controller's Service, and every namespaced
// object in nodeping.
func checkAll(t *testing.T, objs []object, dir string) {
	t.Helper()
	checkAgent(t, objs, dir)
	checkController(t, objs)
	checkRBAC(t, objs)
	checkControllerService(t, objs)
	for _, o := range objs {
		if o.Namespace != "" && o.Namespace != "nodeping" {
			t.Errorf("%s %s in namespace %q, want nodeping", o.Kind, o.Name, o.Namespace)
		}
	}
}

func checkAgent(t *testing.T, objs []object, dir string) {
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "nodeping-agent")
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != v1.DNSClusterFirstWithHostNet {
		t.Error("agent: want hostNetwork with dnsPolicy ClusterFirstWithHostNet")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("agent: automountServiceAccountToken must be false")
	}
	if spec.PriorityClassName == "" || !slices.ContainsFunc(spec.Tolerations, func(tl v1.Toleration) bool { return tl.Operator == v1.TolerationOpExists && tl.Key == "" }) {
		t.Error("agent: want a priorityClassName and a toleration for every taint")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("agent: %d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil || sc.Capabilities == nil:
		t.Fatal("agent: no securityContext capabilities")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("agent: privileged")
	case !slices.Equal(sc.Capabilities.Add, []v1.Capability{"NET_RAW"}) || !slices.Equal(sc.Capabilities.Drop, []v1.Capability{"ALL"}):
		t.Errorf("agent: capabilities add %v drop %v, want NET_RAW only", sc.Capabilities.Add, sc.Capabilities.Drop)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("agent: allowPrivilegeEscalation must be false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("agent: readOnlyRootFilesystem must be true")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("agent: want CPU and memory requests and a memory limit")
	}
	var nodesVol string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "nodeping-nodes" {
			nodesVol = v.Name
		}
	}
	var nodesFile string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--nodes-file="); ok {
			nodesFile = v
		}
	}
	found := false
	for _, m := range c.VolumeMounts {
		if m.Name == nodesVol {
			found = true
			if m.SubPath != "" {
				t.Error("agent: the nodes ConfigMap is mounted with subPath: its updates would never arrive")
			}
			if filepath.Dir(nodesFile) != m.MountPath {
				t.Errorf("agent: --nodes-file %s is not in the ConfigMap's mount %s", nodesFile, m.MountPath)
			}
		}
	}
	if !found {
		t.Error("agent: the nodes ConfigMap is not mounted")
	}
	tf := agentTextfileDir(t, objs)
	if !slices.ContainsFunc(c.VolumeMounts, func(m v1.VolumeMount) bool { return m.MountPath == tf }) {
		t.Errorf("agent: --textfile-dir %s is not a mounted volume", tf)
	}
	compat := slices.Contains(c.Args, "--compat=flant")
	if compat != (filepath.Base(dir) == "flant-compat") {
		t.Errorf("agent: --compat=flant is %v in %s", compat, dir)
	}
}

func checkController(t *testing.T, objs []object) {
	d := find[appsv1.Deployment](t, objs, "Deployment", "nodeping-controller")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Error("controller: want 2 replicas (leader election)")
	}
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "nodeping-agent")
	if img := ds.Spec.Template.Spec.Containers[0].Image; c.Image != img || !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
		t.Errorf("controller image %q and agent image %q: want the same pinned tag", c.Image, img)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("controller: must run as non-root")
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || !slices.Equal(sc.Capabilities.Drop, []v1.Capability{"ALL"}) {
		t.Error("controller: want no privilege escalation, a read-only root filesystem and no capabilities")
	}
	var port int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port == 0 || !slices.Contains(c.Args, "--listen-address=:"+itoa(port)) || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Port.StrVal != "metrics" {
		t.Errorf("controller: the metrics port %d, --listen-address and the probes disagree", port)
	}
	var cmArg string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--configmap="); ok {
			cmArg = v
		}
	}
	var agentCM string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			agentCM = v.ConfigMap.Name
		}
	}
	if cmArg == "" || cmArg != agentCM {
		t.Errorf("controller writes ConfigMap %q, agents mount %q", cmArg, agentCM)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func checkRBAC(t *testing.T, objs []object) {
	for _, o := range objs {
		switch o.Kind {
		case "RoleBinding", "ClusterRoleBinding":
			var b rbacv1.RoleBinding
			json.Unmarshal(o.raw, &b)
			for _, s := range b.Subjects {
				if s.Name == "nodeping-agent" {
					t.Errorf("%s %s grants the agent API permissions", o.Kind, o.Name)
				}
			}
		}
	}
	cr := find[rbacv1.ClusterRole](t, objs, "ClusterRole", "nodeping-controller")
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Resources, []string{"nodes"}) || !slices.Equal(cr.Rules[0].Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("controller ClusterRole: want read-only access to nodes, got %+v", cr.Rules)
	}
	r := find[rbacv1.Role](t, objs, "Role", "nodeping-controller")
	for _, rule := range r.Rules {
		for _, verb := range rule.Verbs {
			named := len(rule.ResourceNames) > 0
			if (verb == "update" || verb == "patch" || verb == "delete") && !named {
				t.Errorf("controller Role: %s on %v is not limited to named objects", verb, rule.Resources)
			}
			if verb == "delete" || verb == "*" {
				t.Errorf("controller Role grants %s", verb)
			}
		}
	}
}

// checkControllerService: the Service selects the controller's pods and serves their metrics
// port.
func checkControllerService(t *testing.T, objs []object) {
	t.Helper()
	svc := find[v1.Service](t, objs, "Service", "nodeping-controller")
	d := find[appsv1.Deployment](t, objs, "Deployment", "nodeping-controller")
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service nodeping-controller selects %s=%s, the controller's pods are labelled %v", k, v, d.Spec.Template.Labels)
		}
	}
	if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("Service nodeping-controller: want a selector and one port named metrics to the pods' metrics port, got %+v", svc.Spec)
	}
}

// checkServiceMonitor: the ServiceMonitor carries the operator's release label and selects the
// controller's Service by its labels and port name.
func checkServiceMonitor(t *testing.T, objs []object, release string) {
	t.Helper()
	var sm struct {
		Metadata struct{ Labels map[string]string }
		Spec     struct {
			Selector  struct{ MatchLabels map[string]string }
			Endpoints []struct{ Port, Path string }
		}
	}
	raw := find[json.RawMessage](t, objs, "ServiceMonitor", "nodeping-controller")
	if err := json.Unmarshal(*raw, &sm); err != nil {
		t.Fatal(err)
	}
	svc := find[v1.Service](t, objs, "Service", "nodeping-controller")
	if sm.Metadata.Labels["release"] != release {
		t.Errorf("ServiceMonitor: release label %q, want %q", sm.Metadata.Labels["release"], release)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the Service is labelled %v", k, v, svc.Labels)
		}
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor: want a selector and the metrics port's /metrics, got %+v", sm.Spec)
	}
}

// checkFlantDropIn: the agent writes where Flant's node-ping did, under Flant's file name, with
// the node's name in MY_NODE_NAME; the namespace admits it under Deckhouse; the controller
// reads external targets from a mounted ConfigMap.
func checkFlantDropIn(t *testing.T, objs []object) {
	t.Helper()
	const dir = "/var/run/node-exporter-textfile"
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "nodeping-agent")
	c := ds.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--node-name=$(MY_NODE_NAME)", "--textfile-dir=" + dir, "--textfile-name=node-ping_$(MY_NODE_NAME).prom", "--compat=flant"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("flant-compat agent: no %s in %q", want, c.Args)
		}
	}
	if len(c.Env) == 0 || c.Env[0].Name != "MY_NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("flant-compat agent: want MY_NODE_NAME from spec.nodeName first in env, got %+v", c.Env)
	}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == "textfile" && (v.HostPath == nil || v.HostPath.Path != dir) {
			t.Errorf("flant-compat agent: textfile volume %+v, want host path %s", v, dir)
		}
	}
	ns := find[v1.Namespace](t, objs, "Namespace", "nodeping")
	if ns.Labels["security.deckhouse.io/pod-policy"] != "privileged" || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("flant-compat namespace labels %v: want privileged for Pod Security and for Deckhouse", ns.Labels)
	}
	cm := find[v1.ConfigMap](t, objs, "ConfigMap", "nodeping-external-targets")
	var ext struct {
		ExternalTargets *[]struct{ Name, Host string } `json:"external_targets"`
	}
	if err := json.Unmarshal([]byte(cm.Data["external-targets.json"]), &ext); err != nil || ext.ExternalTargets == nil {
		t.Errorf("external-targets.json is not {\"external_targets\": [...]}: %q (%v)", cm.Data["external-targets.json"], err)
	}
	d := find[appsv1.Deployment](t, objs, "Deployment", "nodeping-controller")
	cc := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(cc.Args, "--external-targets-file=/etc/nodeping-external/external-targets.json") ||
		!slices.ContainsFunc(cc.VolumeMounts, func(m v1.VolumeMount) bool { return m.MountPath == "/etc/nodeping-external" && m.SubPath == "" }) ||
		!slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v v1.Volume) bool {
			return v.ConfigMap != nil && v.ConfigMap.Name == "nodeping-external-targets"
		}) {
		t.Errorf("flant-compat controller: external targets not mounted and passed: %q %+v", cc.Args, cc.VolumeMounts)
	}
}
