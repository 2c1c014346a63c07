//go:build !linux

package responder

import (
	"log/slog"
	"net"

	"golang.org/x/net/ipv6"
)

// setReadBuffer asks for a receive buffer of bytes; the kernel may give less, silently.
func setReadBuffer(c *net.UDPConn, bytes int, log *slog.Logger) {
	if err := c.SetReadBuffer(bytes); err != nil {
		log.Warn("udp responder: setting the receive buffer failed", "bytes", bytes, "err", err)
	}
}

// sourcePktinfo is x/net's IPV6_PKTINFO control message with the IPv6 source src. For an IPv4
// src (a probe on a dual-stack socket) it is nil, and the answer leaves from the address the
// kernel picks.
func sourcePktinfo(_ []byte, src net.IP) []byte {
	if src.To4() != nil {
		return nil
	}
	return (&ipv6.ControlMessage{Src: src}).Marshal()
}
