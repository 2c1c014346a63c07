package probe

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/nodeping/nodeping/pkg/udpecho"
)

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

// Span is how long a run takes at most: the last probe's send time plus its timeout.
func (c UDPConfig) Span() time.Duration {
	return span(c.Count, c.Interval, c.Timeout)
}

// UDP sends probes to peers' echo responders and times the echoes: per-packet RTT and loss, like
// the ICMP engine, over a few shared sockets (no goroutine per target), with the same in-flight
// table and send schedule. On Linux, RTTs come from kernel receive timestamps and the sockets are
// drained before any probe is judged lost, so a CPU-starved agent does not invent loss.
type UDP struct {
	cfg    UDPConfig
	cookie [8]byte
	socks  []*udpSock
	wg     sync.WaitGroup

	runner
	counters
}

// NewUDP opens the probe's sockets.
func NewUDP(cfg UDPConfig) (*UDP, error) {
	if err := checkPortProbe("udp", cfg.Port, cfg.Count, cfg.Interval, cfg.Timeout); err != nil {
		return nil, err
	}
	if cfg.Sockets < 1 {
		cfg.Sockets = 4
	}
	u := &UDP{cfg: cfg}
	u.init(cfg.Timeout)
	if _, err := rand.Read(u.cookie[:]); err != nil {
		return nil, err
	}
	for range cfg.Sockets {
		s, err := openUDPSock()
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("udp probe: %w", err)
		}
		u.socks = append(u.socks, s)
		u.wg.Add(1)
		go u.receive(s)
	}
	return u, nil
}

// Close closes the sockets.
func (u *UDP) Close() error {
	for _, s := range u.socks {
		s.conn.Close()
	}
	u.wg.Wait()
	return nil
}

// Counters returns the probe's running totals, the same set as the ICMP engine's.
func (u *UDP) Counters() EngineCounters { return u.load() }

// Run sends Count probes to every target, spread over the interval, and returns when each is
// answered or past its timeout. Stats are indexed like targets.
func (u *UDP) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	n := len(targets)
	rs := newRun(targets, u.cfg.Count)
	if n == 0 {
		return rs.stats, nil
	}
	if err := u.begin(&rs, "udp probe"); err != nil {
		return nil, err
	}
	defer u.end()
	pkt := make([]byte, udpecho.Len)
	sp := newSpread(n, u.cfg.Count, u.cfg.Interval, newRand())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start, lag := u.now(), maxLag(u.cfg.Interval)
	for i := range sp.total() {
		at, t, k := sp.at(i)
		start = rebase(start, at, u.now(), lag)
		if d := time.Duration(start + at - u.now()); d > 2*time.Millisecond {
			if err := sleep(ctx, timer, d, nil); err != nil {
				return nil, err
			}
			u.expire(u.drain)
		}
		u.mu.Lock()
		serial, ok := u.tab.add(int32(t), time.Now().UnixNano(), u.now())
		if !ok {
			u.tableFull.Add(1)
			rs.failed(int32(t))
			u.mu.Unlock()
			continue
		}
		u.mu.Unlock()
		udpecho.PutProbe(pkt, u.cookie, serial)
		sock := u.socks[(k+t)%len(u.socks)] // each probe of a burst from another source port
		if _, err := sock.conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(targets[t], uint16(u.cfg.Port))); err != nil {
			u.mu.Lock()
			if f := u.tab.get(serial); f != nil {
				u.tab.resolve(f)
				rs.failed(int32(t))
			}
			u.mu.Unlock()
		}
	}
	// Everything is sent: wait for the echoes or the deadlines, whichever comes first.
	return u.await(ctx, timer, &rs, u.drain)
}

// handle matches one datagram received from from, read at now (engine-monotonic) and received
// by the kernel at kernelTS (Unix nanoseconds; 0 when unknown), to its probe.
func (u *UDP) handle(b []byte, from netip.Addr, kernelTS, now int64) {
	serial, ok := udpecho.ParseEcho(b, u.cookie)
	if !ok {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	// The cookie and the serial number identify the probe, and only the address it was sent to
	// may answer it (the responder answers from the address probed): no node can answer, or
	// replay, another's echoes.
	f := u.tab.get(serial)
	rs := u.run
	if f == nil || rs == nil || rs.targets[f.target].Unmap() != from.Unmap() {
		u.late.Add(1)
		return
	}
	rtt := replyRTT(f.sentMono, now, f.sentWall, kernelTS)
	if rtt > u.cfg.Timeout {
		u.late.Add(1)
		return
	}
	u.tab.resolve(f)
	rs.answered(f.target, rtt)
}
