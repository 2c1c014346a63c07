package responder

import (
	"log/slog"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// packetConn is the UDP responder's socket seen through x/net: batch reads, and writes from the
// address each probe was sent to. A socket bound to a wildcard address is IPv6 and dual-stack;
// one bound to an IPv4 address is IPv4.
type packetConn interface {
	// readBatch reads up to len(ms) datagrams, waiting for the first.
	readBatch(ms []ipv4.Message) (int, error)
	// newOOB is a buffer for one datagram's destination address.
	newOOB() []byte
	// dst is the destination address in oob, or nil.
	dst(oob []byte) net.IP
	// writeFrom sends b to to, from src unless src is nil.
	writeFrom(b []byte, src net.IP, to *net.UDPAddr) error
}

// newPacketConn wraps c. Where the destination address cannot be received, answers leave from
// the address the kernel picks, which on a node with one address per family is the same.
func newPacketConn(c *net.UDPConn, log *slog.Logger) packetConn {
	p6 := ipv6.NewPacketConn(c)
	if err := p6.SetControlMessage(ipv6.FlagDst, true); err == nil {
		return &udp6{p: p6, c: c}
	}
	p4 := ipv4.NewPacketConn(c)
	if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		log.Warn("udp responder: cannot receive probes' destination addresses; answering from the kernel's choice", "err", err)
		return udp4{p: p4, noDst: true}
	}
	return udp4{p: p4}
}

type udp4 struct {
	p     *ipv4.PacketConn
	noDst bool
}

func (c udp4) readBatch(ms []ipv4.Message) (int, error) { return c.p.ReadBatch(ms, 0) }

func (c udp4) newOOB() []byte {
	if c.noDst {
		return nil
	}
	return ipv4.NewControlMessage(ipv4.FlagDst)
}

func (c udp4) dst(oob []byte) net.IP {
	var cm ipv4.ControlMessage
	if len(oob) == 0 || cm.Parse(oob) != nil {
		return nil
	}
	return cm.Dst
}

func (c udp4) writeFrom(b []byte, src net.IP, to *net.UDPAddr) error {
	var cm *ipv4.ControlMessage
	if src != nil {
		cm = &ipv4.ControlMessage{Src: src}
	}
	_, err := c.p.WriteTo(b, cm, to)
	return err
}

// udp6 is a dual-stack socket: an IPv4 probe arrives from, and to, IPv4-mapped addresses.
type udp6 struct {
	p       *ipv6.PacketConn
	c       *net.UDPConn
	pktinfo []byte // the control message for the source, reused (Serve is one goroutine)
}

func (c *udp6) readBatch(ms []ipv4.Message) (int, error) { return c.p.ReadBatch(ms, 0) }

func (c *udp6) newOOB() []byte { return ipv6.NewControlMessage(ipv6.FlagDst) }

func (c *udp6) dst(oob []byte) net.IP {
	var cm ipv6.ControlMessage
	if len(oob) == 0 || cm.Parse(oob) != nil {
		return nil
	}
	return cm.Dst
}

// writeFrom sets the source itself (IPV6_PKTINFO, into a reused buffer): x/net's control message
// takes IPv6 sources only, and is built anew for every answer.
func (c *udp6) writeFrom(b []byte, src net.IP, to *net.UDPAddr) error {
	var oob []byte
	if src != nil {
		c.pktinfo = sourcePktinfo(c.pktinfo, src)
		oob = c.pktinfo
	}
	_, _, err := c.c.WriteMsgUDP(b, oob, to)
	return err
}
