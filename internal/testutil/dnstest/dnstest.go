// Package dnstest runs a real DNS server (github.com/miekg/dns) on loopback for tests.
package dnstest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// Answer decides the reply to a query for name: an rcode, and an A record's address when the
// rcode is NOERROR ("" for none).
type Answer func(name string) (rcode int, a string)

// Start serves answer on a free loopback UDP port until the test ends, and returns host:port.
func Start(t testing.TB, answer Answer) string {
	t.Helper()
	return Serve(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		name := r.Question[0].Name
		rcode, a := answer(name)
		m.Rcode = rcode
		if rcode == dns.RcodeSuccess && a != "" {
			if rr, err := dns.NewRR(name + " 30 IN A " + a); err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	}))
}

// Serve runs h on a free loopback UDP port until the test ends, and returns host:port: for a
// test whose answers need more than Answer gives (TTLs, other record types, counting queries).
func Serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
