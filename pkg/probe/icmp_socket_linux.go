package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// errSocketClosed is returned once the engine has closed the socket. RawConn's Read and Write
// fail only then (the file has no deadlines).
var errSocketClosed = errors.New("icmp socket closed")

// batchSize is how many packets one sendmmsg or recvmmsg call moves at most.
const batchSize = 64

// icmpSocket is one ICMP socket of one address family, shared by every target of that family.
type icmpSocket struct {
	v6   bool
	mode SocketMode
	id   uint16 // the ICMP ID replies carry
	file *os.File
	rc   syscall.RawConn
	// inHand counts receivers that may hold packets read from the socket but not yet matched;
	// expire waits for it to fall to zero (see ICMP.expire).
	inHand atomic.Int32
}

// openICMPSocket opens a raw ICMP socket, or an unprivileged ping socket when raw sockets are not
// permitted, with kernel receive timestamps and the DF bit as asked.
func openICMPSocket(v6 bool, id uint16, dontFragment bool) (*icmpSocket, error) {
	family, proto, sysctl := unix.AF_INET, unix.IPPROTO_ICMP, "net.ipv4.ping_group_range"
	if v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	s := &icmpSocket{v6: v6, mode: ModeRaw, id: id}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		rawErr := err
		s.mode = ModeDgram
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return nil, fmt.Errorf("open raw ICMP socket: %v (needs CAP_NET_RAW); unprivileged ping socket: %w (allowed only for groups in %s)", rawErr, err, sysctl)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	if err := s.setup(fd, dontFragment); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.file = os.NewFile(uintptr(fd), fmt.Sprintf("icmp-%s-%s", familyName(v6), s.mode))
	rc, err := s.file.SyscallConn()
	if err != nil {
		s.file.Close()
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	s.rc = rc
	return s, nil
}

func familyName(v6 bool) string {
	if v6 {
		return "ipv6"
	}
	return "ipv4"
}

func (s *icmpSocket) setup(fd int, dontFragment bool) error {
	if s.mode == ModeRaw {
		prog, err := replyFilter(s.v6, s.id)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, prog); err != nil {
			return fmt.Errorf("attach ICMP reply filter: %w", err)
		}
	} else {
		var sa unix.Sockaddr = &unix.SockaddrInet4{}
		if s.v6 {
			sa = &unix.SockaddrInet6{}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind ping socket: %w", err)
		}
		bound, err := unix.Getsockname(fd)
		if err != nil {
			return fmt.Errorf("ping socket name: %w", err)
		}
		switch a := bound.(type) {
		case *unix.SockaddrInet4:
			s.id = uint16(a.Port)
		case *unix.SockaddrInet6:
			s.id = uint16(a.Port)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable kernel receive timestamps: %w", err)
	}
	// A large receive buffer absorbs reply bursts; the kernel caps it at net.core.rmem_max.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	pmtu := unix.IP_PMTUDISC_DONT
	if dontFragment {
		pmtu = unix.IP_PMTUDISC_PROBE // DF set, and the route's cached PMTU does not stop the send
	}
	if s.v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, pmtu); err != nil {
			return fmt.Errorf("set IPV6_MTU_DISCOVER: %w", err)
		}
		df := 0
		if dontFragment {
			df = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, df); err != nil {
			return fmt.Errorf("set IPV6_DONTFRAG: %w", err)
		}
	} else if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtu); err != nil {
		return fmt.Errorf("set IP_MTU_DISCOVER: %w", err)
	}
	return nil
}

// replyFilter is a classic BPF program that passes only echo replies carrying id, so that the
// raw socket wakes the engine for its own replies only (not for other ICMP, nor for other pingers).
func replyFilter(v6 bool, id uint16) (*unix.SockFprog, error) {
	var prog []bpf.Instruction
	if v6 {
		prog = []bpf.Instruction{
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpv6EchoReply, SkipTrue: 3},
			bpf.LoadAbsolute{Off: 4, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(id), SkipTrue: 1},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	} else {
		prog = []bpf.Instruction{
			bpf.LoadMemShift{Off: 0}, // X = IPv4 header length
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpv4EchoReply, SkipTrue: 3},
			bpf.LoadIndirect{Off: 4, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(id), SkipTrue: 1},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble ICMP reply filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}, nil
}

func (s *icmpSocket) close() error { return s.file.Close() }

// sockaddr is a destination in the kernel's layout, built once per target.
type sockaddr struct {
	raw unix.RawSockaddrInet6 // large enough for either family
	len uint32
}

