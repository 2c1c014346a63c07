package sockopt

import "golang.org/x/sys/unix"

// ForceReadBuffer asks for a receive buffer of bytes on the socket fd: past net.core.rmem_max
// with SO_RCVBUFFORCE where the process may (CAP_NET_ADMIN), else with SO_RCVBUF, which the
// kernel caps at rmem_max. It reports nothing: read SO_RCVBUF back to learn what was granted.
func ForceReadBuffer(fd, bytes int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
	}
}
