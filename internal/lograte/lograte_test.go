package lograte

import (
	"testing"
	"time"
)

// TestLimiter: one line per key and period, the lines held back counted, each key apart.
func TestLimiter(t *testing.T) {
	l := Limiter{Period: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		key      string
		at       time.Duration
		ok       bool
		wantHeld int
	}{
		{"a", 0, true, 0}, {"a", time.Second, false, 0}, {"b", time.Second, true, 0}, {"a", 5 * time.Second, false, 0},
		{"a", 10*time.Second - time.Nanosecond, false, 0}, {"a", 10 * time.Second, true, 3}, {"a", 11 * time.Second, false, 0},
		{"a", 30 * time.Second, true, 1},
	}
	for _, s := range steps {
		ok, n := l.Allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.wantHeld {
			t.Errorf("%s at %s: allow %v (%d held), want %v (%d)", s.key, s.at, ok, n, s.ok, s.wantHeld)
		}
	}
	l.Prune(t0.Add(35 * time.Second))
	if n := len(l.last); n != 1 {
		t.Errorf("after prune at 35s: %d keys, want only a (logged at 30s; b at 1s is gone)", n)
	}
}

func TestEvery(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", 10 * time.Second: "10s", time.Hour: "1h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
	} {
		if got := (&Limiter{Period: d}).Every(); got != want {
			t.Errorf("Every of %s = %q, want %q", d, got, want)
		}
	}
}
