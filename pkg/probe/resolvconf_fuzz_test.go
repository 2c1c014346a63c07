package probe

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// FuzzResolversFromFile: whatever a resolv.conf holds, ResolversFromFile and NewDNS never panic,
// and every resolver the two accept is a host:port with a host.
func FuzzResolversFromFile(f *testing.F) {
	f.Add([]byte("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"))
	f.Add([]byte("nameserver ::1\nnameserver 127.0.0.53\noptions edns0 trust-ad port:5353\n"))
	f.Add([]byte("# only comments\n; and these\n"))
	f.Add([]byte("nameserver fe80::1%eth0\nnameserver\nnameserver 1.2.3.4 extra\n"))
	f.Add([]byte("options port:99999 timeout:-1 attempts:x\nnameserver 10.0.0.1"))
	f.Add([]byte("nameserver \x00\r\nnameserver \"8.8.8.8\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "resolv.conf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rs, err := ResolversFromFile(p)
		if err != nil {
			return
		}
		if len(rs) == 0 {
			t.Fatal("no resolver and no error")
		}
		// miekg/dns takes any word after "nameserver"; NewDNS is where the agent refuses, at
		// start-up with an error, what cannot be a resolver ("[::1]:53" gives "[[::1]:53]:53").
		if _, err := NewDNS(DNSConfig{Names: []string{"a."}, Resolvers: rs, Timeout: 1}); err != nil {
			return
		}
		for _, r := range rs {
			host, _, err := net.SplitHostPort(r)
			if err != nil {
				t.Fatalf("NewDNS took resolver %q, which is not host:port: %v", r, err)
			}
			if host == "" {
				t.Fatalf("NewDNS took resolver %q, which has no host", r)
			}
		}
	})
}
