// Package udpecho is the wire format of nodeping's UDP probe, shared by the prober (pkg/probe)
// and the echo responder (pkg/responder).
//
// A probe is exactly Len bytes:
//
//	0..3   Marker ("NPG"), then KindProbe
//	4..11  the prober's per-process cookie
//	12..15 the probe's serial number, big-endian
//
// The responder answers only a well-formed probe, and answers with the same bytes but for the
// kind, which it turns into KindEcho. An echo is never a well-formed probe, so a responder never
// answers another responder's echo, whatever ports the two listen on.
package udpecho

import "encoding/binary"

// Len is the length of a probe and of its echo.
const Len = 16

// Marker opens every probe and echo.
const Marker = "NPG"

// The kinds, the byte after Marker.
const (
	KindProbe = 'p'
	KindEcho  = 'e'
)

// PutProbe writes the probe with cookie and serial into b[:Len].
func PutProbe(b []byte, cookie [8]byte, serial uint32) {
	_ = b[Len-1]
	copy(b, Marker)
	b[3] = KindProbe
	copy(b[4:12], cookie[:])
	binary.BigEndian.PutUint32(b[12:16], serial)
}

// IsProbe reports whether b is a well-formed probe: exactly Len bytes, Marker and KindProbe.
func IsProbe(b []byte) bool {
	return len(b) == Len && string(b[:3]) == Marker && b[3] == KindProbe
}

// MakeEcho turns the probe in b into its echo, in place; b must be a probe (IsProbe).
func MakeEcho(b []byte) { b[3] = KindEcho }

// ParseEcho returns the serial number of an echo of a probe carrying cookie.
func ParseEcho(b []byte, cookie [8]byte) (uint32, bool) {
	if len(b) != Len || string(b[:3]) != Marker || b[3] != KindEcho || string(b[4:12]) != string(cookie[:]) {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[12:16]), true
}
