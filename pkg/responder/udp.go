package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/nodeping/nodeping/pkg/udpecho"
)

// UDP drop reasons.
const (
	// DropNotANode: the source address is not in the nodes list.
	DropNotANode = "not_a_node"
	// DropSourcePort: the source port is privileged (below MinSourcePort) or the responder's own,
	// so the sender may be another responder or a service an answer would be reflected into.
	DropSourcePort = "source_port"
	// DropOversized: longer than a probe (udpecho.Len).
	DropOversized = "oversized"
	// DropMalformed: not a well-formed probe: shorter than one, or without its marker and kind.
	DropMalformed = "malformed"
	// DropRateLimited: the source is over its Limit.
	DropRateLimited = "rate_limited"
)

// MinSourcePort is the lowest source port answered: probers send from ephemeral ports, and an
// answer to a privileged port could only be reflected into a system service.
const MinSourcePort = 1024

// udpBatch is the most datagrams the UDP responder reads in one recvmmsg call.
const udpBatch = 64

// The per-source limit's defaults; see DefaultPerSourceLimit.
const (
	// Headroom multiplies what a healthy peer sends, so that retries, a cycle that starts early
	// after an overrun and two cycles' probes meeting in one interval never reach the limit.
	Headroom = 4
	// MinBurst is the smallest bucket: a peer's whole burst of a few probes always passes.
	MinBurst = 20
	// MinRate is the smallest refill rate, in packets per second.
	MinRate = 2.0
	// MaxSources bounds the table of per-source buckets. Only listed addresses get a bucket, so
	// it is reached only by a list of more than MaxSources addresses; then the idle are evicted
	// first, and a source that finds no room is answered within a shared overflow bucket.
	MaxSources = 65536
	// SourceIdle is how long an untouched bucket lives: it would be full again by then anyway.
	SourceIdle = time.Minute
)

// Limit is a token bucket: Rate packets per second sustained, Burst at once.
type Limit struct {
	Rate  float64
	Burst int
}

// DefaultPerSourceLimit is the per-source limit for peers that each send probesPerInterval UDP
// probes to one of this node's addresses every interval (the agent's --udp-count, divided by
// --udp-every):
//
//	Burst = max(MinBurst, Headroom × probesPerInterval)
//	Rate  = max(MinRate, Burst / interval)
//
// A peer may thus send Headroom times its whole cycle's probes at once and again every interval,
// far above what a healthy peer sends, while one noisy or broken peer can take no more than that,
// and never another peer's answers: every source has its own bucket. With the shipped flags (5
// probes per 15 s) that is a burst of 20 and 2 packets per second per source.
func DefaultPerSourceLimit(probesPerInterval int, interval time.Duration) Limit {
	burst := max(MinBurst, Headroom*probesPerInterval)
	rate := MinRate
	if interval > 0 {
		rate = max(MinRate, float64(burst)/interval.Seconds())
	}
	return Limit{Rate: rate, Burst: burst}
}

// bucket is one token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b up to lim and takes one token if there is one.
func (b *bucket) take(now time.Time, lim Limit) bool {
	b.tokens = min(float64(lim.Burst), b.tokens+now.Sub(b.last).Seconds()*lim.Rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limiter holds one bucket per source address, bounded in size; idle buckets expire.
type limiter struct {
	mu        sync.Mutex
	lim       Limit
	max       int
	sources   map[netip.Addr]*bucket
	overflow  bucket
	lastSweep time.Time
}

func newLimiter(lim Limit, maxSources int) *limiter {
	return &limiter{lim: lim, max: maxSources, sources: map[netip.Addr]*bucket{}}
}

// take reports whether src may be answered now.
func (l *limiter) take(src netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= SourceIdle {
		l.sweep(now)
	}
	b, ok := l.sources[src]
	if !ok {
		if len(l.sources) >= l.max {
			l.sweep(now)
		}
		if len(l.sources) >= l.max {
			return l.overflow.take(now, l.lim)
		}
		b = &bucket{tokens: float64(l.lim.Burst), last: now}
		l.sources[src] = b
	}
	return b.take(now, l.lim)
}

// sweep drops the buckets untouched for SourceIdle.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for a, b := range l.sources {
		if now.Sub(b.last) >= SourceIdle {
			delete(l.sources, a)
		}
	}
}

// keepOnly drops the buckets of addresses that left the list.
func (l *limiter) keepOnly(allowed *allowList) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a := range l.sources {
		if !allowed.has(a) {
			delete(l.sources, a)
		}
	}
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// udpSocketBuffer is the receive and send buffer the UDP responder asks for.
const udpSocketBuffer = 4 << 20

