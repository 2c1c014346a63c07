package probe

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// This file holds the ICMP engine's portable types; the engine itself is Linux-only
// (icmp_linux.go, icmp_socket_linux.go), with stubs elsewhere (icmp_other.go).

// ICMPConfig sets the echoes the engine sends to each target in one run.
type ICMPConfig struct {
	// Count is the number of echoes per target per run.
	Count int
	// Interval is the time between two echoes to the same target.
	Interval time.Duration
	// Timeout is how long an echo may take to come back before it counts as lost.
	Timeout time.Duration
	// Size is the echo payload in bytes (after the 8-byte ICMP header); at least 8.
	Size int
	// MTUSize, when set, makes room for an MTU probe (see MTUProbe) with this IPv4 payload.
	MTUSize int
	// DontFragment sets the DF bit (IPv4) or IPV6_DONTFRAG.
	DontFragment bool
}

// Validate reports the first setting that cannot work.
func (c ICMPConfig) Validate() error {
	switch {
	case c.Count < 1:
		return fmt.Errorf("icmp count %d: must be at least 1", c.Count)
	case c.Interval <= 0:
		return fmt.Errorf("icmp interval %s: must be positive", c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("icmp timeout %s: must be positive", c.Timeout)
	case c.Size < cookieLen || c.Size > 65000:
		return fmt.Errorf("icmp payload size %d: must be between %d and 65000 bytes", c.Size, cookieLen)
	case c.MTUSize != 0 && (c.MTUSize < cookieLen+20 || c.MTUSize > 65000):
		return fmt.Errorf("mtu probe payload size %d: must be between %d and 65000 bytes", c.MTUSize, cookieLen+20)
	}
	return nil
}

// Span is how long a run takes at most: the last echo's send time plus its timeout.
func (c ICMPConfig) Span() time.Duration {
	return span(c.Count, c.Interval, c.Timeout)
}

// EngineCounters are an engine's running totals across runs: the ICMP engine's (with the MTU
// probe's echoes, which share its sockets) and the UDP probe's keep the same set, so that the
// agent writes one schema for every engine, labelled by protocol.
type EngineCounters struct {
	// Late counts replies that matched no probe in flight: after their deadline, duplicates, or
	// from an address other than the one the probe went to. A packet that is not a reply to this
	// engine (another ID, no cookie) is ignored, not counted.
	Late uint64
	// RecvErrors counts errors reading the sockets (asynchronous ICMP errors, for example).
	RecvErrors uint64
	// TableFull counts probes not sent because the in-flight table was full: InflightCapacity
	// (65,536) probes sent within one timeout of the oldest one still unanswered. Each is also
	// counted in its target's Sent and SendErrors, so no probe goes uncounted.
	TableFull uint64
}

// counters keeps an engine's EngineCounters; the engines embed it.
type counters struct {
	late, recvErrors, tableFull atomic.Uint64
}

func (c *counters) load() EngineCounters {
	return EngineCounters{Late: c.late.Load(), RecvErrors: c.recvErrors.Load(), TableFull: c.tableFull.Load()}
}

// SocketMode says how an ICMP socket was opened.
type SocketMode string

const (
	// ModeRaw is a raw socket (needs CAP_NET_RAW) with a kernel BPF filter on the engine's ICMP ID.
	ModeRaw SocketMode = "raw"
	// ModeDgram is an unprivileged ping socket (allowed by net.ipv4.ping_group_range); the kernel
	// picks the ICMP ID and delivers only the replies to it.
	ModeDgram SocketMode = "dgram"
)

// RTTSummary returns the sum (not the mean: divide by len(rtts) for it), minimum, maximum and
// population standard deviation of rtts; all zero when rtts is empty.
func RTTSummary(rtts []time.Duration) (sum, minRTT, maxRTT, stddev time.Duration) {
	if len(rtts) == 0 {
		return 0, 0, 0, 0
	}
	minRTT, maxRTT = rtts[0], rtts[0]
	var s, sq float64
	for _, r := range rtts {
		minRTT, maxRTT = min(minRTT, r), max(maxRTT, r)
		s += float64(r)
		sq += float64(r) * float64(r)
	}
	mean := s / float64(len(rtts))
	return time.Duration(s), minRTT, maxRTT, time.Duration(math.Sqrt(max(sq/float64(len(rtts))-mean*mean, 0)))
}
