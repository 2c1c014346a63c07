package probe

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nodeping/nodeping/internal/testutil/dnstest"
)

// startDNS serves ok.test. with an A record, fail.test. with SERVFAIL, anything else NXDOMAIN.
func startDNS(t *testing.T) string {
	return dnstest.Start(t, func(name string) (int, string) {
		switch name {
		case "ok.test.":
			return dns.RcodeSuccess, "198.18.0.1"
		case "fail.test.":
			return dns.RcodeServerFailure, ""
		}
		return dns.RcodeNameError, ""
	})
}

func TestDNSProbe(t *testing.T) {
	server := startDNS(t)
	// A resolver that never answers: a socket that reads and ignores.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	d, err := NewDNS(DNSConfig{Names: []string{"ok.test", "missing.test.", "fail.test."}, Resolvers: []string{server, silent.LocalAddr().String()}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := d.Run(context.Background())
	got := map[string]string{}
	for _, r := range res {
		got[r.Resolver+" "+r.Name] = r.Rcode
		if r.Rcode != "timeout" && (r.Duration <= 0 || r.Duration > time.Second) {
			t.Errorf("%s %s: duration %s", r.Resolver, r.Name, r.Duration)
		}
	}
	want := map[string]string{
		server + " ok.test.": "NOERROR", server + " missing.test.": "NXDOMAIN", server + " fail.test.": "SERVFAIL",
		silent.LocalAddr().String() + " ok.test.": "timeout", silent.LocalAddr().String() + " missing.test.": "timeout",
		silent.LocalAddr().String() + " fail.test.": "timeout",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: rcode %q, want %q", k, got[k], v)
		}
	}
}

func TestDNSConfig(t *testing.T) {
	for _, cfg := range []DNSConfig{
		{Names: nil, Resolvers: []string{"127.0.0.1:53"}, Timeout: time.Second},
		{Names: []string{"a..b"}, Resolvers: []string{"127.0.0.1:53"}, Timeout: time.Second},
		{Names: []string{"ok.test."}, Resolvers: []string{"127.0.0.1"}, Timeout: time.Second},
	} {
		if _, err := NewDNS(cfg); err == nil {
			t.Errorf("NewDNS(%+v) accepted a bad configuration", cfg)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("search cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"), 0o644)
	rs, err := ResolversFromFile(conf)
	sort.Strings(rs)
	if err != nil || len(rs) != 2 || rs[0] != "10.96.0.10:53" || rs[1] != "[fd00::a]:53" {
		t.Errorf("ResolversFromFile = %v, %v", rs, err)
	}
}
