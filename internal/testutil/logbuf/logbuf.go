// Package logbuf is a log destination that tests read while what they test may still write to
// it.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer keeps everything written to it; it is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count is how many times s was written so far (strings.Count).
func (b *Buffer) Count(s string) int {
	return strings.Count(b.String(), s)
}
