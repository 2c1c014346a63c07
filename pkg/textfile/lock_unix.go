//go:build unix

package textfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// errWouldBlock is what tryLock returns when another process holds the lock.
var errWouldBlock = syscall.EWOULDBLOCK

// tryLock takes an exclusive flock on f without waiting.
func tryLock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

// openLockFlags open the lock file without following a symlink in its last component and without
// handing it to child processes. O_NONBLOCK keeps the open itself from waiting on a FIFO or a
// device that someone put in its place; openLock refuses those right after.
const openLockFlags = os.O_RDWR | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_CLOEXEC | syscall.O_NONBLOCK

// openError says what an open of the lock file at path refused, naming a symlink as such
// (O_NOFOLLOW reports one as ELOOP).
func openError(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("open lock file %s: it is a symlink, refusing to follow it", path)
	}
	return fmt.Errorf("open lock file: %w", err)
}
