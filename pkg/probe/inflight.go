package probe

import "time"

// InflightCapacity is how many probes one engine's in-flight table holds: an ICMP or UDP engine
// can have at most this many probes sent within one timeout of the oldest one still unresolved.
// A probe that finds the table full is not sent, and is counted (TableFull, and in its target's
// Sent and SendErrors).
const InflightCapacity = 1 << 16

// inflight is the table of probes in flight that every engine shares the design of: a ring of
// slots indexed by serial number modulo its size (a power of two; for ICMP, the 16-bit sequence
// number on the wire is the serial's low bits). Serials are handed out in send order and all
// probes of a run share one timeout, so the oldest active probe is always the next to expire: the
// ring is its own timer queue, with no timer per probe.
//
// Answered and failed probes leave holes that the oldest cursor skips, so the table is full only
// when the span from the oldest unresolved probe to the next serial covers every slot; a run of
// any length in which every probe is answered never fills it.
//
// It is not safe for concurrent use; the engine guards it with its mutex.
type inflight struct {
	slots  []flight
	mask   uint32
	next   uint32 // serial of the next probe
	oldest uint32 // no probe with a serial before this one is active
	active int
}

// flight is one probe in flight.
type flight struct {
	serial   uint32
	target   int32
	active   bool
	sentWall int64 // wall-clock nanoseconds, compared with kernel receive timestamps
	sentMono int64 // engine-monotonic nanoseconds, compared with deadlines
}

// newInflight returns a table of size slots (a power of two) whose first serial is first.
func newInflight(size int, first uint32) *inflight {
	if size <= 0 || size&(size-1) != 0 {
		panic("inflight: size must be a power of two")
	}
	return &inflight{slots: make([]flight, size), mask: uint32(size - 1), next: first, oldest: first}
}

// add records a probe to target sent at wall and mono and returns its serial; ok is false, and
// nothing is recorded, when the table is full.
func (t *inflight) add(target int32, wall, mono int64) (serial uint32, ok bool) {
	if t.next-t.oldest >= uint32(len(t.slots)) {
		t.skipResolved()
		if t.next-t.oldest >= uint32(len(t.slots)) {
			return 0, false
		}
	}
	serial = t.next
	t.next++
	t.slots[serial&t.mask] = flight{serial: serial, target: target, active: true, sentWall: wall, sentMono: mono}
	t.active++
	return serial, true
}

// skipResolved moves oldest past resolved probes.
func (t *inflight) skipResolved() {
	for t.oldest != t.next && !t.slots[t.oldest&t.mask].active {
		t.oldest++
	}
}

// get returns the active probe with this serial, or nil.
func (t *inflight) get(serial uint32) *flight {
	f := &t.slots[serial&t.mask]
	if !f.active || f.serial != serial {
		return nil
	}
	return f
}

// at returns the active probe in slot i (i is taken modulo the size), or nil.
func (t *inflight) at(i uint32) *flight {
	f := &t.slots[i&t.mask]
	if !f.active {
		return nil
	}
	return f
}

// resolve marks an active probe answered or failed.
func (t *inflight) resolve(f *flight) {
	f.active = false
	t.active--
}

// oldestActive returns the oldest unresolved probe, or nil when there is none.
func (t *inflight) oldestActive() *flight {
	t.skipResolved()
	if t.oldest == t.next {
		return nil
	}
	return &t.slots[t.oldest&t.mask]
}

// deadline is when the oldest unresolved probe times out (engine-monotonic), given the timeout;
// ok is false when there is none.
func (t *inflight) deadline(timeout time.Duration) (at int64, ok bool) {
	f := t.oldestActive()
	if f == nil {
		return 0, false
	}
	return f.sentMono + int64(timeout), true
}

// expire resolves, oldest first, every active probe sent at or before sentBy (engine-monotonic),
// and calls lost with each.
func (t *inflight) expire(sentBy int64, lost func(*flight)) {
	for t.oldest != t.next {
		f := &t.slots[t.oldest&t.mask]
		if f.active {
			if f.sentMono > sentBy {
				return
			}
			t.resolve(f)
			lost(f)
		}
		t.oldest++
	}
}

// clear forgets every probe in flight without counting it.
func (t *inflight) clear() {
	for ; t.oldest != t.next; t.oldest++ {
		t.slots[t.oldest&t.mask].active = false
	}
	t.active = 0
}

// len is the number of unresolved probes.
func (t *inflight) len() int { return t.active }
