// Package responder answers peers' probes: a TCP listener whose handshake is the probe, and a UDP
// echo responder. Both run on the host network of every node, so both answer only the addresses of
// the current nodes list (SetAllowed), and both are bounded: the TCP responder in connections, file
// descriptors and time, the UDP responder in packets per second per source.
package responder
