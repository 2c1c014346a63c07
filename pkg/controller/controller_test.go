package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodeping/nodeping/internal/testutil/logbuf"
	"github.com/nodeping/nodeping/internal/testutil/poll"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

const ns, cmName = "nodeping", "nodeping-nodes"

func node(name, zone string, ready bool, addrs ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if zone != "" {
		n.Labels["topology.kubernetes.io/zone"] = zone
	}
	status := v1.ConditionTrue
	if !ready {
		status = v1.ConditionFalse
	}
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: status, LastHeartbeatTime: metav1.Now()}}
	for _, a := range addrs {
		typ, ip, _ := strings.Cut(a, "=")
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeAddressType(typ), Address: ip})
	}
	return n
}

func TestRender(t *testing.T) {
	cordoned := node("c", "z2", true, "InternalIP=10.0.0.3")
	cordoned.Spec.Unschedulable = true
	l, skipped := Render([]*v1.Node{
		node("b", "z1", true, "Hostname=b", "ExternalIP=203.0.113.2", "InternalIP=10.0.0.2", "InternalIP=fd00::2", "InternalIP=10.0.0.99"),
		node("a", "", false, "ExternalIP=203.0.113.1"),
		cordoned,
		node("no-address", "z1", true, "Hostname=x", "InternalIP=not-an-ip"),
	})
	var got []string
	for _, n := range l.Nodes {
		got = append(got, fmt.Sprintf("%s zone=%q v4=%v v6=%v ready=%v schedulable=%v", n.Name, n.Zone, n.IPv4, n.IPv6, n.Ready, n.Schedulable))
	}
	want := []string{
		`a zone="" v4=203.0.113.1 v6=invalid IP ready=false schedulable=true`,
		`b zone="z1" v4=10.0.0.2 v6=fd00::2 ready=true schedulable=true`,
		`c zone="z2" v4=10.0.0.3 v6=invalid IP ready=true schedulable=false`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(skipped) != 1 || skipped[0] != "no-address" {
		t.Errorf("Render:\n%s\nskipped %v\nwant:\n%s\nskipped [no-address]", strings.Join(got, "\n"), skipped, strings.Join(want, "\n"))
	}
}

// TestRenderSize5000 measures the nodes list of a 5,000-node dual-stack cluster with long names:
// it must fit a ConfigMap.
func TestRenderSize5000(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 5000; i++ {
		nodes = append(nodes, node(fmt.Sprintf("ip-10-%d-%d-%d.eu-central-1.compute.internal", i/65536, i/256%256, i%256),
			fmt.Sprintf("eu-central-1%c", 'a'+i%3), true,
			fmt.Sprintf("InternalIP=10.%d.%d.%d", i/65536, i/256%256, i%256), fmt.Sprintf("InternalIP=fd00::%x", i)))
	}
	l, _ := Render(nodes)
	data, err := nodelist.Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5000 nodes: %d bytes, %d bytes per node (a ConfigMap holds %d)", len(data), len(data)/5000, maxConfigMapBytes)
	if len(data) > maxConfigMapBytes {
		t.Errorf("5000 nodes render to %d bytes, over a ConfigMap's limit", len(data))
	}
}

type harness struct {
	client *fake.Clientset
}

func startController(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	client := fake.NewClientset(objs...)
	return run(t, New(Config{Namespace: ns, Name: cmName}, client, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry())), client)
}

// run runs c until the test ends, and returns the harness on its client.
func run(t *testing.T, c *Controller, client *fake.Clientset) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{client: client}
}

// writes counts the create and update actions on ConfigMaps so far.
func (h *harness) writes() int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetResource().Resource == "configmaps" && (a.GetVerb() == "create" || a.GetVerb() == "update") {
			n++
		}
	}
	return n
}

