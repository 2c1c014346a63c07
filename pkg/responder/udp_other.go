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