// UDP echoes probes back to their sender. On a host-network pod it must not be a reflection or
// amplification vector: it answers only a well-formed nodeping probe (udpecho.IsProbe: exactly
// udpecho.Len bytes with the marker), only from an address in the current nodes list and a source
// port of at least MinSourcePort other than its own, never with more bytes than it received, and
// at most its Limit per source address; everything else is dropped and counted by reason. A
// source over its limit costs no other source an answer. The answer is the probe turned into its
// echo (udpecho.MakeEcho), which no responder answers, so two responders never answer each other.
//
// It reads in batches (recvmmsg on Linux) and answers from the address each probe was sent to, so
// that a node with several addresses answers every probe from the address probed.
type UDP struct {
	conn    *net.UDPConn
	pc      packetConn
	port    uint16
	log     *slog.Logger
	allowed allowList
	lim     *limiter
	now     func() time.Time

	answered atomic.Uint64
	dropped  drops
}

// ListenUDP listens on addr (":9711", say) and answers each listed source at most lim. It answers
// nobody until SetAllowed.
func ListenUDP(addr string, lim Limit, log *slog.Logger) (*UDP, error) {
	if lim.Rate <= 0 || lim.Burst < 1 {
		return nil, fmt.Errorf("udp responder: limit %+v: want a positive rate and a burst of at least 1", lim)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp responder: %w", err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("udp responder: %w", err)
	}
	// Peers' probes arrive in bursts (each agent sends its probes to all targets within a second
	// or so). The default receive buffer (about 200 KB, a few hundred small datagrams) overflows
	// on a busy node.
	setReadBuffer(c, udpSocketBuffer, log)
	if err := c.SetWriteBuffer(udpSocketBuffer); err != nil {
		log.Debug("udp responder: setting the send buffer failed", "bytes", udpSocketBuffer, "err", err)
	}
	u := &UDP{conn: c, pc: newPacketConn(c, log), port: uint16(c.LocalAddr().(*net.UDPAddr).Port), log: log,
		lim: newLimiter(lim, MaxSources), now: time.Now}
	u.allowed.set(nil)
	return u, nil
}

// Addr is the listening address.
func (u *UDP) Addr() net.Addr { return u.conn.LocalAddr() }

// SetAllowed replaces the set of addresses answered (the nodes list's), and forgets the rate of
// the addresses that left it.
func (u *UDP) SetAllowed(addrs []netip.Addr) {
	u.allowed.set(addrs)
	u.lim.keepOnly(&u.allowed)
}

// Answered counts the probes echoed.
func (u *UDP) Answered() uint64 { return u.answered.Load() }

// Dropped returns the packets dropped, by reason.
func (u *UDP) Dropped() map[string]uint64 { return u.dropped.snapshot() }

// Sources is the number of per-source buckets held.
func (u *UDP) Sources() int { return u.lim.len() }

// Serve answers until ctx ends.
func (u *UDP) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		u.conn.Close()
	}()
	ms := make([]ipv4.Message, udpBatch)
	for i := range ms {
		// One byte more than a probe, so that a longer datagram shows as longer (and truncated).
		ms[i].Buffers = [][]byte{make([]byte, udpecho.Len+1)}
		ms[i].OOB = u.pc.newOOB()
	}
	for {
		n, err := u.pc.readBatch(ms)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			u.log.Debug("udp responder: read failed", "err", err)
			continue
		}
		for i := range ms[:n] {
			u.answer(&ms[i])
		}
	}
}

// answer echoes one datagram read into m, or drops it and counts why.
func (u *UDP) answer(m *ipv4.Message) {
	from, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return
	}
	b := m.Buffers[0][:m.N]
	if reason := u.verdict(from.AddrPort(), b); reason != "" {
		u.dropped.add(reason)
		return
	}
	udpecho.MakeEcho(b)
	if err := u.pc.writeFrom(b, u.pc.dst(m.OOB[:m.NN]), from); err == nil {
		u.answered.Add(1)
	}
}

// verdict is why a datagram b from src is not answered, or "" when it is. The limiter is asked
// last, so that only what would be answered takes a token.
func (u *UDP) verdict(src netip.AddrPort, b []byte) string {
	switch {
	case !u.allowed.has(src.Addr()):
		return DropNotANode
	case src.Port() < MinSourcePort || src.Port() == u.port:
		return DropSourcePort
	case len(b) > udpecho.Len:
		return DropOversized
	case !udpecho.IsProbe(b):
		return DropMalformed
	case !u.lim.take(src.Addr().Unmap(), u.now()):
		return DropRateLimited
	}
	return ""
}