func (h *harness) list(t *testing.T) []string {
	t.Helper()
	cm, err := h.client.CoreV1().ConfigMaps(ns).Get(context.Background(), cmName, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	l, _, err := nodelist.Decode([]byte(cm.Data["nodes.json"]))
	if err != nil {
		t.Fatalf("the ConfigMap holds no valid nodes list: %v", err)
	}
	var out []string
	for _, n := range l.Nodes {
		out = append(out, fmt.Sprintf("%s/%s/%v", n.Name, n.Zone, n.IPv4))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 5*time.Second, 5*time.Millisecond, cond)
}

func TestControllerKeepsConfigMapInStep(t *testing.T) {
	h := startController(t, node("a", "z1", true, "InternalIP=10.0.0.1"), node("b", "z2", true, "InternalIP=10.0.0.2"))
	ctx := context.Background()
	nodes := h.client.CoreV1().Nodes()
	is := func(want ...string) func() bool {
		return func() bool { return strings.Join(h.list(t), " ") == strings.Join(want, " ") }
	}
	waitFor(t, "ConfigMap created with a and b", is("a/z1/10.0.0.1", "b/z2/10.0.0.2"))
	if w := h.writes(); w != 1 {
		t.Fatalf("%d writes to create the ConfigMap, want 1", w)
	}

	// A heartbeat-only update changes nothing in the list: no write.
	a, _ := nodes.Get(ctx, "a", metav1.GetOptions{})
	a.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now().Add(time.Minute))
	a.ResourceVersion = "2"
	if _, err := nodes.UpdateStatus(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	marker := node("c", "z3", true, "InternalIP=10.0.0.3") // then a real change, to know the heartbeat was processed
	if _, err := nodes.Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c added", is("a/z1/10.0.0.1", "b/z2/10.0.0.2", "c/z3/10.0.0.3"))
	if w := h.writes(); w != 2 {
		t.Errorf("%d writes after a heartbeat and one added node, want 2 (the heartbeat must not write)", w)
	}

	// Zone change, delete.
	b, _ := nodes.Get(ctx, "b", metav1.GetOptions{})
	b.Labels["topology.kubernetes.io/zone"] = "z9"
	nodes.Update(ctx, b, metav1.UpdateOptions{})
	waitFor(t, "b moved to z9", is("a/z1/10.0.0.1", "b/z9/10.0.0.2", "c/z3/10.0.0.3"))
	nodes.Delete(ctx, "c", metav1.DeleteOptions{})
	waitFor(t, "c removed", is("a/z1/10.0.0.1", "b/z9/10.0.0.2"))

	// A node without an address is left out.
	nodes.Create(ctx, node("d", "z1", true, "Hostname=d"), metav1.CreateOptions{})
	nodes.Create(ctx, node("e", "z1", true, "InternalIP=10.0.0.5"), metav1.CreateOptions{})
	waitFor(t, "e added, d left out", is("a/z1/10.0.0.1", "b/z9/10.0.0.2", "e/z1/10.0.0.5"))

	// Someone edits the ConfigMap by hand: it is repaired.
	cm, _ := h.client.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
	cm.Data["nodes.json"] = `[{"name":"intruder","ipAddress":"192.0.2.1"}]`
	h.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	waitFor(t, "hand edit repaired", is("a/z1/10.0.0.1", "b/z9/10.0.0.2", "e/z1/10.0.0.5"))

	// Deleted: recreated.
	h.client.CoreV1().ConfigMaps(ns).Delete(ctx, cmName, metav1.DeleteOptions{})
	waitFor(t, "deleted ConfigMap recreated", is("a/z1/10.0.0.1", "b/z9/10.0.0.2", "e/z1/10.0.0.5"))
}

// TestControllerRetriesAPIErrors fails the first two writes: the controller retries with backoff
// and gets there, without exiting.
func TestControllerRetriesAPIErrors(t *testing.T) {
	client := fake.NewClientset(node("a", "", true, "InternalIP=10.0.0.1"))
	var mu sync.Mutex
	failures := 2
	client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return true, nil, fmt.Errorf("injected: the API server is unavailable")
		}
		return false, nil, nil
	})
	c := New(Config{Namespace: ns, Name: cmName, MaxBackoff: 50 * time.Millisecond}, client, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	h := run(t, c, client)
	waitFor(t, "ConfigMap created after two failures", func() bool { return len(h.list(t)) == 1 })
}

