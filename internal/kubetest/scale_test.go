package kubetest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// realisticNode is shaped like a kubelet's Node: 50 images, labels, annotations, five conditions
// with messages, capacity and node info. With the managedFields the server adds, about 20 KB.
func realisticNode(i int) *v1.Node {
	name := fmt.Sprintf("ip-10-%d-%d-%d.eu-central-1.compute.internal", i/65536, i/256%256, i%256)
	zone := fmt.Sprintf("eu-central-1%c", 'a'+i%3)
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
		"node.kubernetes.io/instance-type": "m6i.2xlarge", "beta.kubernetes.io/instance-type": "m6i.2xlarge",
		"topology.kubernetes.io/region": "eu-central-1", "topology.kubernetes.io/zone": zone,
		"failure-domain.beta.kubernetes.io/region": "eu-central-1", "failure-domain.beta.kubernetes.io/zone": zone,
		"eks.amazonaws.com/nodegroup": "general-purpose-20260101", "eks.amazonaws.com/capacityType": "ON_DEMAND",
	}, Annotations: map[string]string{
		"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
		"csi.volume.kubernetes.io/nodeid":      fmt.Sprintf(`{"ebs.csi.aws.com":"i-0%015x","efs.csi.aws.com":"i-0%015x"}`, i, i),
		"alpha.kubernetes.io/provided-node-ip": fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256),
	}}}
	n.Spec.PodCIDR = fmt.Sprintf("100.%d.%d.0/24", 64+i/256%64, i%256)
	n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
	n.Spec.ProviderID = fmt.Sprintf("aws:///%s/i-0%015x", zone, i)
	n.Status.Addresses = []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)},
		{Type: v1.NodeInternalIP, Address: fmt.Sprintf("fd00::%x", i)},
		{Type: v1.NodeHostName, Address: name}, {Type: v1.NodeInternalDNS, Address: name},
	}
	q := resource.MustParse
	n.Status.Capacity = v1.ResourceList{"cpu": q("8"), "memory": q("32386524Ki"), "pods": q("58"), "ephemeral-storage": q("104845292Ki"), "hugepages-1Gi": q("0"), "hugepages-2Mi": q("0")}
	n.Status.Allocatable = v1.ResourceList{"cpu": q("7910m"), "memory": q("31369692Ki"), "pods": q("58"), "ephemeral-storage": q("95551679124"), "hugepages-1Gi": q("0"), "hugepages-2Mi": q("0")}
	n.Status.NodeInfo = v1.NodeSystemInfo{MachineID: fmt.Sprintf("ec2%029x", i), SystemUUID: fmt.Sprintf("ec2%029x", i), BootID: fmt.Sprintf("%032x", i),
		KernelVersion: "6.1.112-124.190.amzn2023.x86_64", OSImage: "Amazon Linux 2023.6.20241010", ContainerRuntimeVersion: "containerd://1.7.22",
		KubeletVersion: "v1.37.2-eks-7f9249a", OperatingSystem: "linux", Architecture: "amd64"}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = 10250
	now := metav1.Now()
	for _, c := range []struct{ typ, status, reason, msg string }{
		{"MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{"DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{"PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
		{"Ready", "True", "KubeletReady", "kubelet is posting ready status"},
	} {
		n.Status.Conditions = append(n.Status.Conditions, v1.NodeCondition{Type: v1.NodeConditionType(c.typ), Status: v1.ConditionStatus(c.status),
			Reason: c.reason, Message: c.msg, LastHeartbeatTime: now, LastTransitionTime: now})
	}
	for k := 0; k < 50; k++ {
		repo := fmt.Sprintf("602401143452.dkr.ecr.eu-central-1.amazonaws.com/eks/workload-image-%02d", k)
		n.Status.Images = append(n.Status.Images, v1.ContainerImage{SizeBytes: int64(10_000_000 + k*1_234_567), Names: []string{
			fmt.Sprintf("%s@sha256:%064x", repo, k*7919+1), fmt.Sprintf("%s:v1.%d.%d-eksbuild.1", repo, k, k%7)}})
	}
	return n
}

type proc struct{ cmd *exec.Cmd }

// usage reads the controller's CPU time (user+system), RSS and peak RSS from /proc.
func (p proc) usage() (cpu time.Duration, rss, hwm int64) {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
	s, _ := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	defer s.Close()
	sc := bufio.NewScanner(s)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb * 1024
		case "VmHWM":
			hwm = kb * 1024
		}
	}
	return cpu, rss, hwm
}

