package controller

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// countingListener follows the connections the server accepts through it: how many are open,
// and the most at once. It sits beneath ServeListener's connection cap, and a connection counts
// as closed before the cap lets the next one in, so the most is exact (the server's ConnState
// hook reports StateClosed only after the cap has let the next one in).
type countingListener struct {
	net.Listener
	mu         sync.Mutex
	open, most int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open++
	l.most = max(l.most, l.open)
	return &countedConn{Conn: c, l: l}, nil
}

func (l *countingListener) max() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.most
}

// countedConn is a connection of a countingListener.
type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		c.l.open--
	})
	return c.Conn.Close()
}

// get sends one keep-alive request on conn and reads its answer.
func get(t *testing.T, conn net.Conn, r *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound for a broken server, not a wait
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, string(body)
}

// TestServerLimits runs the metrics server on loopback, each case with its limits: an idle
// keep-alive connection is closed by IdleTimeout (ReadTimeout is far longer, so nothing else
// closes it), and no more than MaxConns connections are served at once.
func TestServerLimits(t *testing.T) {
	long := 30 * time.Second
	cases := []struct {
		name   string
		limits ServerLimits
		check  func(t *testing.T, addr string, conns *countingListener)
	}{
		{"idle timeout closes an idle connection", ServerLimits{ReadHeaderTimeout: long, ReadTimeout: long, WriteTimeout: long, IdleTimeout: 200 * time.Millisecond, MaxConns: 4},
			func(t *testing.T, addr string, _ *countingListener) {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				r := bufio.NewReader(conn)
				// Taken before the request: the server starts the idle timeout once it has answered,
				// which may be before this side has read the answer.
				sent := time.Now()
				resp, body := get(t, conn, r, "/healthz")
				if resp.StatusCode != 200 || body != "ok\n" || resp.Close {
					t.Fatalf("/healthz: %d %q, close %v; want 200, ok and a kept-alive connection", resp.StatusCode, body, resp.Close)
				}
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := r.Read(make([]byte, 1))
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the idle connection stayed open for 10s")
				}
				if n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("read on the idle connection: %d bytes, %v; want the server to close it (EOF)", n, err)
				}
				if d := time.Since(sent); d < 200*time.Millisecond {
					t.Errorf("closed %s after the request, before the 200ms IdleTimeout", d)
				}
			}},
		{"the connection cap holds", ServerLimits{ReadHeaderTimeout: long, ReadTimeout: long, WriteTimeout: long, IdleTimeout: long, MaxConns: 2},
			func(t *testing.T, addr string, conns *countingListener) {
				// Two kept-alive connections take the cap.
				var held []net.Conn
				for range 2 {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					resp, body := get(t, conn, bufio.NewReader(conn), "/metrics")
					if resp.StatusCode != 200 || !strings.Contains(body, "nodeping_controller_leader") {
						t.Fatalf("/metrics: %d, want 200 and the controller's metrics:\n%s", resp.StatusCode, body)
					}
					held = append(held, conn)
				}
				// A third connects (the kernel queues it) but is not served while they stay.
				third, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer third.Close()
				if _, err := io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				// Not a wait for something: the chance a server without the cap gets to answer.
				third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if n, err := third.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("third connection beyond the cap of 2: read %d bytes, %v; want no answer while two are held", n, err)
				}
				// One held connection leaves: the third is served.
				held[0].Close()
				resp, body := get(t, third, bufio.NewReader(third), "/healthz")
				if resp.StatusCode != 200 || body != "ok\n" {
					t.Errorf("third connection after one left: %d %q, want 200 ok", resp.StatusCode, body)
				}
				if m := conns.max(); m != 2 {
					t.Errorf("at most %d connections open at once, want the cap, 2", m)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			NewMetrics(reg)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			conns := &countingListener{Listener: l}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- ServeListener(ctx, conns, reg, tc.limits) }()
			tc.check(t, l.Addr().String(), conns)
			cancel()
			if err := <-served; err != nil {
				t.Errorf("ServeListener after the context ended: %v, want nil", err)
			}
		})
	}
}

// TestServeListenError: an address that cannot be listened on is an error that names it.
func TestServeListenError(t *testing.T) {
	err := Serve(context.Background(), "127.0.0.1:-1", prometheus.NewRegistry(), DefaultServerLimits())
	if err == nil || !strings.HasPrefix(err.Error(), "listen on 127.0.0.1:-1: ") {
		t.Errorf("Serve: %v, want a listen error naming the address", err)
	}
}

// TestDefaultServerLimits: every limit is set, and the idle timeout outlasts a 60s scrape
// interval, so that Prometheus keeps its connection.
func TestDefaultServerLimits(t *testing.T) {
	l := DefaultServerLimits()
	srv := newServer(prometheus.NewRegistry(), l)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 60*time.Second || l.MaxConns <= 0 {
		t.Errorf("server %+v, limits %+v: want every timeout set, idle over 60s, and a connection cap", srv, l)
	}
}
