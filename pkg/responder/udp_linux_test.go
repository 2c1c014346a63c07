package responder

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUDPReceiveBuffer: the UDP responder asks for a 4 MiB receive buffer (as much of it as
// net.core.rmem_max allows), so that a burst of peers' probes is queued rather than dropped by
// the kernel (with the default 208 KB, bench-scale's responder answered 14,600 and 17,210 of
// 25,000 probes sent within a second).
func TestUDPReceiveBuffer(t *testing.T) {
	data, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	u, err := ListenUDP("127.0.0.1:0", Limit{Rate: 1, Burst: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer u.conn.Close()
	raw, err := u.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	// The kernel doubles the value asked for (bookkeeping overhead) and caps the request at
	// rmem_max.
	want := 2 * min(udpSocketBuffer, rmemMax)
	if got < want {
		t.Errorf("SO_RCVBUF = %d, want at least %d (2 x min(%d, rmem_max %d))", got, want, udpSocketBuffer, rmemMax)
	}
}
