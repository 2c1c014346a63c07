// Package responder answers peers' probes: a TCP listener whose handshake is the probe, and a UDP
// echo responder.
package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// closeWait bounds how long the TCP responder waits for a prober to close.
const closeWait = 5 * time.Second

// TCP accepts connections and waits for the prober to close them: the handshake is the probe.
// The prober closes first, with a reset, so that neither side keeps a TIME_WAIT entry, and a
// reset from this side can never race the prober's check of its own connect.
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
		go func() {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(closeWait))
			var b [64]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					return
				}
			}
		}()
	}
}
