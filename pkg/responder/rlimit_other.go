//go:build !unix

package responder

// nofileLimit is 0 (unknown) off Unix: the responder then keeps its own cap.
func nofileLimit() uint64 { return 0 }
