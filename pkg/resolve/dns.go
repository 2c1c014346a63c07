package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// ErrNotFound is wrapped by the error for a name that does not exist (NXDOMAIN) or has no
// address (NOERROR without A or AAAA records).
var ErrNotFound = errors.New("no such host")

// DNS is a Backend that asks nameservers with github.com/miekg/dns, which gives the answers'
// TTLs. It asks for A and AAAA records at once, each at the first server that answers (a failure
// or SERVFAIL moves on to the next), over UDP, and again over TCP when the answer was truncated.
// /etc/hosts is not read.
type DNS struct {
	// Servers are host:port addresses, as probe.ResolversFromFile gives them.
	Servers []string
	// Timeout bounds each exchange (2s when 0); the context bounds the whole look-up.
	Timeout time.Duration
}

// Lookup asks for name's A and AAAA records. The answer's TTL is the shortest of the records'
// (CNAMEs included) and of a family's negative TTL (its SOA's) when that family has none.
func (d DNS) Lookup(ctx context.Context, fqdn string) (Answer, error) {
	type result struct {
		addrs []netip.Addr
		ttl   time.Duration
		err   error
	}
	var res [2]result
	done := make(chan struct{})
	go func() {
		defer close(done)
		res[1].addrs, res[1].ttl, res[1].err = d.query(ctx, fqdn, dns.TypeAAAA)
	}()
	res[0].addrs, res[0].ttl, res[0].err = d.query(ctx, fqdn, dns.TypeA)
	<-done
	var ans Answer
	ttl := time.Duration(-1)
	for _, r := range res {
		ans.Addrs = append(ans.Addrs, r.addrs...)
		if r.err == nil || errors.Is(r.err, ErrNotFound) {
			if ttl < 0 || r.ttl < ttl {
				ttl = r.ttl
			}
		} else {
			ttl = 0 // a family failed: keep what the other gave for the floor only
		}
	}
	ans.TTL = max(ttl, 0)
	if len(ans.Addrs) > 0 {
		return ans, nil
	}
	for _, r := range res {
		if r.err != nil && !errors.Is(r.err, ErrNotFound) {
			return ans, fmt.Errorf("lookup %s: %w", fqdn, r.err)
		}
	}
	if res[0].err.Error() == res[1].err.Error() {
		return ans, fmt.Errorf("lookup %s: %w", fqdn, res[0].err)
	}
	return ans, fmt.Errorf("lookup %s: %w; %w", fqdn, res[0].err, res[1].err)
}

// query asks the servers in turn for one type of record, and returns its addresses and TTL.
func (d DNS) query(ctx context.Context, fqdn string, qtype uint16) ([]netip.Addr, time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(1232, false)
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	err := errors.New("no nameserver")
	for _, server := range d.Servers {
		var r *dns.Msg
		r, err = d.exchange(ctx, m, server, timeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, err
			}
			continue
		}
		switch r.Rcode {
		case dns.RcodeSuccess:
			var (
				addrs []netip.Addr
				ttl   = time.Duration(-1)
			)
			for _, rr := range r.Answer {
				var a netip.Addr
				switch v := rr.(type) {
				case *dns.A:
					a, _ = netip.AddrFromSlice(v.A.To4())
				case *dns.AAAA:
					a, _ = netip.AddrFromSlice(v.AAAA.To16())
				case *dns.CNAME:
				default:
					continue
				}
				if t := time.Duration(rr.Header().Ttl) * time.Second; ttl < 0 || t < ttl {
					ttl = t
				}
				if a.IsValid() {
					addrs = append(addrs, a.Unmap())
				}
			}
			if len(addrs) == 0 {
				return nil, negativeTTL(r), fmt.Errorf("%w: no %s record", ErrNotFound, dns.TypeToString[qtype])
			}
			return addrs, ttl, nil
		case dns.RcodeNameError:
			return nil, negativeTTL(r), fmt.Errorf("%w (NXDOMAIN)", ErrNotFound)
		default:
			err = fmt.Errorf("%s from %s", dns.RcodeToString[r.Rcode], server)
		}
	}
	return nil, 0, err
}

// exchange sends m to server over UDP, and over TCP when the answer is truncated.
func (d DNS) exchange(ctx context.Context, m *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	r, _, err := (&dns.Client{Net: "udp", Timeout: timeout}).ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		r, _, err = (&dns.Client{Net: "tcp", Timeout: timeout}).ExchangeContext(ctx, m, server)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("%s: timeout", server)
	}
	return r, err
}

// negativeTTL is how long a negative answer may be kept (RFC 2308): the smaller of its SOA
// record's TTL and minimum; 0 when it has none.
func negativeTTL(r *dns.Msg) time.Duration {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}
