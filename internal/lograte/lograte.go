// Package lograte limits repeated log lines: one line per key and period, with a count of the
// lines held back, so that a problem that repeats every cycle, or a flood of failures, costs a
// line every period.
package lograte

import (
	"strings"
	"sync"
	"time"
)

// Limiter lets one log line about a key through per Period. It is safe for concurrent use; the
// zero value with Period set is ready.
type Limiter struct {
	Period time.Duration

	mu   sync.Mutex
	last map[string]*logged
}

type logged struct {
	at   time.Time
	held int
}

// Allow reports whether to log about key now, and how many lines about it were held back since
// the last one logged.
func (l *Limiter) Allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.last[key]
	if e != nil && now.Sub(e.at) < l.Period {
		e.held++
		return false, 0
	}
	if l.last == nil {
		l.last = map[string]*logged{}
	}
	held := 0
	if e != nil {
		held = e.held
	}
	l.last[key] = &logged{at: now}
	return true, held
}

// Prune forgets the keys logged a period ago or more, so that keys that are gone do not stay.
func (l *Limiter) Prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.last {
		if now.Sub(e.at) >= l.Period {
			delete(l.last, k)
		}
	}
}

// Every is the period as a log line tells it: 10m, 10s, 1h30m (time.Duration's String without
// its trailing zero units).
func (l *Limiter) Every() string {
	s := l.Period.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
