package sockopt

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestForceReadBuffer: the buffer asked for, above the kernel's default, is set: past rmem_max as
// root (SO_RCVBUFFORCE), up to it otherwise (SO_RCVBUF).
func TestForceReadBuffer(t *testing.T) {
	rmemMax := sysctl(t, "rmem_max")
	asked := 2 * max(sysctl(t, "rmem_default"), rmemMax) // more than a socket gets untouched, and than SO_RCVBUF may give
	want := asked
	if os.Geteuid() != 0 {
		want = rmemMax
	}
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
	if err := rc.Control(func(fd uintptr) {
		ForceReadBuffer(int(fd), asked)
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got/2 < want { // the kernel reports twice what it grants
		t.Errorf("receive buffer %d bytes granted for %d asked, want %d", got/2, asked, want)
	}
}

func sysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/" + name)
	if err != nil {
		t.Skipf("skipping: cannot read net.core.%s: %v", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("net.core.%s: %v", name, err)
	}
	return n
}
