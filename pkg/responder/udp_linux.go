package responder

import (
	"errors"
	"log/slog"
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for a receive buffer of bytes: past net.core.rmem_max with SO_RCVBUFFORCE
// where the agent may (CAP_NET_ADMIN), else within it; and logs when the kernel gave less.
func setReadBuffer(c *net.UDPConn, bytes int, log *slog.Logger) {
	rc, err := c.SyscallConn()
	if err != nil {
		log.Warn("udp responder: cannot set the receive buffer", "err", err)
		return
	}
	var got int
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
		}
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	switch {
	case cerr != nil || gerr != nil:
		log.Warn("udp responder: cannot read the receive buffer back", "err", errors.Join(cerr, gerr))
	case got/2 < bytes: // the kernel reports twice what it grants, for its bookkeeping
		log.Warn("udp responder: the kernel capped the receive buffer; a burst of probes may overflow it (raise net.core.rmem_max)",
			"asked_bytes", bytes, "granted_bytes", got/2)
	}
}
