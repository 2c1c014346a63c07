//go:build !linux

package probe

import (
	"errors"
	"net"
)

// udpSock is one of the UDP probe's sockets; outside Linux it is read with the net package, with
// no kernel receive timestamps.
type udpSock struct {
	conn *net.UDPConn
}

func openUDPSock() (*udpSock, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, err
	}
	return &udpSock{conn: c}, nil
}

func (u *UDP) receive(s *udpSock) {
	defer u.wg.Done()
	buf := make([]byte, 64)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			u.recvErrors.Add(1) // ICMP port unreachable and the like: the probe times out
			continue
		}
		u.handle(buf[:n], from.Addr(), 0, u.now())
	}
}

// drain does nothing outside Linux: the receivers read as they can.
func (u *UDP) drain() {}
