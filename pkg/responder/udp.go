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
)

// MaxUDPPayload is the largest probe the UDP responder answers; a nodeping UDP probe is 16 bytes.
const MaxUDPPayload = 512

// UDP drop reasons.
const (
	DropNotANode    = "not_a_node"
	DropOversized   = "oversized"
	DropRateLimited = "rate_limited"
)

// UDP echoes probes back to their sender. On a host-network pod it must not be a reflection or
// amplification vector: it answers only addresses in the current nodes list, never with more bytes
// than it received (the same bytes), at most MaxUDPPayload of them, and at most rate packets per
// second; everything else is dropped and counted.
type UDP struct {
	conn    *net.UDPConn
	log     *slog.Logger
	allowed atomic.Pointer[map[netip.Addr]struct{}]

	mu     sync.Mutex
	tokens float64
	last   time.Time
	rate   float64

	answered atomic.Uint64
	dropped  sync.Map // reason -> *atomic.Uint64
}

// ListenUDP listens on addr and answers at most rate packets per second (with a burst of one
// second's worth).
func ListenUDP(addr string, rate int, log *slog.Logger) (*UDP, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp responder: %w", err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("udp responder: %w", err)
	}
	u := &UDP{conn: c, log: log, rate: float64(rate), tokens: float64(rate), last: time.Now()}
	empty := map[netip.Addr]struct{}{}
	u.allowed.Store(&empty)
	return u, nil
}

// Addr is the listening address.
func (u *UDP) Addr() net.Addr { return u.conn.LocalAddr() }

// Allow replaces the set of addresses answered (the nodes list's).
func (u *UDP) Allow(addrs []netip.Addr) {
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		m[a.Unmap()] = struct{}{}
	}
	u.allowed.Store(&m)
}

// Answered counts the probes echoed.
func (u *UDP) Answered() uint64 { return u.answered.Load() }

// Dropped returns the packets dropped, by reason.
func (u *UDP) Dropped() map[string]uint64 {
	out := map[string]uint64{}
	u.dropped.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

func (u *UDP) drop(reason string) {
	v, _ := u.dropped.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// take reports whether the rate limit admits one more packet now.
func (u *UDP) take(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tokens = min(u.rate, u.tokens+now.Sub(u.last).Seconds()*u.rate)
	u.last = now
	if u.tokens < 1 {
		return false
	}
	u.tokens--
	return true
}

// Serve answers until ctx ends.
func (u *UDP) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		u.conn.Close()
	}()
	buf := make([]byte, 2048)
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			u.log.Debug("udp responder: read failed", "err", err)
			continue
		}
		switch _, ok := (*u.allowed.Load())[from.Addr().Unmap()]; {
		case !ok:
			u.drop(DropNotANode)
		case n > MaxUDPPayload:
			u.drop(DropOversized)
		case !u.take(time.Now()):
			u.drop(DropRateLimited)
		default:
			if _, err := u.conn.WriteToUDPAddrPort(buf[:n], from); err == nil {
				u.answered.Add(1)
			}
		}
	}
}
