package responder

import (
	"errors"
	"log/slog"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nodeping/nodeping/internal/sockopt"
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
		sockopt.ForceReadBuffer(int(fd), bytes)
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

// sourcePktinfo is an IPV6_PKTINFO control message with the source src, an IPv6 or (for an
// IPv4-mapped destination, which Linux takes too) an IPv4 address, in buf when it is large enough.
func sourcePktinfo(buf []byte, src net.IP) []byte {
	n := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	clear(buf)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&buf[unix.CmsgLen(0)]))
	copy(pi.Addr[:], src.To16())
	return buf
}
