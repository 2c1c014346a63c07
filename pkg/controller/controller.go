package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Config names the ConfigMap the controller owns.
type Config struct {
	Namespace, Name string
	// Key is the ConfigMap's data key; agents read it as a file of that name.
	Key string
	// Debounce is the quiet period: a sync waits until no relevant event came for this long, so a
	// burst of Node events (a rolling upgrade, nodes joining) becomes one write.
	Debounce time.Duration
	// MaxWait bounds that wait, counted from the first event of a burst, so a steady stream of
	// events still gets written. Zero means 5 times Debounce.
	MaxWait time.Duration
	// MinWriteInterval caps the write rate: no two ConfigMap writes closer than this. Every kubelet
	// re-reads the whole ConfigMap after each write.
	MinWriteInterval time.Duration
	// MaxBackoff caps the wait between retries after API errors and refused writes.
	MaxBackoff time.Duration
	// Resync is how often the list is rendered and compared with the ConfigMap without any event
	// (a write only if they differ), so that nodeping_controller_last_sync_timestamp_seconds stays
	// fresh in a quiet cluster. Zero means 5 minutes.
	Resync time.Duration
}

// Controller renders Nodes into the nodes-list ConfigMap.
type Controller struct {
	cfg     Config
	client  kubernetes.Interface
	log     *slog.Logger
	metrics *Metrics

	nodes   corelisters.NodeLister
	cms     corelisters.ConfigMapLister
	synced  []cache.InformerSynced
	factory informers.SharedInformerFactory
	cmInf   informers.SharedInformerFactory
	trigger chan struct{}

	extMu    sync.Mutex
	external []nodelist.External

	// tooLarge is the size of the last rendered list refused for being over a ConfigMap's limit,
	// 0 while the list fits: the refusal is logged once per size, not once per retry.
	tooLargeMu sync.Mutex
	tooLarge   int
	// skipped names the nodes the last render left out (no usable address), as last logged.
	skipped string
}

// Metrics are the controller's own.
type Metrics struct {
	Writes   *prometheus.CounterVec
	Renders  prometheus.Counter
	Nodes    *prometheus.GaugeVec
	LastSync prometheus.Gauge
	Bytes    prometheus.Gauge
	Leader   prometheus.Gauge
	Events   *prometheus.CounterVec
	// ExternalErrors counts reads of the external targets file that were rejected.
	ExternalErrors prometheus.Counter
	// ExternalSkipped counts external targets left out by LimitExternal, by reason.
	ExternalSkipped *prometheus.CounterVec
}

// NewMetrics registers the controller's metrics with reg (promauto: a metric cannot be declared
// and left unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Writes: f.NewCounterVec(prometheus.CounterOpts{Name: "nodeping_controller_configmap_writes_total",
			Help: "Writes of the nodes-list ConfigMap, by operation (create, update) and result (ok, error, or too_large: not sent because the list is over a ConfigMap's 1 MiB, and the ConfigMap keeps the last list written)."}, []string{"operation", "result"}),
		Renders: f.NewCounter(prometheus.CounterOpts{Name: "nodeping_controller_renders_total",
			Help: "Renders of the nodes list from the Node informer's cache."}),
		Nodes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "nodeping_controller_nodes",
			Help: "Nodes in the last render, by state: ready, not_ready, cordoned, or skipped (no usable address)."}, []string{"state"}),
		LastSync: f.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_last_sync_timestamp_seconds", Help: "When the ConfigMap was last known to match the Nodes, in seconds since the Unix epoch."}),
		Bytes:    f.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_nodes_list_bytes", Help: "Size of the rendered nodes list; a ConfigMap holds at most 1 MiB."}),
		Leader:   f.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_leader", Help: "1 while this replica holds the leader lease and writes the ConfigMap."}),
		Events: f.NewCounterVec(prometheus.CounterOpts{Name: "nodeping_controller_node_events_total",
			Help: "Node events from the watch, by whether they change the nodes list (relevant: true, false); heartbeats are false and cost no render."}, []string{"relevant"}),
		ExternalErrors: f.NewCounter(prometheus.CounterOpts{Name: "nodeping_controller_external_targets_errors_total",
			Help: "Reads of --external-targets-file that were rejected (the last good targets stay)."}),
		ExternalSkipped: f.NewCounterVec(prometheus.CounterOpts{Name: "nodeping_controller_external_targets_skipped_total",
			Help: "External targets left out of the nodes list, counted each time the content of --external-targets-file changes, by reason: refused_address (loopback, unspecified, link-local, multicast or a cloud metadata address), too_many_external (past --max-external-targets)."}, []string{"reason"}),
	}
	// Every series exists from the start at 0, so that the first refused write or error is an
	// increase that rules see.
	for _, op := range []string{"create", "update"} {
		for _, result := range []string{"ok", "error", "too_large"} {
			m.Writes.WithLabelValues(op, result)
		}
	}
	for _, state := range []string{nodelist.StateReady, nodelist.StateNotReady, nodelist.StateCordoned, "skipped"} {
		m.Nodes.WithLabelValues(state)
	}
	for _, reason := range []string{nodelist.ReasonRefusedAddress, nodelist.ReasonTooManyExternal} {
		m.ExternalSkipped.WithLabelValues(reason)
	}
	for _, relevant := range []string{"true", "false"} {
		m.Events.WithLabelValues(relevant)
	}
	return m
}

