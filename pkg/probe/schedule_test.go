package probe

import (
	mrand "math/rand/v2"
	"testing"
	"time"
)

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		n, count int
		interval time.Duration
	}{
		{1, 1, time.Second}, {1, 10, 100 * time.Millisecond}, {7, 3, time.Second},
		{1000, 10, time.Second}, {5000, 5, time.Second}, {3, 2, 2 * time.Nanosecond},
	} {
		sp := newSpread(tc.n, tc.count, tc.interval, mrand.New(mrand.NewPCG(1, 2)))
		if sp.total() != tc.n*tc.count {
			t.Fatalf("%+v: total %d", tc, sp.total())
		}
		sends := make([][]int64, tc.n)
		var prev int64
		for i := range sp.total() {
			at, target, k := sp.at(i)
			if at < prev {
				t.Fatalf("%+v: send %d at %d before send %d at %d", tc, i, at, i-1, prev)
			}
			if at < 0 || at >= int64(tc.count)*int64(tc.interval) {
				t.Fatalf("%+v: send %d at %d, outside the run", tc, i, at)
			}
			if k != len(sends[target]) {
				t.Fatalf("%+v: send %d is probe %d of target %d, want %d", tc, i, k, target, len(sends[target]))
			}
			sends[target] = append(sends[target], at)
			prev = at
		}
		for target, ats := range sends {
			if len(ats) != tc.count {
				t.Fatalf("%+v: target %d got %d probes", tc, target, len(ats))
			}
			for k := 1; k < len(ats); k++ {
				if ats[k]-ats[k-1] != int64(tc.interval) {
					t.Errorf("%+v: target %d probes %d apart, want %s", tc, target, ats[k]-ats[k-1], tc.interval)
				}
			}
		}
		// Evenly spread: no window of one slot holds more than two sends.
		if slot := int64(tc.interval) / int64(tc.n); slot > 0 {
			for i := 2; i < sp.total(); i++ {
				a, _, _ := sp.at(i - 2)
				b, _, _ := sp.at(i)
				if b-a >= 2*slot+slot {
					t.Errorf("%+v: sends %d..%d span %d, more than three slots: a gap", tc, i-2, i, b-a)
				}
			}
		}
	}
}

func TestSpreadOrderDiffers(t *testing.T) {
	a := newSpread(100, 1, time.Second, mrand.New(mrand.NewPCG(1, 2)))
	b := newSpread(100, 1, time.Second, mrand.New(mrand.NewPCG(3, 4)))
	same := 0
	for i := range 100 {
		_, x, _ := a.at(i)
		_, y, _ := b.at(i)
		if x == y {
			same++
		}
	}
	if same > 10 {
		t.Errorf("two runs' orders agree in %d of 100 places", same)
	}
}

func TestTCPWorstCase(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  TCPConfig
		n    int
		want time.Duration
	}{
		{"fits: parallel covers a timeout's worth", TCPConfig{Count: 1, Interval: time.Second, Timeout: 500 * time.Millisecond, Parallel: 64}, 100, 1500 * time.Millisecond},
		// 1,000 targets, 64 at a time, 0.9 s each: 16 waves of 0.9 s, the last one's chain starting
		// 40 ms in (target 40 of the first wave, at 1 ms per slot).
		{"overruns: 64 x 0.9s for 1000 dark peers", TCPConfig{Count: 1, Interval: time.Second, Timeout: 900 * time.Millisecond, Parallel: 64}, 1000, 16*900*time.Millisecond + 40*time.Millisecond},
		{"one at a time", TCPConfig{Count: 2, Interval: time.Second, Timeout: time.Second, Parallel: 1}, 3, 6 * time.Second},
		{"no targets", TCPConfig{Count: 1, Interval: time.Second, Timeout: time.Second}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.WorstCase(tc.n)
			// The schedule's last slot of jitter is included, so allow one slot over.
			slack := time.Duration(0)
			if tc.n > 0 {
				slack = tc.cfg.Interval / time.Duration(tc.n)
			}
			if got < tc.want || got > tc.want+slack {
				t.Errorf("WorstCase(%d) = %s, want %s (+ up to %s)", tc.n, got, tc.want, slack)
			}
		})
	}
}

func TestRebase(t *testing.T) {
	for _, tc := range []struct{ start, at, now, maxLag, want int64 }{
		{0, 100, 50, 10, 0},      // early: unchanged
		{0, 100, 105, 10, 0},     // a little late: sent at once, no shift
		{0, 100, 3100, 10, 3000}, // stalled 3 s: the rest shifts by the stall
		{1000, 0, 1011, 10, 1011},
	} {
		if got := rebase(tc.start, tc.at, tc.now, tc.maxLag); got != tc.want {
			t.Errorf("rebase(%d, %d, %d, %d) = %d, want %d", tc.start, tc.at, tc.now, tc.maxLag, got, tc.want)
		}
	}
}
