package probe

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKernelTimestampFromSocket reads a real datagram with SO_TIMESTAMPNS on and parses the
// kernel's control message: the time is the receive time.
func TestKernelTimestampFromSocket(t *testing.T) {
	s, err := openUDPSock()
	if err != nil {
		t.Fatal(err)
	}
	defer s.conn.Close()
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.conn.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := time.Now().UnixNano()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, 128)
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	ts := kernelTimestamp(oob[:oobn])
	if ts < before || ts > after {
		t.Errorf("kernel timestamp %d not within [%d, %d] (control data %x)", ts, before, after, oob[:oobn])
	}
	if unix.SizeofCmsghdr != nativeCmsg.hdrLen {
		t.Errorf("native layout header %d, unix says %d", nativeCmsg.hdrLen, unix.SizeofCmsghdr)
	}
}
