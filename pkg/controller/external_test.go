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
		WatchExternal(ctx, p, 10*time.Millisecond, -1, slog.New(slog.NewTextHandler(io.Discard, nil)), m, func(e []nodelist.External) {
			mu.Lock()
			sets = append(sets, e)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sets) }
	waitFor(t, "first read", func() bool { return count() == 1 })
	replaceFile(t, p, `{"external_targets":[`)
	waitFor(t, "bad edit counted", func() bool { return counterValue(m.ExternalErrors) == 1 })
	replaceFile(t, p, `{"external_targets":[{"name":"ntp","host":"192.0.2.123"}]}`)
	waitFor(t, "good edit read", func() bool { return count() == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(sets[1]) != 1 || sets[1][0].Name != "ntp" {
		t.Errorf("second set %v, want ntp", sets[1])
	}
}

// replaceFile gives path new content in one rename, as a ConfigMap mount does, so that the watcher
// never reads a half-written file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func TestLimitExternal(t *testing.T) {
	ext := []nodelist.External{
		{Name: "imds", Host: "169.254.169.254"}, {Name: "imds6", Host: "fd00:ec2::254"}, {Name: "alibaba", Host: "100.100.100.200"},
		{Name: "ecs", Host: "169.254.170.2"}, {Name: "lo", Host: "127.0.0.1"}, {Name: "any", Host: "0.0.0.0"},
		{Name: "mcast", Host: "ff02::1"}, {Name: "ll", Host: "fe80::1%eth0"},
		{Name: "dns", Host: "192.0.2.53"}, {Name: "gw", Host: "gw.example.org"}, {Name: "ntp", Host: "2001:db8::123"},
	}
	kept, skips := LimitExternal(ext, 2)
	var got []string
	for _, e := range kept {
		got = append(got, e.Name)
	}
	if strings.Join(got, " ") != "dns gw" {
		t.Errorf("kept %v, want dns gw", got)
	}
	var lines []string
	for _, s := range skips {
		lines = append(lines, s.String())
	}
	want := []string{
		`"imds": refused_address: metadata address 169.254.169.254 refused`,
		`"imds6": refused_address: metadata address fd00:ec2::254 refused`,
		`"alibaba": refused_address: metadata address 100.100.100.200 refused`,
		`"ecs": refused_address: metadata address 169.254.170.2 refused`,
		`"lo": refused_address: loopback address 127.0.0.1 refused`,
		`"any": refused_address: unspecified address 0.0.0.0 refused`,
		`"mcast": refused_address: multicast address ff02::1 refused`,
		`"ll": refused_address: link-local address fe80::1%eth0 refused`,
		`"ntp": too_many_external: 3 external targets, at most 2 are probed (--max-external-targets)`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("skips:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestWatchExternalLimits: the targets set are within the limits, and each one left out is
// counted by reason.
func TestWatchExternalLimits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "external.json")
	os.WriteFile(p, []byte(`{"external_targets":[{"name":"imds","host":"169.254.169.254"},{"name":"a","host":"192.0.2.1"},`+
		`{"name":"b","host":"192.0.2.2"},{"name":"c","host":"192.0.2.3"}]}`), 0o644)
	m := NewMetrics(prometheus.NewRegistry())
	got := make(chan []nodelist.External, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchExternal(ctx, p, time.Hour, 2, slog.New(slog.NewTextHandler(io.Discard, nil)), m, func(e []nodelist.External) { got <- e })
	}()
	defer func() { cancel(); <-done }()
	var ext []nodelist.External
	select {
	case ext = <-got:
	case <-time.After(10 * time.Second): // a bound for a broken watcher, not a wait
		t.Fatal("WatchExternal set no targets within 10s of its first read")
	}
	if len(ext) != 2 || ext[0].Name != "a" || ext[1].Name != "b" {
		t.Errorf("set %v, want a and b", ext)
	}
	for reason, want := range map[string]float64{nodelist.ReasonRefusedAddress: 1, nodelist.ReasonTooManyExternal: 1} {
		if v := counterValue(m.ExternalSkipped.WithLabelValues(reason)); v != want {
			t.Errorf("skipped{reason=%q} %v, want %v", reason, v, want)
		}
	}
}
