package probe

import (
	"encoding/binary"
	"errors"
)

// ICMP message types used by the echo engine.
const (
	icmpv4EchoRequest = 8
	icmpv4EchoReply   = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129

	icmpHeaderLen = 8
	cookieLen     = 8
)

// echoReply is the part of an echo reply the engine matches on.
type echoReply struct {
	ID, Seq uint16
	Data    []byte
}

var (
	errShort      = errors.New("packet too short")
	errNotIPv4    = errors.New("not an IPv4 packet")
	errNotReply   = errors.New("not an echo reply")
	errBadIHL     = errors.New("bad IPv4 header length")
	errTruncated  = errors.New("IPv4 total length exceeds packet")
	errFragmented = errors.New("IPv4 fragment")
)

// parseEchoReply decodes an ICMP echo reply as a socket returns it: with its IPv4 header when
// withIPHeader (raw IPv4 sockets), otherwise starting at the ICMP header (IPv6 and ping sockets).
// Data aliases b.
func parseEchoReply(b []byte, v6, withIPHeader bool) (echoReply, error) {
	if withIPHeader {
		if len(b) < 20 {
			return echoReply{}, errShort
		}
		if b[0]>>4 != 4 {
			return echoReply{}, errNotIPv4
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || ihl > len(b) {
			return echoReply{}, errBadIHL
		}
		if total := int(binary.BigEndian.Uint16(b[2:4])); total < ihl || total > len(b) {
			return echoReply{}, errTruncated
		} else {
			b = b[:total]
		}
		if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
			return echoReply{}, errFragmented
		}
		b = b[ihl:]
	}
	if len(b) < icmpHeaderLen {
		return echoReply{}, errShort
	}
	want := byte(icmpv4EchoReply)
	if v6 {
		want = icmpv6EchoReply
	}
	if b[0] != want || b[1] != 0 {
		return echoReply{}, errNotReply
	}
	return echoReply{
		ID:   binary.BigEndian.Uint16(b[4:6]),
		Seq:  binary.BigEndian.Uint16(b[6:8]),
		Data: b[icmpHeaderLen:],
	}, nil
}

// echoTemplate returns an echo request with the given payload size: the cookie first, then a fixed
// pattern. ID, sequence number and checksum are filled in per packet by putEcho.
func echoTemplate(v6 bool, size int, cookie [cookieLen]byte) []byte {
	if size < cookieLen {
		size = cookieLen
	}
	b := make([]byte, icmpHeaderLen+size)
	b[0] = icmpv4EchoRequest
	if v6 {
		b[0] = icmpv6EchoRequest
	}
	copy(b[icmpHeaderLen:], cookie[:])
	for i := icmpHeaderLen + cookieLen; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// putEcho sets ID and sequence number (the serial's low 16 bits) in an echo request built by
// echoTemplate, the full 32-bit serial right after the cookie when the payload has room, and,
// when withChecksum, its checksum (IPv4 raw sockets; the kernel fills it for ICMPv6 and ping
// sockets). The serial in the payload tells a reply to this echo from a late one to an echo
// 65,536 before it with the same sequence number.
func putEcho(b []byte, id uint16, serial uint32, withChecksum bool) {
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], uint16(serial))
	if len(b) >= icmpHeaderLen+cookieLen+4 {
		binary.BigEndian.PutUint32(b[icmpHeaderLen+cookieLen:], serial)
	}
	b[2], b[3] = 0, 0
	if withChecksum {
		binary.BigEndian.PutUint16(b[2:4], checksum(b))
	}
}

// echoSerialMatches reports whether an echo reply's data (from the cookie on) carries serial, or
// is too short to carry one.
func echoSerialMatches(data []byte, serial uint32) bool {
	return len(data) < cookieLen+4 || binary.BigEndian.Uint32(data[cookieLen:]) == serial
}

// checksum is the Internet checksum of RFC 1071.
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
