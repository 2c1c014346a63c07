package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nodeping/nodeping/internal/netns"
)

// OpenTAP creates a TAP device (Ethernet frames, each preceded by a virtio-net header so that
// offloaded frames pass unchanged) in network namespace ns, and returns it. The device goes away
// when the file is closed.
func OpenTAP(ns, name string) (*os.File, error) {
	return openTun(ns, name, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
}

// OpenTUN creates a TUN device (bare IP packets) in network namespace ns, and returns it.
func OpenTUN(ns, name string) (*os.File, error) {
	return openTun(ns, name, unix.IFF_TUN|unix.IFF_NO_PI)
}

func openTun(ns, name string, flags uint16) (f *os.File, err error) {
	inErr := netns.Do(ns, func() {
		var fd int
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			err = fmt.Errorf("open /dev/net/tun: %w", err)
			return
		}
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(name); err != nil {
			unix.Close(fd)
			return
		}
		ifr.SetUint16(flags)
		if err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			err = fmt.Errorf("create %s: %w", name, err)
			return
		}
		f = os.NewFile(uintptr(fd), name)
	})
	if inErr != nil {
		if f != nil {
			f.Close()
		}
		return nil, inErr
	}
	return f, err
}

// OpenPacket opens a packet socket on interface ifname in network namespace ns: it reads every
// frame the interface receives (not those it sends) and sends frames out of it, each preceded by
// a virtio-net header as on a TAP device opened by OpenTAP.
func OpenPacket(ns, ifname string) (f *os.File, err error) {
	inErr := netns.Do(ns, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return
		}
		proto := htons(unix.ETH_P_ALL)
		var fd int
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			err = fmt.Errorf("packet socket: %w", err)
			return
		}
		for _, o := range [][2]int{{unix.PACKET_VNET_HDR, 1}, {unix.PACKET_IGNORE_OUTGOING, 1}} {
			if err = unix.SetsockoptInt(fd, unix.SOL_PACKET, o[0], o[1]); err != nil {
				unix.Close(fd)
				err = fmt.Errorf("packet socket option %d: %w", o[0], err)
				return
			}
		}
		if err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			err = fmt.Errorf("bind packet socket to %s: %w", ifname, err)
			return
		}
		f = os.NewFile(uintptr(fd), "packet:"+ifname)
	})
	if inErr != nil {
		if f != nil {
			f.Close()
		}
		return nil, inErr
	}
	return f, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Link is a running delay link.
type Link struct {
	files  []*os.File
	pipes  []*Pipe
	scheds []*Schedule
}

// Bridge relays between a and b, both ways, each way on its own schedule of delay d.
func Bridge(a, b *os.File, d Delay, seed uint64) *Link {
	l := &Link{files: []*os.File{a, b}}
	for i, dir := range [][2]*os.File{{a, b}, {b, a}} {
		s := NewSchedule(d, rand.New(rand.NewPCG(seed, uint64(i))))
		l.scheds = append(l.scheds, s)
		l.pipes = append(l.pipes, StartPipe(dir[0], dir[1], s))
	}
	return l
}

// Loop relays a TUN device's packets back into it after delay d: the kernel routes what it
// reads there, and routes it again, by destination, when it comes back.
func Loop(f *os.File, d Delay, seed uint64) *Link {
	s := NewSchedule(d, rand.New(rand.NewPCG(seed, 0)))
	return &Link{files: []*os.File{f}, scheds: []*Schedule{s}, pipes: []*Pipe{StartPipe(f, f, s)}}
}

// Set changes the delay of every direction, for packets from now on.
func (l *Link) Set(d Delay) {
	for _, s := range l.scheds {
		s.Set(d)
	}
}

// Stats returns the packets forwarded and dropped so far, over every direction.
func (l *Link) Stats() (forwarded, dropped uint64) {
	for _, p := range l.pipes {
		forwarded += p.Forwarded()
		dropped += p.Dropped()
	}
	return forwarded, dropped
}

// Close stops the link and closes its devices (a TAP or TUN device disappears with its file).
func (l *Link) Close() error {
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.Close())
	}
	for _, p := range l.pipes {
		errs = append(errs, p.Wait())
	}
	return errors.Join(errs...)
}
