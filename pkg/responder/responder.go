// Package responder answers peers' probes: a TCP listener that completes the handshake and closes
// the connection. (The UDP echo responder arrives with the UDP probe.)
package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
)

// TCP accepts connections and closes them at once: the handshake is the probe.
type TCP struct {
	l        net.Listener
	log      *slog.Logger
	accepted atomic.Uint64
}

// ListenTCP listens on addr (":9711", say).
func ListenTCP(addr string, log *slog.Logger) (*TCP, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp responder: %w", err)
	}
	return &TCP{l: l, log: log}, nil
}

// Addr is the listening address.
func (t *TCP) Addr() net.Addr { return t.l.Addr() }

// Accepted counts the connections answered.
func (t *TCP) Accepted() uint64 { return t.accepted.Load() }

// Serve answers until ctx ends.
func (t *TCP) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		t.l.Close()
	}()
	for {
		c, err := t.l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			t.log.Warn("tcp responder: accept failed", "err", err)
			continue
		}
		t.accepted.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST: no TIME_WAIT piles up on a busy node
		}
		c.Close()
	}
}
