package probe

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodeping/nodeping/internal/sockopt"
)

// udpSock is one of the UDP probe's sockets, read with recvmmsg and kernel receive timestamps.
type udpSock struct {
	conn     *net.UDPConn
	rc       syscall.RawConn
	inHand   atomic.Int32 // see icmpSocket.inHand
	drainBuf *mmsgBatch   // used by Run's goroutine only
}

func openUDPSock() (*udpSock, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		// Room for a burst of echoes while the receivers wait for a CPU (capped at rmem_max).
		sockopt.ForceReadBuffer(int(fd), 1<<20)
	}); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("enable kernel receive timestamps: %w", errors.Join(err, serr))
	}
	return &udpSock{conn: c, rc: rc, drainBuf: newRecvBatch(64)}, nil
}

func (u *UDP) receive(s *udpSock) {
	defer u.wg.Done()
	b := newRecvBatch(64)
	for {
		n, err := recvBatch(s.rc, b, true, &s.inHand)
		if errors.Is(err, errSocketClosed) {
			return
		}
		if err != nil {
			u.recvErrors.Add(1) // ICMP port unreachable and the like: the probe times out
			continue
		}
		u.handleBatch(b, n)
		s.inHand.Add(-1)
	}
}

func (u *UDP) handleBatch(b *mmsgBatch, n int) {
	now := u.now()
	for i := 0; i < n; i++ {
		h := &b.hdrs[i]
		u.handle(b.bufs[i][:h.Len], addrFrom(&b.names[i]), kernelTimestamp(b.oobs[i][:h.Hdr.Controllen]), now)
	}
}

// drain reads whatever the sockets hold without waiting, then waits (at most a second) for the
// receivers to match what they hold, so that every echo the kernel received so far is counted.
func (u *UDP) drain() {
	for _, s := range u.socks {
		for range 1024 {
			n, err := recvBatch(s.rc, s.drainBuf, false, &s.inHand)
			if err != nil || n == 0 {
				break
			}
			u.handleBatch(s.drainBuf, n)
		}
	}
	deadline := time.Now().Add(time.Second)
	for _, s := range u.socks {
		for s.inHand.Load() > 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
}
