package sockopt

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestForceReadBuffer: the buffer asked for is set, within rmem_max at least (past it as root).
func TestForceReadBuffer(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	const asked = 64 << 10 // within any rmem_max
	if err := rc.Control(func(fd uintptr) {
		ForceReadBuffer(int(fd), asked)
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got/2 < asked { // the kernel reports twice what it grants
		t.Errorf("receive buffer %d bytes granted, want %d", got/2, asked)
	}
}
