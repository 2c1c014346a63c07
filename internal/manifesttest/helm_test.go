package manifesttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
)

const chart = "manifests/helm/nodeping"

// overlayValues pairs every kustomize overlay with the chart values that choose the same: the
// two must render the same objects.
var overlayValues = []struct{ overlay, values string }{
	{"manifests/base", "ci/base-values.yaml"},
	{"manifests/overlays/kube-prometheus-stack", "ci/kube-prometheus-stack-values.yaml"},
	{"manifests/overlays/standalone", "ci/standalone-values.yaml"},
	{"manifests/overlays/flant-compat", "ci/flant-compat-values.yaml"},
}

var helmOnce = struct {
	sync.Once
	path string
	err  error
}{}

// helmBinary returns a helm built from the module proxy by scripts/tool-helm (cached after the
// first build). Without Go or the proxy it skips, except in CI, where helm must run.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv("NODEPING_HELM"); p != "" {
			helmOnce.path = p
			return
		}
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(root, "scripts/tool-helm"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			helmOnce.err = fmt.Errorf("scripts/tool-helm: %v\n%s", err, stderr.Bytes())
			return
		}
		helmOnce.path = strings.TrimSpace(string(out))
	})
	if helmOnce.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("helm is needed in CI: %v", helmOnce.err)
		}
		t.Skipf("skipping: helm could not be built from the module proxy (set NODEPING_HELM to a helm binary): %v", helmOnce.err)
	}
	return helmOnce.path
}

func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// No user configuration, no repositories, no cache: the same result on every machine.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// helmTemplate renders the chart into namespace nodeping with the given values files and --set
// pairs.
func helmTemplate(t *testing.T, valueFiles []string, sets ...string) []object {
	t.Helper()
	args := []string{"template", "nodeping", filepath.Join(root, chart), "--namespace", "nodeping"}
	for _, f := range valueFiles {
		args = append(args, "--values", filepath.Join(root, chart, f))
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return parse(t, "helm "+strings.Join(append(valueFiles, sets...), " "), runHelm(t, args...))
}

func TestHelmLint(t *testing.T) {
	runHelm(t, "lint", "--strict", filepath.Join(root, chart))
	for _, ov := range overlayValues {
		runHelm(t, "lint", "--strict", filepath.Join(root, chart), "--namespace", "nodeping", "--values", filepath.Join(root, chart, ov.values))
	}
}

// TestChartChecks puts the chart's renderings through the overlays' checks: security
// properties, the agent's mounts, the controller's ports and ConfigMap, RBAC.
func TestChartChecks(t *testing.T) {
	for _, ov := range append([]struct{ overlay, values string }{{"defaults", ""}}, overlayValues...) {
		t.Run(filepath.Base(ov.overlay), func(t *testing.T) {
			var files []string
			if ov.values != "" {
				files = append(files, ov.values)
			}
			objs := helmTemplate(t, files)
			checkAll(t, objs, ov.overlay)
			switch filepath.Base(ov.overlay) {
			case "flant-compat":
				checkFlantDropIn(t, objs)
			case "kube-prometheus-stack":
				checkServiceMonitor(t, objs, "kube-prometheus-stack")
			}
		})
	}
}

// TestChartMatchesOverlays renders every overlay with kustomize and the chart with the values
// that make the same choices, and compares the objects, Helm's own labels aside.
func TestChartMatchesOverlays(t *testing.T) {
	for _, ov := range overlayValues {
		t.Run(filepath.Base(ov.overlay), func(t *testing.T) {
			want := normalize(t, build(t, ov.overlay))
			got := normalize(t, helmTemplate(t, []string{ov.values}))
			for _, k := range sortedKeys(want, got) {
				w, inW := want[k]
				g, inG := got[k]
				switch {
				case !inG:
					t.Errorf("%s: in the overlay, not rendered by the chart", k)
				case !inW:
					t.Errorf("%s: rendered by the chart, not in the overlay", k)
				default:
					for _, d := range diff("", w, g) {
						t.Errorf("%s: %s", k, d)
					}
				}
			}
		})
	}
}

// helmLabels are the labels only the chart sets; they are not compared.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// normalize keys objects by kind, namespace and name, decoded as plain JSON values, with Helm's
// labels removed wherever labels appear.
func normalize(t *testing.T, objs []object) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, o := range objs {
		var v any
		if err := json.Unmarshal(o.raw, &v); err != nil {
			t.Fatal(err)
		}
		dropHelmLabels(v)
		k := o.Kind + " " + o.Namespace + "/" + o.Name
		if _, dup := out[k]; dup {
			t.Errorf("%s rendered twice", k)
		}
		out[k] = v
	}
	return out
}

func dropHelmLabels(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if m, ok := x.(map[string]any); ok && k == "labels" {
				for _, l := range helmLabels {
					delete(m, l)
				}
			}
			dropHelmLabels(x)
		}
	case []any:
		for _, x := range v {
			dropHelmLabels(x)
		}
	}
}

