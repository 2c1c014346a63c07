package probe

import (
	"testing"
)

// TestInflightNeverFullWhenAnswered: a run far longer than the table (every probe answered
// before the next is sent, as on a healthy network) never finds it full, across serial wrap-around.
func TestInflightNeverFullWhenAnswered(t *testing.T) {
	for _, first := range []uint32{0, 1<<32 - 5, 1<<16 - 3} {
		tab := newInflight(16, first)
		for i := range 1000 {
			s, ok := tab.add(int32(i), 0, int64(i))
			if !ok {
				t.Fatalf("first %d: probe %d refused with %d in flight", first, i, tab.len())
			}
			f := tab.get(s)
			if f == nil || f.target != int32(i) {
				t.Fatalf("first %d: get(%d) = %+v", first, s, f)
			}
			tab.resolve(f)
		}
		if tab.len() != 0 || tab.oldestActive() != nil {
			t.Errorf("first %d: %d left in flight", first, tab.len())
		}
	}
}

// TestInflightFullCountsAndRecovers: a table fills only with size probes unresolved from the
// oldest on; it takes probes again as soon as the oldest is resolved, answered or expired.
func TestInflightFullCountsAndRecovers(t *testing.T) {
	tab := newInflight(8, 1<<32-3) // wraps the serial on the way
	var serials []uint32
	for i := range 8 {
		s, ok := tab.add(int32(i), 0, int64(i))
		if !ok {
			t.Fatalf("probe %d refused", i)
		}
		serials = append(serials, s)
	}
	if _, ok := tab.add(8, 0, 8); ok {
		t.Fatal("a ninth probe in an 8-slot table was taken")
	}
	// A hole in the middle does not make room: the slot after the newest is still the oldest's.
	tab.resolve(tab.get(serials[3]))
	if _, ok := tab.add(8, 0, 8); ok {
		t.Fatal("took a probe into the oldest's slot")
	}
	// Answering the oldest two does.
	tab.resolve(tab.get(serials[0]))
	tab.resolve(tab.get(serials[1]))
	for i := range 2 {
		if _, ok := tab.add(int32(9+i), 0, int64(9+i)); !ok {
			t.Fatalf("probe %d refused after the oldest were answered", 9+i)
		}
	}
	if tab.len() != 7+2-2 {
		t.Errorf("len %d, want 7", tab.len())
	}
	// A stale serial (the slot reused) is not found.
	if f := tab.get(serials[0]); f != nil {
		t.Errorf("serial %d of a resolved probe found: %+v", serials[0], f)
	}
}

func TestInflightExpireOldestFirst(t *testing.T) {
	tab := newInflight(4, 100)
	for i := range 4 {
		tab.add(int32(i), 0, int64(i*10))
	}
	tab.resolve(tab.get(101)) // answered: never expired
	var lost []int32
	tab.expire(20, func(f *flight) { lost = append(lost, f.target) })
	if len(lost) != 2 || lost[0] != 0 || lost[1] != 2 {
		t.Errorf("expired %v, want [0 2]", lost)
	}
	if f := tab.oldestActive(); f == nil || f.target != 3 {
		t.Errorf("oldest active %+v, want target 3", f)
	}
	if s, ok := tab.add(4, 0, 40); !ok || s != 104 {
		t.Errorf("add after expiry: serial %d ok %v", s, ok)
	}
	tab.clear()
	if tab.len() != 0 || tab.oldestActive() != nil || tab.at(103) != nil {
		t.Errorf("after clear: len %d", tab.len())
	}
}

// TestInflightICMPWrap is the ICMP engine's case: 16-bit sequence numbers, 7,000 targets x 10
// echoes (70,000 > 65,536) all answered, in the order the engine would see them (batches of
// sends, replies a few batches later): nothing refused, every reply found by its sequence number.
func TestInflightICMPWrap(t *testing.T) {
	tab := newInflight(InflightCapacity, 65000)
	var pending []uint32
	for i := range 70_000 {
		s, ok := tab.add(int32(i%7000), 0, int64(i))
		if !ok {
			t.Fatalf("echo %d refused with %d in flight", i, tab.len())
		}
		pending = append(pending, s)
		if len(pending) == 256 { // answer the first half
			for _, s := range pending[:128] {
				f := tab.at(uint32(uint16(s)))
				if f == nil || f.serial != s {
					t.Fatalf("reply seq %d: slot %+v, want serial %d", uint16(s), f, s)
				}
				tab.resolve(f)
			}
			pending = append(pending[:0], pending[128:]...)
		}
	}
	if tab.len() != len(pending) {
		t.Errorf("len %d, want %d", tab.len(), len(pending))
	}
}
