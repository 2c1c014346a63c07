//go:build !linux

package probe

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// errICMPUnsupported is what the ICMP engine says outside Linux: it needs Linux's sendmmsg,
// recvmmsg, socket filters and ping sockets. pro-bing (ProBing) works elsewhere.
var errICMPUnsupported = errors.New("icmp engine: supported on Linux only")

// ICMP is the Linux echo engine (see icmp_linux.go); on this platform NewICMP fails.
type ICMP struct{}

// NewICMP fails outside Linux.
func NewICMP(cfg ICMPConfig, log *slog.Logger) (*ICMP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, errICMPUnsupported
}

// Modes reports no sockets.
func (e *ICMP) Modes() (ipv4, ipv6 SocketMode) { return "", "" }

// Counters returns zero counters.
func (e *ICMP) Counters() EngineCounters { return EngineCounters{} }

// Close does nothing.
func (e *ICMP) Close() error { return nil }

// Run fails outside Linux.
func (e *ICMP) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	return nil, errICMPUnsupported
}

// MTUProbe is the Linux engine's MTU probe; on this platform NewMTUProbe fails.
type MTUProbe struct{}

// NewMTUProbe fails outside Linux.
func (e *ICMP) NewMTUProbe(mtu, count int, spread time.Duration) (*MTUProbe, error) {
	return nil, errICMPUnsupported
}

// Run fails outside Linux.
func (p *MTUProbe) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	return nil, errICMPUnsupported
}
