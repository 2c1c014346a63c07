package relay

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestScheduleDelayAndJitter: every packet is held Base±Jitter (never negative), the holds
// spread over the whole range with a mean near Base, and packets never overtake each other.
func TestScheduleDelayAndJitter(t *testing.T) {
	cases := []struct {
		name    string
		d       Delay
		spacing time.Duration // between arrivals
		min     time.Duration
		max     time.Duration
	}{
		{"fixed", Delay{Base: 25 * time.Millisecond}, time.Millisecond, 25 * time.Millisecond, 25 * time.Millisecond},
		{"zero", Delay{}, time.Millisecond, 0, 0},
		{"jitter", Delay{Base: 25 * time.Millisecond, Jitter: 5 * time.Millisecond}, 20 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond},
		{"jitter clamped at zero", Delay{Base: time.Millisecond, Jitter: 3 * time.Millisecond}, 20 * time.Millisecond, 0, 4 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSchedule(tc.d, rand.New(rand.NewPCG(1, 2)))
			const n = 10000
			var sum time.Duration
			lo, hi := time.Duration(1<<62), time.Duration(-1)
			var last time.Time
			for i := 0; i < n; i++ {
				now := t0.Add(time.Duration(i) * tc.spacing)
				due := s.Due(now)
				hold := due.Sub(now)
				if due.Before(last) {
					t.Fatalf("packet %d leaves at %v, before the one ahead of it (%v)", i, due, last)
				}
				last = due
				sum += hold
				lo, hi = min(lo, hold), max(hi, hold)
			}
			if lo < tc.min || hi > tc.max {
				t.Errorf("holds %v..%v, want within %v..%v", lo, hi, tc.min, tc.max)
			}
			if tc.d.Jitter > 0 && tc.min > 0 {
				// uniform: the extremes are reached, and the mean is the base
				if lo > tc.min+tc.d.Jitter/10 || hi < tc.max-tc.d.Jitter/10 {
					t.Errorf("holds %v..%v do not cover %v..%v", lo, hi, tc.min, tc.max)
				}
				if mean := sum / n; mean < tc.d.Base-tc.d.Jitter/20 || mean > tc.d.Base+tc.d.Jitter/20 {
					t.Errorf("mean hold %v, want about %v", mean, tc.d.Base)
				}
			}
		})
	}
}

// TestScheduleNoOvertaking: with jitter larger than the gap between packets, a packet whose
// sample is short leaves right after the one before, not ahead of it.
func TestScheduleNoOvertaking(t *testing.T) {
	s := NewSchedule(Delay{Base: 10 * time.Millisecond, Jitter: 10 * time.Millisecond}, rand.New(rand.NewPCG(3, 4)))
	var last time.Time
	clamped := 0
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		due := s.Due(now)
		if due.Before(last) {
			t.Fatalf("packet %d overtakes", i)
		}
		if due.Equal(last) {
			clamped++
		}
		last = due
	}
	if clamped == 0 {
		t.Error("no packet was held back behind the one ahead; the test does not exercise ordering")
	}
}

// TestScheduleSet: a new delay applies to packets arriving after the change.
func TestScheduleSet(t *testing.T) {
	s := NewSchedule(Delay{Base: 50 * time.Millisecond}, rand.New(rand.NewPCG(1, 1)))
	if got := s.Due(t0).Sub(t0); got != 50*time.Millisecond {
		t.Fatalf("hold %v, want 50ms", got)
	}
	s.Set(Delay{})
	now := t0.Add(time.Second)
	if got := s.Due(now).Sub(now); got != 0 {
		t.Errorf("after Set(0): hold %v, want 0", got)
	}
}

func TestDelayValidate(t *testing.T) {
	for _, tc := range []struct {
		d  Delay
		ok bool
	}{
		{Delay{Base: 50 * time.Millisecond, Jitter: 5 * time.Millisecond}, true},
		{Delay{}, true},
		{Delay{Base: -time.Millisecond}, false},
		{Delay{Jitter: -time.Millisecond}, false},
		{Delay{Base: 11 * time.Second}, false},
	} {
		if err := tc.d.Validate(); (err == nil) != tc.ok {
			t.Errorf("%v.Validate() = %v, want ok=%v", tc.d, err, tc.ok)
		}
	}
}

// packetReader hands out one queued packet per Read, then io.EOF once closed.
type packetReader struct {
	ch chan []byte
}

func (r *packetReader) Read(b []byte) (int, error) {
	p, ok := <-r.ch
	if !ok {
		return 0, io.EOF
	}
	return copy(b, p), nil
}

type timedWriter struct {
	mu   sync.Mutex
	pkts [][]byte
	at   []time.Time
}

func (w *timedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = append(w.pkts, append([]byte(nil), b...))
	w.at = append(w.at, time.Now())
	return len(b), nil
}

// TestPipe: packets come out whole, in order, no earlier than the delay after they went in; the
// pipe stops when its source ends, after writing what it held.
func TestPipe(t *testing.T) {
	src := &packetReader{ch: make(chan []byte)}
	dst := &timedWriter{}
	const d = 30 * time.Millisecond
	p := StartPipe(src, dst, NewSchedule(Delay{Base: d}, rand.New(rand.NewPCG(1, 1))))
	var sent []time.Time
	for i := 0; i < 5; i++ {
		sent = append(sent, time.Now())
		src.ch <- bytes.Repeat([]byte{byte(i)}, 100+i)
	}
	close(src.ch)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(dst.pkts) != 5 || p.Forwarded() != 5 || p.Dropped() != 0 {
		t.Fatalf("wrote %d packets (forwarded %d, dropped %d), want 5", len(dst.pkts), p.Forwarded(), p.Dropped())
	}
	for i, pkt := range dst.pkts {
		if len(pkt) != 100+i || pkt[0] != byte(i) {
			t.Errorf("packet %d: %d bytes of %d, want %d of %d", i, len(pkt), pkt[0], 100+i, i)
		}
		if held := dst.at[i].Sub(sent[i]); held < d {
			t.Errorf("packet %d held %v, want at least %v", i, held, d)
		}
	}
}
