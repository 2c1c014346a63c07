package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/results"
)

// DNSOptions set the DNS probe (protocol="dns"): names resolved at resolvers, beside the others.
type DNSOptions struct {
	Names, Resolvers string
	Timeout          time.Duration
	Every            int
}

func (p *DNSOptions) protocol() string { return probe.ProtocolDNS }

func (p *DNSOptions) addFlags(fs *flag.FlagSet) {
	everyFlag(fs, &p.Every, p.protocol())
	fs.StringVar(&p.Names, "dns-names", "", "comma-separated names the DNS probe resolves every cycle (the DaemonSet sets kubernetes.default.svc.cluster.local.); empty leaves it off")
	fs.StringVar(&p.Resolvers, "dns-resolvers", "", "comma-separated host:port resolvers for the DNS probe (default: the nameservers of /etc/resolv.conf)")
	fs.DurationVar(&p.Timeout, "dns-timeout", 2*time.Second, "how long the DNS probe waits for an answer; it must fit in the interval")
}

func (p *DNSOptions) validate(*Options) error {
	if err := checkEvery(p.protocol(), p.Every); err != nil {
		return err
	}
	if p.Names != "" && p.Timeout <= 0 {
		return fmt.Errorf("--dns-timeout %s: must be positive", p.Timeout)
	}
	return nil
}

func (p *DNSOptions) share(*Options) *Share {
	if p.Names == "" {
		return nil
	}
	return &Share{Protocol: p.protocol(), What: fmt.Sprintf("--dns-timeout %s", p.Timeout), Wait: p.Timeout, Beside: true}
}

func (p *DNSOptions) build(b *builder) (*Registration, error) {
	if p.Names == "" {
		return nil, nil
	}
	resolvers := strings.Split(p.Resolvers, ",")
	if p.Resolvers == "" {
		if b.nameserversErr != nil {
			return nil, fmt.Errorf("set up the DNS probe: %w", b.nameserversErr)
		}
		resolvers = b.nameservers
	}
	d, err := probe.NewDNS(probe.DNSConfig{Names: strings.Split(p.Names, ","), Resolvers: resolvers, Timeout: p.Timeout})
	if err != nil {
		return nil, fmt.Errorf("set up the DNS probe: %w", err)
	}
	return &Registration{Probe: DNSProbe(d), Scope: NoTargets, Every: p.Every, Beside: true}, nil
}

// DNSQuerier is the shape of probe.DNS: every name at every resolver.
type DNSQuerier interface {
	Run(ctx context.Context) []probe.DNSResult
}

// DNSProbe adapts a DNSQuerier to the Probe contract: one sample per query, with its response
// code, and its time to an answer when one came.
func DNSProbe(d DNSQuerier) Probe { return dnsProbe{d} }

type dnsProbe struct{ d DNSQuerier }

func (p dnsProbe) Run(ctx context.Context, _ []Target, rep Reporter) error {
	for _, q := range p.d.Run(ctx) {
		st := probe.Stats{Sent: 1}
		if q.Answered() {
			st.Received, st.RTTs = 1, []time.Duration{q.Duration}
		}
		rep.Report(results.Sample{Pair: results.Pair{Kind: results.KindDNS, Name: q.Name, Host: q.Resolver}, Stats: st, Code: q.Rcode})
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(errors.New("dns probe stopped"), err)
	}
	return nil
}
