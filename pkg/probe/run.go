package probe

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// run is the state of one Run of an engine with an in-flight table (ICMP and UDP): the targets,
// their stats, and how many of the run's probes are not yet resolved. Its methods are called with
// the engine's mutex held.
type run struct {
	targets []netip.Addr
	stats   []Stats
	pending int           // probes scheduled but not yet resolved
	done    chan struct{} // closed when pending reaches 0
}

// newRun returns the state of a run of count probes to each target.
func newRun(targets []netip.Addr, count int) run {
	return run{targets: targets, stats: make([]Stats, len(targets)), pending: len(targets) * count, done: make(chan struct{})}
}

// resolved notes that one more probe of the run is settled.
func (r *run) resolved() {
	r.pending--
	if r.pending == 0 {
		close(r.done)
	}
}

// answered resolves a probe to target t answered after rtt.
func (r *run) answered(t int32, rtt time.Duration) {
	st := &r.stats[t]
	st.Sent++
	st.Received++
	st.RTTs = append(st.RTTs, rtt)
	r.resolved()
}

// failed resolves a probe to target t that could not be sent.
func (r *run) failed(t int32) {
	r.stats[t].Sent++
	r.stats[t].SendErrors++
	r.resolved()
}

// lost resolves a probe past its deadline.
func (r *run) lost(f *flight) {
	r.stats[f.target].Sent++
	r.resolved()
}

// runner is the part of an engine that both the ICMP and the UDP engine embed: the in-flight
// table, the run in progress, and the steps of a run that do not depend on how probes are sent.
// The engine's send loop goes between begin and await.
type runner struct {
	base    time.Time // monotonic origin of sentMono and deadlines
	timeout time.Duration

	mu  sync.Mutex
	run *run      // the run in progress, nil between runs
	tab *inflight // probes in flight
}

func (r *runner) init(timeout time.Duration) {
	r.base = time.Now()
	r.timeout = timeout
	r.tab = newInflight(InflightCapacity, mrand.Uint32())
}

func (r *runner) now() int64 { return int64(time.Since(r.base)) }

// begin makes rs the run in progress; engine names the engine in the error when another is.
func (r *runner) begin(rs *run, engine string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run != nil {
		return errors.New(engine + ": a run is already in progress")
	}
	r.run = rs
	return nil
}

// end ends the run in progress. It forgets whatever is still in flight (only when the run's
// context ended early), so that a late reply can never be matched to the next run's targets.
func (r *runner) end() {
	r.mu.Lock()
	r.tab.clear()
	r.run = nil
	r.mu.Unlock()
}

// expire resolves as lost, oldest first, every probe whose deadline has passed. A probe is judged
// by when the kernel received its reply, not by when this process got to read it: before judging,
// expire notes the time and calls settle, which must match every reply the kernel queued before
// then (the engine drains its sockets, and waits for its receivers to finish the replies they
// hold). Only probes whose deadline is before that time are then expired. A CPU-starved agent
// therefore counts late only what really came late.
func (r *runner) expire(settle func()) {
	r.mu.Lock()
	deadline, ok := r.tab.deadline(r.timeout)
	cutoff := r.now()
	due := ok && deadline <= cutoff
	r.mu.Unlock()
	if !due {
		return
	}
	settle()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tab.expire(cutoff-r.timeout.Nanoseconds(), r.run.lost)
}

// await is a run's tail, once everything is sent: it waits for the replies or the deadlines,
// whichever comes first, and returns the run's stats when every probe is resolved.
func (r *runner) await(ctx context.Context, timer *time.Timer, rs *run, settle func()) ([]Stats, error) {
	for {
		r.mu.Lock()
		pending := rs.pending
		deadline, _ := r.tab.deadline(r.timeout)
		r.mu.Unlock()
		if pending == 0 {
			return rs.stats, nil
		}
		if err := sleep(ctx, timer, time.Duration(deadline-r.now())+time.Millisecond, rs.done); err != nil {
			return nil, err
		}
		r.expire(settle)
	}
}

// sleep waits for d, or until done is closed or ctx ends.
func sleep(ctx context.Context, t *time.Timer, d time.Duration, done <-chan struct{}) error {
	t.Reset(max(d, 0))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
	case <-t.C:
	}
	return nil
}
