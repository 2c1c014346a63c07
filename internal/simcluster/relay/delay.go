// Package relay holds packets for a configured delay, with jitter, and then forwards them: a
// delay link in user space for the simulated cluster, which has no tc netem. The schedule (which
// packet leaves when) is pure logic with an injected clock and random source; Pipe moves packets
// between two file descriptors (TAP, TUN, packet sockets) on that schedule.
package relay

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Delay is the time a packet is held: Base plus a uniform sample of [-Jitter, +Jitter], never
// less than zero.
type Delay struct {
	Base, Jitter time.Duration
}

func (d Delay) String() string {
	if d.Jitter == 0 {
		return d.Base.String()
	}
	return fmt.Sprintf("%s±%s", d.Base, d.Jitter)
}

// Validate refuses negative delays and jitter, and delays longer than ten seconds (a relay that
// holds packets that long is a typo, and a queue that deep a memory hazard).
func (d Delay) Validate() error {
	if d.Base < 0 || d.Jitter < 0 {
		return fmt.Errorf("delay %s: negative", d)
	}
	if d.Base+d.Jitter > 10*time.Second {
		return fmt.Errorf("delay %s: more than 10s", d)
	}
	return nil
}

// Schedule decides when each packet leaves. Packets leave in the order they came (jitter never
// reorders them, as on a real link with a queue): a packet whose sample would let it overtake
// the one before leaves right after it. Safe for concurrent use.
type Schedule struct {
	mu      sync.Mutex
	delay   Delay
	rnd     *rand.Rand
	lastDue time.Time
}

// NewSchedule returns a schedule drawing its jitter from rnd.
func NewSchedule(d Delay, rnd *rand.Rand) *Schedule {
	return &Schedule{delay: d, rnd: rnd}
}

// Set changes the delay for packets that arrive from now on.
func (s *Schedule) Set(d Delay) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Delay returns the current delay.
func (s *Schedule) Delay() Delay {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delay
}

// Due returns when a packet that arrived at now leaves.
func (s *Schedule) Due(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold := s.delay.Base
	if j := s.delay.Jitter; j > 0 {
		hold += time.Duration(s.rnd.Int64N(int64(2*j)+1)) - j
	}
	if hold < 0 {
		hold = 0
	}
	due := now.Add(hold)
	if due.Before(s.lastDue) {
		due = s.lastDue
	}
	s.lastDue = due
	return due
}
