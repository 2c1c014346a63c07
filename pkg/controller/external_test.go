package controller

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

func TestLoadExternal(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content string // content "-" means no file
		want, err     string
	}{
		{"missing", "-", "", ""},
		{"empty", " \n", "", ""},
		{"targets", `{"external_targets":[{"name":"dns","host":"192.0.2.53"},{"host":"example.org"}]}`, "dns=192.0.2.53 example.org=example.org", ""},
		{"nodes", `{"nodes":[{"name":"a","ipAddress":"10.0.0.1"}]}`, "", "holds 1 nodes"},
		{"no host", `{"external_targets":[{"name":"dns"}]}`, "", "no_host"},
		{"not json", `{"external_targets":`, "", "decode nodes list"},
	}
	for _, tc := range cases {
		p := filepath.Join(dir, tc.name)
		if tc.content != "-" {
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ext, err := LoadExternal(p)
		var got []string
		for _, e := range ext {
			got = append(got, e.Name+"="+e.Host)
		}
		if strings.Join(got, " ") != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q, error containing %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestWatchExternalKeepsLastGood: a broken edit is counted and the targets read before stay.
func TestWatchExternalKeepsLastGood(t *testing.T) {
	p := filepath.Join(t.TempDir(), "external.json")
	os.WriteFile(p, []byte(`{"external_targets":[{"name":"dns","host":"192.0.2.53"}]}`), 0o644)
	m := NewMetrics(prometheus.NewRegistry())
	var (
		mu   sync.Mutex
		sets [][]nodelist.External
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchExternal(ctx, p, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), m, func(e []nodelist.External) {
			mu.Lock()
			sets = append(sets, e)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sets) }
	waitFor(t, "first read", func() bool { return count() == 1 })
	os.WriteFile(p, []byte(`{"external_targets":[`), 0o644)
	waitFor(t, "bad edit counted", func() bool { return counterValue(m.ExternalErrors) == 1 })
	os.WriteFile(p, []byte(`{"external_targets":[{"name":"ntp","host":"192.0.2.123"}]}`), 0o644)
	waitFor(t, "good edit read", func() bool { return count() == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(sets[1]) != 1 || sets[1][0].Name != "ntp" {
		t.Errorf("second set %v, want ntp", sets[1])
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
