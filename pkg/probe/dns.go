package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNSConfig sets the DNS probe: every name is resolved against every resolver each run.
type DNSConfig struct {
	// Names are fully qualified (a final dot is added when missing).
	Names []string
	// Resolvers are host:port addresses.
	Resolvers []string
	Timeout   time.Duration
}

// DNSResult is one query's outcome.
type DNSResult struct {
	Resolver, Name string
	// Rcode is the response code ("NOERROR", "NXDOMAIN", "SERVFAIL", ...), or RcodeTimeout or
	// RcodeError when no response came.
	Rcode    string
	Duration time.Duration
}

// The outcomes of a query that got no response, in DNSResult.Rcode.
const (
	RcodeTimeout = "timeout"
	RcodeError   = "error"
)

// Answered tells whether a response came (with any response code).
func (r DNSResult) Answered() bool { return r.Rcode != RcodeTimeout && r.Rcode != RcodeError }

// DNS resolves names with github.com/miekg/dns, so that response codes and timings are exact.
type DNS struct {
	cfg    DNSConfig
	client *dns.Client
}

// NewDNS returns a DNS prober.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if len(cfg.Names) == 0 || len(cfg.Resolvers) == 0 || cfg.Timeout <= 0 {
		return nil, errors.New("dns probe: want names, resolvers and a positive timeout")
	}
	for i, n := range cfg.Names {
		cfg.Names[i] = dns.Fqdn(strings.TrimSpace(n))
		if _, ok := dns.IsDomainName(cfg.Names[i]); !ok {
			return nil, fmt.Errorf("dns probe: %q is not a domain name", n)
		}
	}
	for _, r := range cfg.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, fmt.Errorf("dns probe: resolver %q: want host:port: %w", r, err)
		}
	}
	return &DNS{cfg: cfg, client: &dns.Client{Net: "udp", Timeout: cfg.Timeout}}, nil
}

// ResolversFromFile reads the nameservers of a resolv.conf, as host:port.
func ResolversFromFile(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolvers: %w", err)
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read resolvers: no nameserver in %s", path)
	}
	return out, nil
}

// Run queries every name at every resolver, in parallel.
func (d *DNS) Run(ctx context.Context) []DNSResult {
	var (
		out []DNSResult
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	for _, r := range d.cfg.Resolvers {
		for _, n := range d.cfg.Names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := d.query(ctx, r, n)
				mu.Lock()
				out = append(out, res)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return out
}

func (d *DNS) query(ctx context.Context, resolver, name string) DNSResult {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	start := time.Now()
	resp, _, err := d.client.ExchangeContext(ctx, m, resolver)
	res := DNSResult{Resolver: resolver, Name: name, Duration: time.Since(start)}
	var ne net.Error
	switch {
	case err == nil:
		res.Rcode = dns.RcodeToString[resp.Rcode]
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		res.Rcode = RcodeTimeout
	default:
		res.Rcode = RcodeError
	}
	return res
}
