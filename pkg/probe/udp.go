package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// udpPacketLen is a UDP probe: an 8-byte per-process cookie and a 4-byte sequence number, padded.
const udpPacketLen = 16

// UDPConfig sets the UDP probe.
type UDPConfig struct {
	// Port is the peers' UDP echo responder port.
	Port int
	// Count is the probes per target per run, Interval the time between two to one target, and
	// Timeout how long one may take to come back.
	Count             int
	Interval, Timeout time.Duration
	// Sockets is the number of source ports the probes rotate through, so that a burst crosses
	// several ECMP paths and one bad path shows as partial loss; default 4.
	Sockets int
}

// UDP sends probes to peers' echo responders and times the echoes: per-packet RTT and loss, like
// the ICMP engine, over a few shared sockets (no goroutine per target), with the sequence number
// indexing a table of probes in flight.
type UDP struct {
	cfg    UDPConfig
	cookie [8]byte
	socks  []*net.UDPConn
	wg     sync.WaitGroup

	mu    sync.Mutex
	seq   uint32
	slots []udpSlot
	run   *udpRun
}

type udpSlot struct {
	seq    uint32
	target int32
	active bool
	sent   time.Time
}

type udpRun struct {
	targets []netip.Addr
	stats   []Stats
	pending int
	done    chan struct{}
}

// NewUDP opens the probe's sockets.
func NewUDP(cfg UDPConfig) (*UDP, error) {
	switch {
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, errors.New("udp probe: port must be 1..65535")
	case cfg.Count < 1 || cfg.Interval <= 0 || cfg.Timeout <= 0:
		return nil, errors.New("udp probe: count, interval and timeout must be positive")
	}
	if cfg.Sockets < 1 {
		cfg.Sockets = 4
	}
	u := &UDP{cfg: cfg, slots: make([]udpSlot, 1<<16)}
	if _, err := rand.Read(u.cookie[:]); err != nil {
		return nil, err
	}
	for range cfg.Sockets {
		c, err := net.ListenUDP("udp", &net.UDPAddr{})
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("udp probe: %w", err)
		}
		u.socks = append(u.socks, c)
		u.wg.Add(1)
		go u.receive(c)
	}
	return u, nil
}

// Close closes the sockets.
func (u *UDP) Close() error {
	for _, c := range u.socks {
		c.Close()
	}
	u.wg.Wait()
	return nil
}

// Run sends Count probes to every target, spread over the interval, and returns when each is
// answered or past its timeout. Stats are indexed like targets.
func (u *UDP) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	n := len(targets)
	rs := &udpRun{targets: targets, stats: make([]Stats, n), pending: n * u.cfg.Count, done: make(chan struct{})}
	if n == 0 {
		return rs.stats, nil
	}
	u.mu.Lock()
	if u.run != nil {
		u.mu.Unlock()
		return nil, errors.New("udp probe: a run is already in progress")
	}
	u.run = rs
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		for i := range u.slots {
			u.slots[i].active = false
		}
		u.run = nil
		u.mu.Unlock()
	}()
	pkt := make([]byte, udpPacketLen)
	copy(pkt, u.cookie[:])
	start := time.Now()
	var last time.Time
	for k := 0; k < u.cfg.Count; k++ {
		for i, t := range targets {
			at := start.Add(time.Duration(k)*u.cfg.Interval + time.Duration(int64(u.cfg.Interval)*int64(i)/int64(n)))
			if d := time.Until(at); d > 2*time.Millisecond {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(d):
				}
			}
			u.mu.Lock()
			u.seq++
			seq := u.seq
			sl := &u.slots[uint16(seq)]
			*sl = udpSlot{seq: seq, target: int32(i), active: true, sent: time.Now()}
			last = sl.sent
			u.mu.Unlock()
			binary.BigEndian.PutUint32(pkt[8:12], seq)
			sock := u.socks[(k+i)%len(u.socks)] // each probe of a burst from another source port
			if _, err := sock.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(t, uint16(u.cfg.Port))); err != nil {
				u.mu.Lock()
				if sl.active && sl.seq == seq {
					sl.active = false
					rs.stats[i].Sent++
					rs.stats[i].SendErrors++
					u.resolved(rs)
				}
				u.mu.Unlock()
			}
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-rs.done:
	case <-time.After(time.Until(last.Add(u.cfg.Timeout))):
	}
	// Whatever is still in flight has passed its timeout: lost.
	u.mu.Lock()
	for i := range u.slots {
		if sl := &u.slots[i]; sl.active {
			sl.active = false
			rs.stats[sl.target].Sent++
		}
	}
	u.mu.Unlock()
	return rs.stats, nil
}

func (u *UDP) resolved(rs *udpRun) {
	rs.pending--
	if rs.pending == 0 {
		close(rs.done)
	}
}

func (u *UDP) receive(c *net.UDPConn) {
	defer u.wg.Done()
	buf := make([]byte, 64)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // ICMP port unreachable and the like: the probe times out
		}
		now := time.Now()
		seq, ok := parseUDPEcho(buf[:n], u.cookie)
		if !ok {
			continue
		}
		u.mu.Lock()
		sl := &u.slots[uint16(seq)]
		rs := u.run
		// The cookie and the sequence number identify the probe; the echo's source address is not
		// checked, since a responder on a node with several addresses may answer from another one.
		if rs != nil && sl.active && sl.seq == seq {
			if rtt := now.Sub(sl.sent); rtt <= u.cfg.Timeout {
				sl.active = false
				st := &rs.stats[sl.target]
				st.Sent++
				st.Received++
				st.RTTs = append(st.RTTs, rtt)
				u.resolved(rs)
			}
		}
		u.mu.Unlock()
	}
}

// parseUDPEcho checks an echoed probe and returns its sequence number.
func parseUDPEcho(b []byte, cookie [8]byte) (uint32, bool) {
	if len(b) != udpPacketLen || string(b[:8]) != string(cookie[:]) {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), true
}
