//go:build unix

package responder

import "syscall"

// nofileLimit is the process's soft limit of open files, or 0 when it cannot be read.
func nofileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