func sortedKeys(ms ...map[string]any) []string {
	var ks []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	sort.Strings(ks)
	return ks
}

// diff lists where two decoded JSON values differ, by path: "kustomize X, chart Y".
func diff(path string, want, got any) []string {
	if reflect.DeepEqual(want, got) {
		return nil
	}
	show := func(v any) string {
		if v == nil {
			return "<none>"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	wm, okW := want.(map[string]any)
	gm, okG := got.(map[string]any)
	if okW && okG {
		var out []string
		for _, k := range sortedKeys(wm, gm) {
			out = append(out, diff(path+"."+k, wm[k], gm[k])...)
		}
		return out
	}
	wl, okW := want.([]any)
	gl, okG := got.([]any)
	if okW && okG && len(wl) == len(gl) {
		var out []string
		for i := range wl {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), wl[i], gl[i])...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: overlay %s, chart %s", path, show(want), show(got))}
}

// TestChartAgentFlags sets every agent value of the chart and checks that each becomes the
// flag it names, and that every flag the chart can emit is one the agent knows.
func TestChartAgentFlags(t *testing.T) {
	sets := map[string]string{
		"agent.interval=20s":                      "--interval=20s",
		"agent.grace=1m":                          "--grace=1m",
		"agent.maxExternalTargets=16":             "--max-external-targets=16",
		"agent.icmp.enabled=false":                "--icmp=false",
		"agent.icmp.count=30":                     "--icmp-count=30",
		"agent.icmp.interval=500ms":               "--icmp-interval=500ms",
		"agent.icmp.timeout=1s":                   "--icmp-timeout=1s",
		"agent.icmp.size=100":                     "--icmp-size=100",
		"agent.icmp.dontFragment=true":            "--icmp-dont-fragment=true",
		"agent.icmp.engine=pro-bing":              "--icmp-engine=pro-bing",
		"agent.mtu.size=9000":                     "--mtu=9000",
		"agent.mtu.count=2":                       "--mtu-count=2",
		"agent.mtu.every=4":                       "--mtu-every=4",
		"agent.tcp.port=9800":                     "--tcp-port=9800",
		"agent.tcp.count=3":                       "--tcp-count=3",
		"agent.tcp.every=2":                       "--tcp-every=2",
		"agent.udp.port=9801":                     "--udp-port=9801",
		"agent.udp.count=7":                       "--udp-count=7",
		"agent.udp.every=3":                       "--udp-every=3",
		"agent.udp.responderRate=500":             "--udp-responder-rate=500",
		"agent.dns.names={a.example.,b.example.}": "--dns-names=a.example.,b.example.",
		"agent.dns.resolvers={10.0.0.10:53}":      "--dns-resolvers=10.0.0.10:53",
		"agent.dns.timeout=3s":                    "--dns-timeout=3s",
		"agent.dns.every=5":                       "--dns-every=5",
		"agent.plan.fullMeshMax=150":              "--full-mesh-max=150",
		"agent.plan.subsetPeers=12":               "--subset-peers=12",
		"agent.plan.maxZones=24":                  "--max-zones=24",
		"agent.logLevel=debug":                    "--log-level=debug",
		"agent.logFormat=json":                    "--log-format=json",
		"agent.compat=flant":                      "--compat=flant",
		"agent.rttDetail=true":                    "--rtt-detail=true",
		"agent.textfile.name=x.prom":              "--textfile-name=x.prom",
		"agent.extraArgs={--once}":                "--once",
	}
	var all []string
	for s := range sets {
		all = append(all, s)
	}
	sort.Strings(all)
	ds := find[appsv1.DaemonSet](t, helmTemplate(t, nil, all...), "DaemonSet", "nodeping-agent")
	args := ds.Spec.Template.Spec.Containers[0].Args
	for _, s := range all {
		if !slices.Contains(args, sets[s]) {
			t.Errorf("--set %s: want %s in the agent's args %q", s, sets[s], args)
		}
	}
	// Off switches and defaults: no flag at all, so the agent's own default applies.
	ds = find[appsv1.DaemonSet](t, helmTemplate(t, nil, "agent.mtu.size=0", "agent.tcp.port=0", "agent.udp.port=0", "agent.dns.names=null", "agent.plan.fullMeshMax=null"), "DaemonSet", "nodeping-agent")
	if got := ds.Spec.Template.Spec.Containers[0].Args; len(got) != 3 {
		t.Errorf("with every probe but ICMP off and no plan value, want only --node-name, --nodes-file and --textfile-dir, got %q", got)
	}

	known := agentFlags(t)
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !known[name] {
			// Flags that other branches add to the agent; the chart offers them already.
			if slices.Contains([]string{"full-mesh-max", "subset-peers", "textfile-name"}, name) {
				t.Logf("the agent does not know --%s yet; the chart's value for it is untested", name)
				continue
			}
			t.Errorf("the chart emits --%s, which the agent does not know", name)
		}
	}
	// And the other way: every agent flag has a value in the chart.
	for name := range known {
		if slices.Contains([]string{"help", "version", "once", "node-name", "nodes-file", "textfile-dir"}, name) {
			continue
		}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--"+name+"=") }) {
			t.Errorf("the agent's --%s has no value in the chart", name)
		}
	}
}

