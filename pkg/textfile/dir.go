package textfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LockName is the lock file the agent holds in its textfile directory. It does not end in .prom,
// so node-exporter never reads it.
const LockName = ".nodeping.lock"

// Lock is an exclusive flock on LockName in a textfile directory: one agent per directory, so
// that two never overwrite (or, on exit, remove) each other's file.
type Lock struct{ f *os.File }

// ErrLocked is wrapped by AcquireLock's error when another process holds the lock.
var ErrLocked = errors.New("textfile directory is in use by another nodeping agent")

// AcquireLock takes the lock on dir or fails at once, naming the holder (the PID and host it wrote
// into the lock file) when it can. The lock lasts until Release or the process's end, whatever
// way it ends: the kernel drops a flock with the last descriptor, so a SIGKILLed agent leaves no
// stale lock behind. The lock file itself stays; it is reused.
func AcquireLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockName)
	f, err := openLock(path)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s holds %s", ErrLocked, holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d on host %s\n", os.Getpid(), host)
	}
	return &Lock{f: f}, nil
}

// maxHolderBytes bounds what AcquireLock reads of a lock file to name its holder: one line
// "pid N on host H" (a host name is at most 253 bytes).
const maxHolderBytes = 512

// openLock opens (creating it if need be) the lock file at path: never through a symlink, and only
// a regular file, so that the agent neither writes its PID through a link planted in the
// directory nor waits on a FIFO or a device put in the lock file's place.
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, openLockFlags, 0o644)
	if err != nil {
		return nil, openError(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat lock file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock file %s is not a regular file (%s), refusing it", path, fileKind(st.Mode()))
	}
	return f, nil
}

// fileKinds names the types of file openLock can open but refuses. A directory and a symlink
// never get that far: the open fails on them (EISDIR; ELOOP under O_NOFOLLOW).
var fileKinds = map[os.FileMode]string{
	os.ModeNamedPipe:                  "a FIFO",
	os.ModeDevice | os.ModeCharDevice: "a character device",
	os.ModeDevice:                     "a block device",
	os.ModeSocket:                     "a socket",
}

// fileKind names the type of a file mode for an error message.
func fileKind(m os.FileMode) string {
	if k, ok := fileKinds[m.Type()]; ok {
		return k
	}
	return "mode " + m.String()
}

// readHolder reads who holds the lock from the open lock file f: at most maxHolderBytes, first
// line only. It is "unknown holder" when the file says nothing.
func readHolder(f *os.File) string {
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, maxHolderBytes))
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line != "" {
		return line
	}
	return "unknown holder"
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// leftoverPatterns are the names of the temporary files this package creates for a file name
// (see Write and CheckDir): a process killed between create and rename leaves one behind.
func leftoverPatterns(name string) []string {
	return []string{"." + strings.TrimSuffix(name, ".prom") + ".tmp-*", ".nodeping-check-*"}
}

// RemoveLeftovers deletes the temporary files that an earlier writer of path, killed mid-write,
// left in its directory: only regular files whose names match this package's own temporary
// names, never anything else. Call it with the lock held. It returns the names it removed.
func RemoveLeftovers(path string) ([]string, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var removed []string
	var errs []error
	for _, pat := range leftoverPatterns(name) {
		matches, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, fmt.Errorf("remove leftovers: %w", err)
		}
		for _, m := range matches {
			st, err := os.Lstat(m)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, filepath.Base(m))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("remove leftovers: %w", err)
	}
	return removed, nil
}