// maxConfigMapBytes is the API server's limit on a ConfigMap's data.
const maxConfigMapBytes = 1 << 20

// errTooLarge marks a sync that rendered a list over maxConfigMapBytes and wrote nothing.
var errTooLarge = errors.New("nodes list over a ConfigMap's 1 MiB")

// New builds a controller on client.
func New(cfg Config, client kubernetes.Interface, log *slog.Logger, m *Metrics) *Controller {
	if cfg.Key == "" {
		cfg.Key = "nodes.json"
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 5 * cfg.Debounce
	}
	if cfg.Resync == 0 {
		cfg.Resync = 5 * time.Minute
	}
	c := &Controller{cfg: cfg, client: client, log: log, metrics: m, trigger: make(chan struct{}, 1)}
	// The cache holds only what the nodes list needs (SlimNode): a real Node is 10-25 KB, mostly
	// images and managedFields, which at 5,000 nodes is most of the controller's memory.
	c.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(SlimNode))
	c.cmInf = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + cfg.Name }))
	nodeInf := c.factory.Core().V1().Nodes()
	cmInf := c.cmInf.Core().V1().ConfigMaps()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(any, any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.metrics.Events.WithLabelValues("true").Inc(); c.kick() },
		UpdateFunc: func(old, cur any) {
			// Heartbeats and status churn that the list does not show cost no render and no write.
			if !listChanges(old, cur) {
				c.metrics.Events.WithLabelValues("false").Inc()
				return
			}
			c.metrics.Events.WithLabelValues("true").Inc()
			c.kick()
		},
		DeleteFunc: func(any) { c.metrics.Events.WithLabelValues("true").Inc(); c.kick() },
	})
	cmInf.Informer().AddEventHandler(handler) // a ConfigMap edited or deleted by hand is repaired
	c.nodes, c.cms = nodeInf.Lister(), cmInf.Lister()
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, cmInf.Informer().HasSynced}
	return c
}

func (c *Controller) kick() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run starts the informers and keeps the ConfigMap in step with the Nodes until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	c.cmInf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("node and configmap informers did not sync")
	}
	c.log.Info("informers synced; keeping the nodes list in step", "configmap", c.cfg.Namespace+"/"+c.cfg.Name)
	var (
		backoff   time.Duration
		lastWrite time.Time
	)
	c.kick()
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		case <-resync.C:
		}
		// Gather the rest of a burst: wait for a quiet period, but no longer than MaxWait.
		if c.cfg.Debounce > 0 && !c.settle(ctx, time.Now().Add(c.cfg.MaxWait)) {
			return nil
		}
		// Cap the write rate; events that come meanwhile are part of this sync.
		if wait := lastWrite.Add(c.cfg.MinWriteInterval).Sub(time.Now()); !lastWrite.IsZero() && wait > 0 {
			if !c.sleep(ctx, wait) {
				return nil
			}
		}
		select { // this sync reads the cache after every event so far
		case <-c.trigger:
		default:
		}
		wrote, err := c.sync(ctx)
		if wrote {
			lastWrite = time.Now()
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), c.cfg.MaxBackoff)
			if !errors.Is(err, errTooLarge) { // logged by sync, once per size
				c.log.Error("sync failed; retrying", "err", err, "in", backoff)
			}
			if !c.sleep(ctx, backoff) {
				return nil
			}
			c.kick()
			continue
		}
		backoff = 0
	}
}

// settle waits until no event came for the quiet period, or until deadline. False when ctx ended.
func (c *Controller) settle(ctx context.Context, deadline time.Time) bool {
	for {
		wait := min(c.cfg.Debounce, deadline.Sub(time.Now()))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-c.trigger:
			t.Stop() // another event: the quiet period starts again
		case <-t.C:
			return true
		}
	}
}

func (c *Controller) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SetExternal sets the external targets written with the nodes, and syncs if they changed.
func (c *Controller) SetExternal(ext []nodelist.External) {
	c.extMu.Lock()
	changed := !slices.Equal(c.external, ext)
	c.external = slices.Clone(ext)
	c.extMu.Unlock()
	if changed {
		c.kick()
	}
}

