package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// Debounce gathers a burst of Node events (a rolling upgrade, say) into one write.
	Debounce time.Duration
	// MaxBackoff caps the wait between retries after API errors.
	MaxBackoff time.Duration
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
}

// Metrics are the controller's own.
type Metrics struct {
	Writes   *prometheus.CounterVec
	Renders  prometheus.Counter
	Nodes    *prometheus.GaugeVec
	LastSync prometheus.Gauge
	Bytes    prometheus.Gauge
	Leader   prometheus.Gauge
}

// NewMetrics registers the controller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nodeping_controller_configmap_writes_total",
			Help: "Writes of the nodes-list ConfigMap, by operation (create, update) and result (ok, error)."}, []string{"operation", "result"}),
		Renders: prometheus.NewCounter(prometheus.CounterOpts{Name: "nodeping_controller_renders_total",
			Help: "Renders of the nodes list from the Node informer's cache."}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nodeping_controller_nodes",
			Help: "Nodes in the last render, by state: ready, not_ready, cordoned, or skipped (no usable address)."}, []string{"state"}),
		LastSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_last_sync_timestamp_seconds",
			Help: "When the ConfigMap was last known to match the Nodes, in seconds since the Unix epoch."}),
		Bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_nodes_list_bytes",
			Help: "Size of the rendered nodes list; a ConfigMap holds at most 1 MiB."}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeping_controller_leader",
			Help: "1 while this replica holds the leader lease and writes the ConfigMap."}),
	}
	reg.MustRegister(m.Writes, m.Renders, m.Nodes, m.LastSync, m.Bytes, m.Leader)
	return m
}

// maxConfigMapBytes is the API server's limit on a ConfigMap's data.
const maxConfigMapBytes = 1 << 20

// New builds a controller on client.
func New(cfg Config, client kubernetes.Interface, log *slog.Logger, m *Metrics) *Controller {
	if cfg.Key == "" {
		cfg.Key = "nodes.json"
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	c := &Controller{cfg: cfg, client: client, log: log, metrics: m, trigger: make(chan struct{}, 1)}
	c.factory = informers.NewSharedInformerFactory(client, 0)
	c.cmInf = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + cfg.Name }))
	nodeInf := c.factory.Core().V1().Nodes()
	cmInf := c.cmInf.Core().V1().ConfigMaps()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(any, any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	nodeInf.Informer().AddEventHandler(handler)
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
	backoff := time.Duration(0)
	c.kick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		}
		// Gather the rest of a burst of events into this one sync.
		if c.cfg.Debounce > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.cfg.Debounce):
			}
		}
		if err := c.Sync(ctx); err != nil {
			backoff = min(max(2*backoff, time.Second), c.cfg.MaxBackoff)
			c.log.Error("sync failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			c.kick()
			continue
		}
		backoff = 0
	}
}

// Sync renders the nodes list and writes the ConfigMap if its content differs.
func (c *Controller) Sync(ctx context.Context) error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes from cache: %w", err)
	}
	l, skipped := Render(nodes)
	data, err := nodelist.Encode(l)
	if err != nil {
		return err
	}
	c.metrics.Renders.Inc()
	c.metrics.Bytes.Set(float64(len(data)))
	counts := map[string]int{"ready": 0, "not_ready": 0, "cordoned": 0, "skipped": len(skipped)}
	for _, n := range l.Nodes {
		switch {
		case !n.Ready:
			counts["not_ready"]++
		case !n.Schedulable:
			counts["cordoned"]++
		default:
			counts["ready"]++
		}
	}
	for k, v := range counts {
		c.metrics.Nodes.WithLabelValues(k).Set(float64(v))
	}
	if len(skipped) > 0 {
		c.log.Warn("nodes without a usable address left out of the list", "nodes", skipped)
	}
	if len(data) > maxConfigMapBytes {
		return fmt.Errorf("nodes list is %d bytes, over a ConfigMap's 1 MiB", len(data))
	}
	cm, err := c.cms.ConfigMaps(c.cfg.Namespace).Get(c.cfg.Name)
	switch {
	case apierrors.IsNotFound(err):
		cm = &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: c.cfg.Name, Namespace: c.cfg.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "nodeping", "app.kubernetes.io/managed-by": "nodeping-controller"}},
			Data: map[string]string{c.cfg.Key: string(data)},
		}
		_, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return c.wrote("create", err, len(l.Nodes))
		}
		// Created since the cache last heard: read it from the API server and compare.
		if cm, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Get(ctx, c.cfg.Name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("get configmap: %w", err)
		}
	case err != nil:
		return fmt.Errorf("get configmap from cache: %w", err)
	}
	if bytes.Equal([]byte(cm.Data[c.cfg.Key]), data) {
		c.metrics.LastSync.SetToCurrentTime()
		return nil // heartbeats and other changes that do not touch the list: no write
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[c.cfg.Key] = string(data)
	_, err = c.client.CoreV1().ConfigMaps(c.cfg.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	return c.wrote("update", err, len(l.Nodes))
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
