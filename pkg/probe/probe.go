// Package probe sends probes to targets and reports what came back. It knows nothing of Prometheus:
// targets go in, per-target statistics come out.
package probe

import "time"

// The protocols, as the agent labels their series (protocol="..."). Every probe and responder
// takes its name from here.
const (
	ProtocolICMP = "icmp"
	ProtocolMTU  = "mtu"
	ProtocolTCP  = "tcp"
	ProtocolUDP  = "udp"
	ProtocolDNS  = "dns"
)

// Stats is what one target gave in one run.
//
// A packet counts as sent only once it is resolved: answered, past its deadline, or failed to send.
// Packets still in flight are in neither Sent nor Received, so loss computed from these counters
// never counts a packet that may still come back.
type Stats struct {
	// Sent is the number of resolved echoes: Received plus lost plus failed sends.
	Sent int
	// Received is the number of echoes answered within their timeout.
	Received int
	// SendErrors is the number of echoes the kernel refused to send (no route, for example); each is
	// also in Sent, as lost.
	SendErrors int
	// RTTs holds the round-trip time of every received echo, in the order they arrived.
	RTTs []time.Duration
	// Failures counts the lost echoes by reason, where the probe can tell (TCP: refused, timeout,
	// reset, other); nil otherwise.
	Failures map[string]int
}
