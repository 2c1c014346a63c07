//go:build !unix

package textfile

import (
	"errors"
	"os"
)

// errWouldBlock is what tryLock returns when another process holds the lock.
var errWouldBlock = errors.New("lock held")

// tryLock is not supported off Unix: the agent runs on Linux nodes, and this only keeps the
// package building elsewhere.
func tryLock(*os.File) error { return errors.ErrUnsupported }
