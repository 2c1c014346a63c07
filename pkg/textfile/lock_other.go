//go:build !unix

package textfile

import (
	"errors"
	"fmt"
	"os"
)

// errWouldBlock is what tryLock returns when another process holds the lock.
var errWouldBlock = errors.New("lock held")

// tryLock is not supported off Unix: the agent runs on Linux nodes, and this only keeps the
// package building elsewhere.
func tryLock(*os.File) error { return errors.ErrUnsupported }

// openLockFlags: there is no O_NOFOLLOW off Unix; openLock still refuses anything but a regular
// file.
const openLockFlags = os.O_RDWR | os.O_CREATE

// openError says what an open of the lock file refused.
func openError(_ string, err error) error { return fmt.Errorf("open lock file: %w", err) }
