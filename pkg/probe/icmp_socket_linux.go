package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nodeping/nodeping/internal/sockopt"
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
	// file holds the socket, non-blocking but not in the runtime's poller (see openICMPSocket);
	// every system call on it goes through rc.Control.
	file *os.File
	rc   syscall.RawConn
	// ep is an epoll instance, in the runtime's poller, that holds the socket with EPOLLONESHOT:
	// the receiver arms it before it waits, so the socket wakes the process only when a receiver
	// waits for it, not for every packet it queues while the engine reads it by itself.
	ep     *os.File
	epRC   syscall.RawConn
	epWait func(ep uintptr) bool // takes the event, for epRC.Read
	epEvs  [1]unix.EpollEvent
	// sendCall is send's sendmmsg call, used by the run's goroutine only (one Run at a time).
	sendCall *mmsgCall
	// inHand counts receivers that may hold packets read from the socket but not yet matched;
	// expire waits for it to fall to zero (see ICMP.expire).
	inHand atomic.Int32
}

// openICMPSocket opens a raw ICMP socket, or an unprivileged ping socket when raw sockets are not
// permitted, with kernel receive timestamps and the DF bit as asked.
//
// The socket is opened blocking, so that os.NewFile leaves it out of the runtime's poller (which
// would wake a thread for every packet the socket queues, whether or not anyone waits for it),
// and then made non-blocking; readiness comes from the EPOLLONESHOT instance ep instead.
func openICMPSocket(v6 bool, id uint16, dontFragment bool) (*icmpSocket, error) {
	family, proto, sysctl := unix.AF_INET, unix.IPPROTO_ICMP, "net.ipv4.ping_group_range"
	if v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	s := &icmpSocket{v6: v6, mode: ModeRaw, id: id, sendCall: newMmsgCall(unix.SYS_SENDMMSG, 0)}
	s.sendCall.wait = true
	s.epWait = func(ep uintptr) bool {
		n, err := unix.EpollWait(int(ep), s.epEvs[:], 0)
		return n > 0 || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		rawErr := err
		s.mode = ModeDgram
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
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
	name := fmt.Sprintf("icmp-%s-%s", familyName(v6), s.mode)
	s.file = os.NewFile(uintptr(fd), name) // blocking: not in the poller
	if err := unix.SetNonblock(fd, true); err != nil {
		s.file.Close()
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	rc, err := s.file.SyscallConn()
	if err != nil {
		s.file.Close()
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	s.rc = rc
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		if err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(fd)}); err == nil {
			err = unix.SetNonblock(ep, true)
		}
		if err != nil {
			unix.Close(ep)
		}
	}
	if err != nil {
		s.file.Close()
		return nil, fmt.Errorf("icmp socket epoll: %w", err)
	}
	s.ep = os.NewFile(uintptr(ep), name+"-epoll") // non-blocking: in the poller
	if s.epRC, err = s.ep.SyscallConn(); err != nil {
		s.ep.Close()
		s.file.Close()
		return nil, fmt.Errorf("icmp socket epoll: %w", err)
	}
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
	sockopt.ForceReadBuffer(fd, 4<<20)
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
	// An ICMPv6 socket is given the ICMP message; an ICMPv4 one, the IPv4 packet: its loads are
	// from X, set to the IPv4 header's length.
	var prog []bpf.Instruction
	var reply uint32 = icmpv6EchoReply
	load := func(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }
	if !v6 {
		prog = []bpf.Instruction{bpf.LoadMemShift{Off: 0}} // X = IPv4 header length
		reply = icmpv4EchoReply
		load = func(off uint32, size int) bpf.Instruction { return bpf.LoadIndirect{Off: off, Size: size} }
	}
	prog = append(prog,
		load(0, 1), // ICMP type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: reply, SkipTrue: 3},
		load(4, 2), // echo identifier
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(id), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	)
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

// close wakes a receiver waiting for the socket (its wait fails), then closes the socket.
func (s *icmpSocket) close() error { return errors.Join(s.ep.Close(), s.file.Close()) }

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
	// recvCall is recvmmsg on hdrs, without waiting.
	recvCall *mmsgCall
}

