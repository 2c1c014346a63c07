// Package servetest runs a responder in the background for the length of a test.
package servetest

import (
	"context"
	"net/netip"
	"testing"
)

// Server answers the addresses it is allowed until its context ends, as the TCP and UDP
// responders do.
type Server interface {
	SetAllowed([]netip.Addr)
	Serve(ctx context.Context) error
}

// Serve takes s and err as its listen call returned them, fails the test at once when err is
// set, allows allow, and serves s until the test ends; the cleanup waits for Serve to return.
func Serve[S Server](t testing.TB, s S, err error, allow ...netip.Addr) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	s.SetAllowed(allow)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}
