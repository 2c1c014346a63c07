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

	"github.com/nodeping/nodeping/internal/lograte"
)

// TCP drop reasons (a connection from an unlisted address is DropNotANode, as for UDP).
const (
	DropOverCapacity = "over_capacity"
	DropAcceptError  = "accept_error"
)

// Defaults of TCPConfig.
const (
	// DefaultMaxConns is the most connections the TCP responder holds at once. A peer's probe
	// holds one for a round trip, so even 5,000 peers probing in the same second need far fewer.
	DefaultMaxConns = 256
	// DefaultConnDeadline is how long a connection may stay open; probers close at once.
	DefaultConnDeadline = 2 * time.Second
	// ReservedFDs are the file descriptors kept free for the agent's own work (the textfile, its
	// temporary file and directory sync, the nodes list, the probes' sockets) whatever the cap says.
	ReservedFDs = 128
	// LogEvery is the shortest time between two log lines about the same kind of failure.
	LogEvery = 10 * time.Second
)

// TCPConfig bounds the TCP responder. Zero values take the defaults.
type TCPConfig struct {
	MaxConns     int
	ConnDeadline time.Duration
	// NoFileLimit is RLIMIT_NOFILE's soft limit; 0 reads it from the process. MaxConns is lowered
	// to at most a quarter of it, and to at most NoFileLimit - ReservedFDs.
	NoFileLimit uint64
}

// effectiveMaxConns applies the defaults and the file descriptor ceiling.
func (c TCPConfig) effectiveMaxConns() int {
	n := c.MaxConns
	if n <= 0 {
		n = DefaultMaxConns
	}
	lim := c.NoFileLimit
	if lim == 0 {
		lim = nofileLimit()
	}
	if lim > 0 {
		ceiling := int(min(lim/4, lim-min(lim, ReservedFDs)))
		n = min(n, ceiling)
	}
	return max(n, 1)
}

// allowList is a set of peer addresses, swapped whole on every nodes-list reload.
type allowList struct {
	p atomic.Pointer[map[netip.Addr]struct{}]
}

func (a *allowList) set(addrs []netip.Addr) {
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, x := range addrs {
		m[x.Unmap()] = struct{}{}
	}
	a.p.Store(&m)
}

func (a *allowList) has(x netip.Addr) bool {
	m := a.p.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[x.Unmap()]
	return ok
}

// drops counts dropped packets or connections by reason.
type drops struct{ m sync.Map } // reason -> *atomic.Uint64

func (d *drops) add(reason string) {
	v, _ := d.m.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func (d *drops) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	d.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// TCP accepts connections and waits for the prober to close them: the handshake is the probe.
// The prober closes first, with a reset, so that neither side keeps a TIME_WAIT entry, and a
// reset from this side can never race the prober's check of its own connect.
//
// The kernel completes a handshake before the process sees the peer's address, so an unlisted
// peer's connection is accepted and then reset at once: it costs one file descriptor for a few
// microseconds and is counted, never held. So is every connection above MaxConns. Accept errors
// (EMFILE, ENFILE, ENOBUFS) back off from 5 ms to 1 s and are logged at most once per LogEvery.
type TCP struct {
	l        *net.TCPListener
	log      *slog.Logger
	allowed  allowList
	sem      chan struct{}
	deadline time.Duration
	logLim   lograte.Limiter

	answered atomic.Uint64
	dropped  drops
	wg       sync.WaitGroup
}

// ListenTCP listens on addr (":9711", say) with the bounds of cfg (TCPConfig{}: the defaults).
// It answers nobody until SetAllowed.
func ListenTCP(addr string, cfg TCPConfig, log *slog.Logger) (*TCP, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp responder: %w", err)
	}
	d := cfg.ConnDeadline
	if d <= 0 {
		d = DefaultConnDeadline
	}
	t := &TCP{l: l.(*net.TCPListener), log: log, sem: make(chan struct{}, cfg.effectiveMaxConns()), deadline: d,
		logLim: lograte.Limiter{Period: LogEvery}}
	t.allowed.set(nil)
	return t, nil
}

// Addr is the listening address.
func (t *TCP) Addr() net.Addr { return t.l.Addr() }

// MaxConns is the cap on connections held at once, after the file descriptor ceiling.
func (t *TCP) MaxConns() int { return cap(t.sem) }

// SetAllowed replaces the set of addresses answered (the nodes list's).
func (t *TCP) SetAllowed(addrs []netip.Addr) { t.allowed.set(addrs) }

// Answered counts the connections answered (accepted from a listed peer and held).
func (t *TCP) Answered() uint64 { return t.answered.Load() }

// Dropped returns the connections refused, by reason, and the accept errors.
func (t *TCP) Dropped() map[string]uint64 { return t.dropped.snapshot() }

// Open is the number of connections held now.
func (t *TCP) Open() int { return len(t.sem) }

// Serve answers until ctx ends, and returns once every connection is closed.
func (t *TCP) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		t.l.Close()
	}()
	defer t.wg.Wait()
	var backoff time.Duration
	for {
		c, err := t.l.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			t.dropped.add(DropAcceptError)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if ok, n := t.logLim.Allow("", time.Now()); ok {
				t.log.Warn("tcp responder: accept failed, backing off", "err", err, "backoff", backoff, "suppressed", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		if !t.allowed.has(from) {
			t.dropped.add(DropNotANode)
			reset(c)
			continue
		}
		select {
		case t.sem <- struct{}{}:
		default:
			t.dropped.add(DropOverCapacity)
			reset(c)
			continue
		}
		t.answered.Add(1)
		t.wg.Add(1)
		go t.hold(c)
	}
}

// hold keeps a connection until the prober closes it or the deadline passes.
func (t *TCP) hold(c *net.TCPConn) {
	defer func() {
		c.Close()
		<-t.sem
		t.wg.Done()
	}()
	c.SetReadDeadline(time.Now().Add(t.deadline))
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// reset closes c with a RST, so it leaves no TIME_WAIT entry behind.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