// TestLeaderElectionHandsOver: two replicas, one Lease; when the leader stops, the other takes
// over and does the writing.
func TestLeaderElectionHandsOver(t *testing.T) {
	client := fake.NewClientset(node("a", "", true, "InternalIP=10.0.0.1"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	leading := map[string]bool{}
	replica := func(id string) (context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		m := NewMetrics(prometheus.NewRegistry())
		go func() {
			defer close(done)
			RunAsLeader(ctx, client, LeaderConfig{Namespace: ns, Name: "nodeping-controller", Identity: id,
				LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond}, log, m,
				func(ctx context.Context) {
					mu.Lock()
					leading[id] = true
					mu.Unlock()
					<-ctx.Done()
					mu.Lock()
					leading[id] = false
					mu.Unlock()
				})
		}()
		return cancel, done
	}
	cancelA, doneA := replica("a")
	leader := func(id string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return leading[id] }
	}
	waitFor(t, "a leads", leader("a"))
	cancelB, doneB := replica("b")
	defer func() { cancelB(); <-doneB }()
	time.Sleep(300 * time.Millisecond) // b must not take over while a renews
	if leader("b")() {
		t.Fatal("two leaders at once")
	}
	cancelA()
	<-doneA
	waitFor(t, "b takes over after a releases the lease", leader("b"))
}

// TestBurstIsQuietPeriodWithMaxWaitAndRateCap: a steady stream of Node changes (one every 10ms
// for 800ms) is written during the stream (the maximum wait), never twice within the minimum
// write interval, and the end state is written once the stream stops.
func TestBurstIsQuietPeriodWithMaxWaitAndRateCap(t *testing.T) {
	client := fake.NewClientset()
	const interval = 150 * time.Millisecond
	c := New(Config{Namespace: ns, Name: cmName, Debounce: 50 * time.Millisecond, MaxWait: 100 * time.Millisecond, MinWriteInterval: interval},
		client, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	var (
		mu    sync.Mutex
		times []time.Time
	)
	client.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
		}
		return false, nil, nil
	})
	h := run(t, c, client)

	start := time.Now()
	n := 0
	for time.Since(start) < 800*time.Millisecond {
		n++
		if _, err := client.CoreV1().Nodes().Create(context.Background(), node(fmt.Sprintf("n%03d", n), "", true, fmt.Sprintf("InternalIP=10.0.%d.%d", n/256, n%256)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	streamEnd := time.Now()
	waitFor(t, "every node written", func() bool { return len(h.list(t)) == n })
	mu.Lock()
	defer mu.Unlock()
	during := 0
	for i, w := range times {
		if w.Before(streamEnd) {
			during++
		}
		if i > 0 && w.Sub(times[i-1]) < interval {
			t.Errorf("writes %d and %d only %s apart, want at least %s", i-1, i, w.Sub(times[i-1]), interval)
		}
	}
	if during < 2 {
		t.Errorf("%d writes during an 800ms stream of events, want at least 2 (the maximum wait must cut in)", during)
	}
	t.Logf("%d nodes added in a stream: %d writes, %d during the stream", n, len(times), during)
}

// TestHeartbeatCostsNoRender: an update that the list does not show is not even rendered.
func TestHeartbeatCostsNoRender(t *testing.T) {
	a := node("a", "z1", true, "InternalIP=10.0.0.1")
	b := a.DeepCopy()
	b.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now().Add(time.Minute))
	b.Status.Images = []v1.ContainerImage{{Names: []string{"registry/image:1"}, SizeBytes: 1}}
	b.ResourceVersion = "9"
	sa, _ := SlimNode(a)
	sb, _ := SlimNode(b)
	if listChanges(sa, sb) {
		t.Error("a heartbeat counts as a change of the list")
	}
	c := b.DeepCopy()
	c.Spec.Unschedulable = true
	sc, _ := SlimNode(c)
	if !listChanges(sb, sc) {
		t.Error("a cordon does not count as a change of the list")
	}
	if n := sb.(*v1.Node); len(n.Status.Images) != 0 || n.Status.Conditions[0].LastHeartbeatTime != (metav1.Time{}) {
		t.Errorf("SlimNode kept images or heartbeat times: %+v", n.Status)
	}
}

// TestNodesListTooLarge: nodes join until the list is over a ConfigMap's 1 MiB. Every refused
// write is counted (result too_large), the refusal is logged once however often it is retried,
// and the ConfigMap keeps the last list written; once nodes leave and the list fits, it is
// written again.
func TestNodesListTooLarge(t *testing.T) {
	long := strings.Repeat("x", 240) // node names may be 253 characters long: fewer nodes to fill 1 MiB
	mk := func(i int) *v1.Node {
		return node(fmt.Sprintf("%s-%05d", long, i), "eu-central-1a", true, fmt.Sprintf("InternalIP=10.%d.%d.%d", i/65536, i/256%256, i%256))
	}
	var all []*v1.Node
	for i := range 5000 {
		all = append(all, mk(i))
	}
	size := func(n int) int {
		l, _ := Render(all[:n])
		data, err := nodelist.Encode(l)
		if err != nil {
			t.Fatal(err)
		}
		return len(data)
	}
	// fits is the most nodes whose list fits: one more is over the limit.
	lo, hi := 1, len(all)
	if size(hi) <= maxConfigMapBytes {
		t.Fatalf("%d nodes fit a ConfigMap", hi)
	}
	for lo+1 < hi {
		if mid := (lo + hi) / 2; size(mid) <= maxConfigMapBytes {
			lo = mid
		} else {
			hi = mid
		}
	}
	fits := lo
	var objs []runtime.Object
	for _, n := range all[:fits] {
		objs = append(objs, n)
	}
	client := fake.NewClientset(objs...)
	logs := &logbuf.Buffer{}
	m := NewMetrics(prometheus.NewRegistry())
	c := New(Config{Namespace: ns, Name: cmName, MaxBackoff: 5 * time.Millisecond}, client, slog.New(slog.NewTextHandler(logs, nil)), m)
	h := run(t, c, client)
	ctx := context.Background()
	waitFor(t, "the fitting list written", func() bool { return len(h.list(t)) == fits })

	refused := func() float64 { return value(m.Writes.WithLabelValues("update", "too_large")) }
	if refused() != 0 {
		t.Fatalf("too_large is %v before the list grew", refused())
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, all[fits], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three refused writes counted", func() bool { return refused() >= 3 })
	if got := len(h.list(t)); got != fits {
		t.Errorf("the ConfigMap holds %d nodes, want the last list written (%d)", got, fits)
	}
	const msg = "nodes list too large for a ConfigMap"
	if n := logs.Count(msg); n != 1 {
		t.Errorf("%q logged %d times over %v refused writes, want once", msg, n, refused())
	}
	if bytes := value(m.Bytes); bytes <= maxConfigMapBytes {
		t.Errorf("nodeping_controller_nodes_list_bytes is %v, want the refused size", bytes)
	}

	for i := range 2 {
		if err := client.CoreV1().Nodes().Delete(ctx, all[i].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the list written again once it fits", func() bool { return len(h.list(t)) == fits-1 })
	if n := logs.Count("nodes list fits a ConfigMap again"); n != 1 {
		t.Errorf("the return under the limit logged %d times, want once", n)
	}
	after := refused()
	time.Sleep(50 * time.Millisecond)
	if refused() != after {
		t.Errorf("too_large kept growing (%v -> %v) after the list fit again", after, refused())
	}
}

// value reads a counter's or gauge's current value.
func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

// TestResyncKeepsLastSyncFresh: with no event at all, the controller still compares the list with
// the ConfigMap every Resync, so the last sync timestamp stays fresh, and writes nothing.
func TestResyncKeepsLastSyncFresh(t *testing.T) {
	client := fake.NewClientset(node("a", "", true, "InternalIP=10.0.0.1"))
	m := NewMetrics(prometheus.NewRegistry())
	c := New(Config{Namespace: ns, Name: cmName, Resync: 20 * time.Millisecond}, client, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	h := run(t, c, client)
	waitFor(t, "the list written", func() bool { return len(h.list(t)) == 1 })
	first, renders := value(m.LastSync), value(m.Renders)
	waitFor(t, "three resyncs", func() bool { return value(m.Renders) >= renders+3 && value(m.LastSync) > first })
	// Writes that succeeded: a resync that finds the cache behind its own create tries to create
	// again, is told the ConfigMap exists, reads it and writes nothing.
	if n := value(m.Writes.WithLabelValues("create", "ok")) + value(m.Writes.WithLabelValues("update", "ok")); n != 1 {
		t.Errorf("%v ConfigMap writes, want 1: a resync of an unchanged list writes nothing", n)
	}
}

// TestSkippedNodesLoggedOnce: a node without a usable address is warned about once, not on every
// resync's render, and counted all along.
func TestSkippedNodesLoggedOnce(t *testing.T) {
	client := fake.NewClientset(node("a", "", true, "InternalIP=10.0.0.1"), node("b", "", true))
	m := NewMetrics(prometheus.NewRegistry())
	logs := &logbuf.Buffer{}
	c := New(Config{Namespace: ns, Name: cmName, Resync: 20 * time.Millisecond}, client, slog.New(slog.NewTextHandler(logs, nil)), m)
	h := run(t, c, client)
	waitFor(t, "the list written", func() bool { return len(h.list(t)) == 1 })
	renders := value(m.Renders)
	waitFor(t, "three resyncs", func() bool { return value(m.Renders) >= renders+3 })
	const msg = "nodes without a usable address left out of the list"
	if n := logs.Count(msg); n != 1 {
		t.Errorf("%q logged %d times over %v renders, want once", msg, n, value(m.Renders))
	}
	if v := value(m.Nodes.WithLabelValues("skipped")); v != 1 {
		t.Errorf(`nodeping_controller_nodes{state="skipped"} = %v, want 1`, v)
	}
}