func newRecvBatch(bufSize int) *mmsgBatch {
	b := &mmsgBatch{}
	b.recvCall = newMmsgCall(unix.SYS_RECVMMSG, unix.MSG_DONTWAIT)
	b.recvCall.hdrs = b.hdrs[:]
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

// mmsgCall is one sendmmsg or recvmmsg call's arguments and results, with the function that
// makes it (for RawConn.Control) built once: a call allocates nothing.
type mmsgCall struct {
	trap   uintptr
	flags  int
	hdrs   []unix.Mmsghdr
	wait   bool          // on EAGAIN, wait up to sendPoll for room (sendmmsg) before returning
	waited time.Duration // how long send has waited so far; no wait from sendWait on
	n      int
	errno  unix.Errno
	fn     func(fd uintptr)
}

func newMmsgCall(trap uintptr, flags int) *mmsgCall {
	c := &mmsgCall{trap: trap, flags: flags}
	c.fn = func(fd uintptr) {
		c.n, c.errno = mmsg(c.trap, fd, c.hdrs, c.flags)
		if c.errno == unix.EAGAIN && c.wait && c.waited < sendWait {
			// The socket is not in the poller: wait for room here (rarely: a full buffer).
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, int(sendPoll/time.Millisecond))
		}
	}
	return c
}

// mmsg calls sendmmsg or recvmmsg. Every caller's call is non-blocking (MSG_DONTWAIT, or a
// non-blocking socket), so it is a raw system call: the runtime does not treat the goroutine as
// blocked, and the scheduler's monitor does not hand its processor to another thread while a
// batch of echoes goes through the loopback device (which made sysmon and thread wake-ups a
// sixth of the engine's CPU).
func mmsg(trap uintptr, fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(n), errno
}

// recv reads up to batchSize packets into b. It returns 0 and no error when nothing is queued
// and wait is false; when wait is true it blocks in the runtime poller until something arrives,
// and when it returns n > 0 the caller must call s.inHand.Add(-1) once it has matched them.
// One goroutine at a time may wait.
func (s *icmpSocket) recv(b *mmsgBatch, wait bool) (int, error) {
	if !wait {
		return s.recvNow(b)
	}
	for {
		s.inHand.Add(1) // before the read, so that a packet is never out of the socket without it
		n, err := s.recvNow(b)
		if n > 0 || err != nil {
			if n <= 0 {
				s.inHand.Add(-1)
			}
			return n, err
		}
		s.inHand.Add(-1)
		// Nothing queued: arm the socket's one-shot event (which reports data that is already
		// queued, too) and wait in the poller until the epoll instance has it.
		var armErr, sockErr error
		if err := s.epRC.Control(func(ep uintptr) {
			sockErr = s.rc.Control(func(fd uintptr) {
				armErr = unix.EpollCtl(int(ep), unix.EPOLL_CTL_MOD, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)})
			})
		}); err != nil || sockErr != nil {
			return 0, errSocketClosed
		}
		if armErr != nil {
			return 0, armErr
		}
		if err := s.epRC.Read(s.epWait); err != nil {
			return 0, errSocketClosed
		}
	}
}

// recvNow reads whatever is queued, up to batchSize packets, without waiting.
func (s *icmpSocket) recvNow(b *mmsgBatch) (int, error) {
	b.resetRecv(batchSize)
	c := b.recvCall
	if err := s.rc.Control(c.fn); err != nil {
		return 0, errSocketClosed
	}
	switch {
	case c.errno == unix.EAGAIN:
		return 0, nil
	case c.errno != 0:
		return 0, c.errno
	}
	return c.n, nil
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

// send writes msgs with sendmmsg, waiting (up to sendWait) for room when the socket buffer is
// full. It returns how many went out; when that is fewer than len(msgs), err is the error of the
// first one that did not.
func (s *icmpSocket) send(hdrs []unix.Mmsghdr) (int, error) {
	c := s.sendCall
	c.hdrs = hdrs
	defer func() { c.hdrs = nil }()
	for c.waited = 0; ; c.waited += sendPoll {
		if err := s.rc.Control(c.fn); err != nil {
			return 0, errSocketClosed
		}
		if c.errno != unix.EAGAIN || c.waited >= sendWait {
			break
		}
	}
	if c.errno != 0 {
		return 0, c.errno
	}
	return c.n, nil
}

// sendPoll and sendWait bound how long send waits for room in a full socket buffer.
const (
	sendPoll = 10 * time.Millisecond
	sendWait = 5 * time.Second
)

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
