// Package nodeexporter runs a real prometheus-node-exporter on loopback for tests, with only its
// textfile collector, reading a directory the test writes.
package nodeexporter

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// Start serves dir's *.prom files on a free loopback port and returns the /metrics URL. The
// exporter is killed when the test ends; the test is skipped when node-exporter is not installed.
func Start(t testing.TB, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		t.Skip("skipping: prometheus-node-exporter not installed (apt-get install prometheus-node-exporter)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.textfile", "--collector.textfile.directory="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node-exporter: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return fmt.Sprintf("http://%s/metrics", addr)
}

// Scrape reads url until a body satisfies accept, polling every 50ms for at most within. It
// returns the last body read, and an error when none was accepted in time.
func Scrape(url string, within time.Duration, accept func(body string) bool) (string, error) {
	var (
		body    string
		lastErr error
	)
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			body, lastErr = string(b), rerr
			if rerr == nil && accept(body) {
				return body, nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return body, fmt.Errorf("node-exporter at %s: nothing accepted within %s (last error: %v)", url, within, lastErr)
		}
	}
}
