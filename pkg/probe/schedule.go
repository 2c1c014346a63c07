package probe

import (
	mrand "math/rand/v2"
	"time"
)

// spread is the one send schedule every engine uses: count probes to each of n targets, the
// targets taking turns in a random order. The target at position p of the order sends its k-th
// probe at
//
//	k*interval + p*interval/n + jitter[p],   0 <= jitter[p] < interval/n
//
// so sends are spread evenly over each interval, each target's probes are exactly interval apart,
// and no two runs (or agents) line up (synchronized bursts inflate latency: goldpinger #69).
// Offsets are from the run's start and never decrease with i.
type spread struct {
	n, count int
	interval int64
	slot     int64
	order    []int32
	jitter   []int64
}

// span is how long a run of count probes per target, interval apart, takes at most when each may
// wait timeout for its answer: the last probe's send time plus its timeout. Every engine's
// Span is this.
func span(count int, interval, timeout time.Duration) time.Duration {
	return time.Duration(count)*interval + timeout
}

// newSpread returns the schedule of one run; rnd supplies the order and the jitter.
func newSpread(n, count int, interval time.Duration, rnd *mrand.Rand) *spread {
	s := &spread{n: n, count: count, interval: int64(interval), order: make([]int32, n), jitter: make([]int64, n)}
	if n == 0 {
		return s
	}
	s.slot = int64(interval) / int64(n)
	for i, p := range rnd.Perm(n) {
		s.order[i] = int32(p)
	}
	if s.slot > 0 {
		for i := range s.jitter {
			s.jitter[i] = rnd.Int64N(s.slot)
		}
	}
	return s
}

// total is the number of sends in the run.
func (s *spread) total() int { return s.n * s.count }

// at returns the i-th send of the run in time order: its offset from the run's start in
// nanoseconds, its target's index, and which of the target's probes it is (0..count-1).
func (s *spread) at(i int) (offset int64, target int, k int) {
	k, p := i/s.n, i%s.n
	return int64(k)*s.interval + int64(p)*s.slot + s.jitter[p], int(s.order[p]), k
}

// newRand returns a randomly seeded source for one run's schedule.
func newRand() *mrand.Rand { return mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())) }

// rebase returns the run's start, moved later when the send due at start+at is more than maxLag
// behind now: after a stall (a CPU-starved or stopped process) the rest of the run keeps its
// spacing, rather than going out at once in one burst that no peer's responder expects.
func rebase(start, at, now, maxLag int64) int64 {
	if lag := now - (start + at); lag > maxLag {
		return start + lag
	}
	return start
}

// maxLag is how far behind its schedule a run may fall before rebase moves it.
func maxLag(interval time.Duration) int64 { return int64(max(interval/4, 50*time.Millisecond)) }
