//go:build !linux

package responder

import (
	"log/slog"
	"net"
)

// setReadBuffer asks for a receive buffer of bytes; the kernel may give less, silently.
func setReadBuffer(c *net.UDPConn, bytes int, log *slog.Logger) {
	if err := c.SetReadBuffer(bytes); err != nil {
		log.Warn("udp responder: setting the receive buffer failed", "bytes", bytes, "err", err)
	}
}

// mappedSource is nil off Linux: an answer to an IPv4 probe on a dual-stack socket leaves from the
// address the kernel picks.
func mappedSource([]byte, net.IP) []byte { return nil }