// Sync renders the nodes list and writes the ConfigMap if its content differs.
func (c *Controller) Sync(ctx context.Context) error {
	_, err := c.sync(ctx)
	return err
}

// sync renders the nodes list and writes the ConfigMap if its content differs. wrote says whether
// a write reached the API server.
func (c *Controller) sync(ctx context.Context) (wrote bool, err error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return false, fmt.Errorf("list nodes from cache: %w", err)
	}
	l, skipped := Render(nodes)
	c.extMu.Lock()
	l.External = slices.Clone(c.external)
	c.extMu.Unlock()
	data, err := nodelist.Encode(l)
	if err != nil {
		return false, err
	}
	c.metrics.Renders.Inc()
	c.metrics.Bytes.Set(float64(len(data)))
	counts := map[string]int{nodelist.StateReady: 0, nodelist.StateNotReady: 0, nodelist.StateCordoned: 0, "skipped": len(skipped)}
	for _, n := range l.Nodes {
		counts[n.State()]++
	}
	for k, v := range counts {
		c.metrics.Nodes.WithLabelValues(k).Set(float64(v))
	}
	// Logged when the set changes, not on every render (resyncs and retries render too);
	// nodeping_controller_nodes{state="skipped"} counts them all along.
	if key := strings.Join(skipped, ","); key != c.skipped {
		if len(skipped) > 0 {
			c.log.Warn("nodes without a usable address left out of the list", "nodes", skipped)
		}
		c.skipped = key
	}
	c.noteFits(len(data))
	cm, err := c.cms.ConfigMaps(c.cfg.Namespace).Get(c.cfg.Name)
	switch {
	case apierrors.IsNotFound(err):
		if len(data) > maxConfigMapBytes {
			return false, c.refuse("create", len(data), len(l.Nodes))
		}
		cm = &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: c.cfg.Name, Namespace: c.cfg.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "nodeping", "app.kubernetes.io/managed-by": "nodeping-controller"}},
			Data: map[string]string{c.cfg.Key: string(data)},
		}
		_, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err == nil, c.wrote("create", err, len(l.Nodes))
		}
		// Created since the cache last heard: read it from the API server and compare.
		if cm, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Get(ctx, c.cfg.Name, metav1.GetOptions{}); err != nil {
			return false, fmt.Errorf("get configmap: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("get configmap from cache: %w", err)
	}
	if bytes.Equal([]byte(cm.Data[c.cfg.Key]), data) {
		c.metrics.LastSync.SetToCurrentTime()
		return false, nil // changes that do not touch the list: no write
	}
	if len(data) > maxConfigMapBytes {
		return false, c.refuse("update", len(data), len(l.Nodes))
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[c.cfg.Key] = string(data)
	_, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	return err == nil, c.wrote("update", err, len(l.Nodes))
}

func (c *Controller) wrote(op string, err error, nodes int) error {
	if err != nil {
		c.metrics.Writes.WithLabelValues(op, "error").Inc()
		return fmt.Errorf("%s configmap %s/%s: %w", op, c.cfg.Namespace, c.cfg.Name, err)
	}
	c.metrics.Writes.WithLabelValues(op, "ok").Inc()
	c.metrics.LastSync.SetToCurrentTime()
	c.log.Info("nodes list written", "operation", op, "nodes", nodes)
	return nil
}

// refuse counts a write not sent because the list is over a ConfigMap's limit (the ConfigMap keeps
// the last list written), and logs it when the size differs from the last refused one.
func (c *Controller) refuse(op string, size, nodes int) error {
	c.metrics.Writes.WithLabelValues(op, "too_large").Inc()
	c.tooLargeMu.Lock()
	changed := c.tooLarge != size
	c.tooLarge = size
	c.tooLargeMu.Unlock()
	if changed {
		c.log.Error("nodes list too large for a ConfigMap; the ConfigMap keeps the last list written, retrying",
			"bytes", size, "limit", maxConfigMapBytes, "nodes", nodes, "operation", op)
	}
	return fmt.Errorf("%s configmap %s/%s: %d bytes: %w", op, c.cfg.Namespace, c.cfg.Name, size, errTooLarge)
}

// noteFits logs, once, that a list refused before fits again.
func (c *Controller) noteFits(size int) {
	if size > maxConfigMapBytes {
		return
	}
	c.tooLargeMu.Lock()
	was := c.tooLarge
	c.tooLarge = 0
	c.tooLargeMu.Unlock()
	if was != 0 {
		c.log.Info("nodes list fits a ConfigMap again", "bytes", size, "limit", maxConfigMapBytes)
	}
}