// agentFlags builds the agent and reads the flag names from its --help.
func agentFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nodeping-agent")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd/nodeping-agent")).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	flags := map[string]bool{"help": true}
	for _, line := range strings.Split(out.String(), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && !strings.HasPrefix(line, "    ") {
			name, _, _ := strings.Cut(f, " ")
			flags[strings.TrimPrefix(name, "-")] = true
		}
	}
	if !flags["icmp-count"] || !flags["tcp-port"] {
		t.Fatalf("could not read the agent's flags from --help:\n%s", out.String())
	}
	return flags
}

// TestChartExternalTargets: a list of targets becomes the ConfigMap the controller reads.
func TestChartExternalTargets(t *testing.T) {
	objs := helmTemplate(t, nil, "controller.externalTargets.targets[0].name=gateway", "controller.externalTargets.targets[0].host=gw.example.org")
	cm := find[v1.ConfigMap](t, objs, "ConfigMap", "nodeping-external-targets")
	var ext struct {
		ExternalTargets []struct{ Name, Host string } `json:"external_targets"`
	}
	err := json.Unmarshal([]byte(cm.Data["external-targets.json"]), &ext)
	if targets := ext.ExternalTargets; err != nil || len(targets) != 1 || targets[0].Name != "gateway" || targets[0].Host != "gw.example.org" {
		t.Errorf("external-targets.json = %q (%v)", cm.Data["external-targets.json"], err)
	}
	d := find[appsv1.Deployment](t, objs, "Deployment", "nodeping-controller")
	c := d.Spec.Template.Spec.Containers[0]
	var file string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--external-targets-file="); ok {
			file = v
		}
	}
	if file == "" || !slices.ContainsFunc(c.VolumeMounts, func(m v1.VolumeMount) bool { return m.MountPath == filepath.Dir(file) && m.SubPath == "" }) {
		t.Errorf("controller: --external-targets-file %q is not in a mounted directory %v", file, c.VolumeMounts)
	}
	if objs := helmTemplate(t, nil); slices.ContainsFunc(objs, func(o object) bool { return o.Name == "nodeping-external-targets" }) {
		t.Error("external targets ConfigMap rendered without targets")
	}
}

// TestChartRunbookURL: prometheusRule.runbookBaseURL points every alert's runbook_url at the
// given page, keeping its anchor, and every anchor is a heading of docs/alerts.md.
func TestChartRunbookURL(t *testing.T) {
	const base = "https://wiki.example.org/nodeping/alerts"
	objs := helmTemplate(t, nil, "prometheusRule.enabled=true", "prometheusRule.runbookBaseURL="+base)
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string
					Annotations map[string]string
				}
			}
		}
	}
	raw := find[json.RawMessage](t, objs, "PrometheusRule", "nodeping")
	if err := json.Unmarshal(*raw, &pr); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs/alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	alerts := 0
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], base+"#")
			if !ok {
				t.Errorf("%s: runbook_url %q does not start with %s#", r.Alert, r.Annotations["runbook_url"], base)
			}
			if !anchors[anchor] {
				t.Errorf("%s: runbook anchor #%s is not a heading of docs/alerts.md", r.Alert, anchor)
			}
		}
	}
	if alerts == 0 {
		t.Error("no alerts in the PrometheusRule")
	}
}

// TestChartRefusesBadValues: values.schema.json refuses typos and impossible values with a
// message that names the value, rather than rendering a DaemonSet that crash-loops.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"image.digest=0123abcd", "at '/image/digest': '0123abcd' does not match pattern"},
		{"agent.icmp.cout=5", "at '/agent/icmp': additional properties 'cout' not allowed"},
		{"agent.compat=flnt", "at '/agent/compat': value must be one of"},
		{"agent.interval=15", "at '/agent/interval': got number, want null or string"},
		{"agent.interval=15x", "at '/agent/interval'"},
		{"agent.tcp.port=70000", "at '/agent/tcp/port'"},
		{"agent.icmp.count=0", "at '/agent/icmp/count'"},
		{"agent.textfile.name=a/b.prom", "at '/agent/textfile/name'"},
		{"agent.dns.resolvers={10.0.0.10}", "at '/agent/dns/resolvers/0'"},
		{"controller.externalTargets.targets[0].name=gw", "at '/controller/externalTargets/targets/0': missing property 'host'"},
		{"prometheusRule.runbookBaseURL=wiki", "at '/prometheusRule/runbookBaseURL'"},
		{"controller.service.enabled=false,controller.serviceMonitor.enabled=true", "controller.serviceMonitor.enabled needs controller.service.enabled"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			cmd := exec.Command(helmBinary(t), "template", "nodeping", filepath.Join(root, chart), "--set", tc.set)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("--set %s rendered; want an error", tc.set)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("--set %s: got %s\nwant it to say %q", tc.set, out, tc.want)
			}
		})
	}
}
