package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// ServerLimits bound what one client can hold of the metrics and health server: each phase of a
// request has a deadline, an idle keep-alive connection is closed, and at most MaxConns
// connections are served at once (more wait in the listen queue).
type ServerLimits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConns                                                  int
}

// DefaultServerLimits fit the server's clients: Prometheus scrapes (two replicas, each keeping
// its connection between scrapes of 30s or 60s) and the kubelet's probes.
func DefaultServerLimits() ServerLimits {
	return ServerLimits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second, MaxConns: 32}
}

// newServer returns the server of /metrics (from g) and /healthz, with limits' timeouts.
func newServer(g prometheus.Gatherer, limits ServerLimits) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	// Healthy while the process serves: a follower waiting for the Lease is healthy too, so both
	// replicas pass their probes and a rolling update completes.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return &http.Server{Handler: mux, ReadHeaderTimeout: limits.ReadHeaderTimeout, ReadTimeout: limits.ReadTimeout,
		WriteTimeout: limits.WriteTimeout, IdleTimeout: limits.IdleTimeout}
}

// Serve listens on addr and serves /metrics (from g) and /healthz there, within limits, until
// ctx ends; it then shuts the server down. It returns when the server has stopped: nil after ctx
// ended, the error otherwise.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, limits ServerLimits) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, l, g, limits)
}

// ServeListener is Serve on a listener it takes over.
func ServeListener(ctx context.Context, l net.Listener, g prometheus.Gatherer, limits ServerLimits) error {
	srv := newServer(g, limits)
	if limits.MaxConns > 0 {
		l = netutil.LimitListener(l, limits.MaxConns)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			srv.Shutdown(context.Background())
		case <-done:
		}
	}()
	err := srv.Serve(l)
	close(done)
	<-stopped
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	}
	return nil
}
