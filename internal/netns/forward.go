package netns

import (
	"io"
	"net"
	"time"
)

// Dial opens a TCP connection from inside namespace ns: the socket is created on a thread that
// has entered it, and keeps the namespace for its life.
func Dial(ns, addr string, timeout time.Duration) (conn net.Conn, err error) {
	if nsErr := Do(ns, func() { conn, err = net.DialTimeout("tcp", addr, timeout) }); nsErr != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, nsErr
	}
	return conn, err
}

// Serve accepts connections on ln until it is closed, and hands each to handle in a goroutine of
// its own, which closes it when handle returns.
func Serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// Forward serves ln (Serve), splicing each connection to a fresh one that dial opens (Dial, for
// one into a namespace). A failed dial closes the accepted connection and goes to onErr.
func Forward(ln net.Listener, dial func() (net.Conn, error), onErr func(error)) {
	Serve(ln, func(c net.Conn) {
		up, err := dial()
		if err != nil {
			onErr(err)
			return
		}
		defer up.Close()
		Splice(c, up)
	})
}

// Splice copies between a and b both ways until either side ends.
func Splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); done <- struct{}{} }()
	go func() { io.Copy(b, a); done <- struct{}{} }()
	<-done
}