func metric(t *testing.T, addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name) && (strings.Contains(l, `result="ok"`) || !strings.Contains(name, "writes")) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestScale is the 5,000-node measurement behind docs/scale.md ("Controller at 5,000 nodes"). It
// runs only with NODEPING_KUBE_SCALE=N (scripts/test-long sets 5000); NODEPING_CONTROLLER_BIN
// picks another controller binary (an older build, to compare).
func TestScale(t *testing.T) {
	count, _ := strconv.Atoi(os.Getenv("NODEPING_KUBE_SCALE"))
	if count <= 0 {
		t.Skip("set NODEPING_KUBE_SCALE=5000 to run the scale measurement (scripts/test-long)")
	}
	s := server(t)
	ctx := context.Background()
	bin := os.Getenv("NODEPING_CONTROLLER_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "nodeping-controller")
		if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(s.Root, "cmd", "nodeping-controller")).CombinedOutput(); err != nil {
			t.Fatalf("build the controller: %v\n%s", err, out)
		}
	}
	kc := kubeconfigAs(ctx, t, s, "nodeping-controller")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, _ := os.Create(filepath.Join(t.TempDir(), "controller.log"))
	defer logf.Close()
	cmd := exec.Command(bin, "--kubeconfig", kc, "--namespace", "nodeping", "--listen-address", addr, "--identity", "scale")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+os.Getenv("NODEPING_SCALE_GOMEMLIMIT"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := proc{cmd}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	await(t, "controller serves /metrics", 30*time.Second, func() bool { return metric(t, addr, "nodeping_controller_leader") == 1 })

	size := func() (int, int) {
		cm, err := s.Admin.CoreV1().ConfigMaps("nodeping").Get(ctx, "nodeping-nodes", metav1.GetOptions{})
		if err != nil {
			return 0, 0
		}
		l, _, _ := nodelist.Decode([]byte(cm.Data["nodes.json"]))
		return len(l.Nodes), len(cm.Data["nodes.json"])
	}
	// Peak RSS is sampled, since VmHWM also counts start-up.
	var peak atomic.Int64
	stopSample := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, rss, _ := p.usage(); rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopSample); wg.Wait() }()

	parallel := func(what string, f func(i int) error) time.Duration {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)); i <= count; i = int(next.Add(1)) {
					if err := f(i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(start)
	}

	cpu0, _, _ := p.usage()
	writes0 := metric(t, addr, "nodeping_controller_configmap_writes_total")
	start := time.Now()
	created := parallel("create", func(i int) error {
		_, err := s.Admin.CoreV1().Nodes().Create(ctx, realisticNode(i), metav1.CreateOptions{})
		return err
	})
	await(t, "the ConfigMap lists every node", 10*time.Minute, func() bool { n, _ := size(); return n == count })
	listedAfter := time.Since(start)
	_, bytes := size()
	// Let the last quiet period and rate cap pass, then count the writes of the burst.
	time.Sleep(15 * time.Second)
	cpu1, rss1, _ := p.usage()
	writes1 := metric(t, addr, "nodeping_controller_configmap_writes_total")
	raw, _ := s.Admin.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + realisticNode(1).Name).DoRaw(ctx)
	var probe map[string]any
	json.Unmarshal(raw, &probe)

	// Heartbeat sweep: every kubelet patches its conditions' heartbeat times.
	peakBefore := peak.Load()
	peak.Store(0)
	hb := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	patch := []byte(fmt.Sprintf(`{"status":{"conditions":[{"type":"MemoryPressure","lastHeartbeatTime":%q},{"type":"DiskPressure","lastHeartbeatTime":%q},{"type":"PIDPressure","lastHeartbeatTime":%q},{"type":"Ready","lastHeartbeatTime":%q}]}}`, hb, hb, hb, hb))
	swept := parallel("heartbeat", func(i int) error {
		_, err := s.Admin.CoreV1().Nodes().Patch(ctx, realisticNode(i).Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	})
	await(t, "the controller saw every heartbeat", 5*time.Minute, func() bool {
		return metric(t, addr, `nodeping_controller_node_events_total{relevant="false"}`) >= float64(count) ||
			metric(t, addr, "nodeping_controller_node_events_total") < 0 // older builds lack the metric
	})
	time.Sleep(15 * time.Second)
	cpu2, rss2, _ := p.usage()
	writes2 := metric(t, addr, "nodeping_controller_configmap_writes_total")

	report := fmt.Sprintf(`controller %s, %d nodes of %d bytes each (GET, JSON, with managedFields)
join burst: created in %s; ConfigMap listed every node %s after the first create; %d bytes
join burst: %v ConfigMap writes; controller CPU %s; RSS after %d MiB, peak %d MiB
heartbeat sweep: %d status patches in %s; %v writes; controller CPU %s; RSS after %d MiB, peak %d MiB
`, bin, count, len(raw), created.Round(100*time.Millisecond), listedAfter.Round(100*time.Millisecond), bytes,
		writes1-writes0, (cpu1 - cpu0), rss1>>20, peakBefore>>20,
		count, swept.Round(100*time.Millisecond), writes2-writes1, (cpu2 - cpu1), rss2>>20, peak.Load()>>20)
	t.Log("\n" + report)
	if out := os.Getenv("NODEPING_KUBE_SCALE_OUT"); out != "" {
		os.WriteFile(out, []byte(report), 0o644)
	}
	if n, _ := size(); n != count {
		t.Errorf("ConfigMap lists %d nodes, want %d", n, count)
	}
}
