package netns

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestForward: a connection to the forwarder reaches the upstream both ways, and a dial that
// fails goes to onErr and closes the accepted connection.
func TestForward(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fail := make(chan bool, 1)
	errs := make(chan error, 1)
	go Forward(ln, func() (net.Conn, error) {
		if len(fail) > 0 {
			<-fail
			return nil, errors.New("refused")
		}
		return net.Dial("tcp", up.Addr().String())
	}, func(err error) { errs <- err })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v; want the echo of ping", buf, err)
	}
	c.Close()

	fail <- true
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != io.EOF {
		t.Errorf("read %d bytes, %v after a failed dial; want EOF", n, err)
	}
	select {
	case err := <-errs:
		if err.Error() != "refused" {
			t.Errorf("onErr got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("onErr not called for a failed dial")
	}
}