func newSockaddr(a netip.Addr) sockaddr {
	var sa sockaddr
	if a.Is4() {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		p.Family = unix.AF_INET
		p.Addr = a.As4()
		sa.len = unix.SizeofSockaddrInet4
		return sa
	}
	sa.raw.Family = unix.AF_INET6
	sa.raw.Addr = a.As16()
	sa.len = unix.SizeofSockaddrInet6
	return sa
}

// addrFrom reads the source address the kernel put in a received message's name.
func addrFrom(name *unix.RawSockaddrInet6) netip.Addr {
	if name.Family == unix.AF_INET {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		return netip.AddrFrom4(p.Addr)
	}
	return netip.AddrFrom16(name.Addr)
}

// mmsgBatch holds the headers and buffers for one sendmmsg or recvmmsg call, allocated once.
type mmsgBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	bufs  [batchSize][]byte
	names [batchSize]unix.RawSockaddrInet6
	oobs  [batchSize][64]byte
}

func newRecvBatch(bufSize int) *mmsgBatch {
	b := &mmsgBatch{}
	for i := range b.hdrs {
		b.bufs[i] = make([]byte, bufSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(bufSize)
		h := &b.hdrs[i].Hdr
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
	}
	return b
}

// resetRecv restores the lengths the kernel overwrote in the last recvmmsg.
func (b *mmsgBatch) resetRecv(n int) {
	for i := 0; i < n; i++ {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &b.oobs[i][0]
		h.SetControllen(len(b.oobs[i]))
		h.Flags = 0
		b.hdrs[i].Len = 0
	}
}

func mmsg(trap uintptr, fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(n), errno
}

// recv reads up to batchSize packets into b. It returns 0 and no error when nothing is queued
// and wait is false; when wait is true it blocks in the runtime poller until something arrives,
// and when it returns n > 0 the caller must call s.inHand.Add(-1) once it has matched them.
func (s *icmpSocket) recv(b *mmsgBatch, wait bool) (int, error) {
	return recvBatch(s.rc, b, wait, &s.inHand)
}

// recvBatch reads up to batchSize datagrams from rc into b; see icmpSocket.recv. inHand is
// raised before each waiting read (so that a packet is never out of the socket without it) and
// left raised when packets are returned.
func recvBatch(rc syscall.RawConn, b *mmsgBatch, wait bool, inHand *atomic.Int32) (int, error) {
	var (
		n     int
		errno unix.Errno
	)
	b.resetRecv(batchSize)
	var err error
	if wait {
		err = rc.Read(func(fd uintptr) bool {
			inHand.Add(1)
			n, errno = mmsg(unix.SYS_RECVMMSG, fd, b.hdrs[:], unix.MSG_DONTWAIT)
			if errno != 0 || n <= 0 {
				inHand.Add(-1)
			}
			return errno != unix.EAGAIN
		})
	} else {
		// Control, not Read: Read holds the descriptor's read lock while it waits in the poller,
		// and the receiver goroutine is always waiting there.
		err = rc.Control(func(fd uintptr) {
			n, errno = mmsg(unix.SYS_RECVMMSG, fd, b.hdrs[:], unix.MSG_DONTWAIT)
		})
	}
	if err != nil {
		return 0, errSocketClosed
	}
	if errno == unix.EAGAIN {
		return 0, nil
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// send writes msgs with sendmmsg, waiting for room when the socket buffer is full. It returns how
// many went out; when that is fewer than len(msgs), err is the error of the first one that did not.
func (s *icmpSocket) send(hdrs []unix.Mmsghdr) (int, error) {
	var (
		n     int
		errno unix.Errno
	)
	err := s.rc.Write(func(fd uintptr) bool {
		n, errno = mmsg(unix.SYS_SENDMMSG, fd, hdrs, 0)
		return errno != unix.EAGAIN
	})
	if err != nil {
		return 0, errSocketClosed
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// nativeCmsg is this platform's control message layout.
var nativeCmsg = cmsgLayout{
	hdrLen: unix.SizeofCmsghdr,
	align:  int(unsafe.Sizeof(uintptr(0))),
	level:  unix.SOL_SOCKET,
	types:  [2]int32{unix.SO_TIMESTAMPNS_OLD, unix.SO_TIMESTAMPNS_NEW},
}

// kernelTimestamp finds the SO_TIMESTAMPNS receive time in a control message buffer, in Unix
// nanoseconds; 0 when absent.
func kernelTimestamp(oob []byte) int64 { return nativeCmsg.parseTimestamp(oob) }
