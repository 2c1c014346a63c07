// Package poll waits in tests for a condition that something running in the background makes
// true.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every step until it holds and returns how long that took; it fails the test
// at once, naming what, when within passes first.
func Until(t testing.TB, what string, within, step time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(step)
	}
	return time.Since(start)
}
