package agent

import (
	"context"
	"flag"
	"fmt"
	"net/netip"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/responder"
	"github.com/nodeping/nodeping/pkg/results"
)

// UDPOptions set the UDP echo probe (protocol="udp") and the responder that answers peers'.
type UDPOptions struct {
	Port, Count, Every, Rate int
}

func (p *UDPOptions) protocol() string { return probe.ProtocolUDP }

func (p *UDPOptions) addFlags(fs *flag.FlagSet) {
	everyFlag(fs, &p.Every, p.protocol())
	fs.IntVar(&p.Port, "udp-port", 0, "UDP probe and echo responder port: the agent echoes probes from listed nodes on it and sends its own to every peer's, from rotating source ports (protocol=\"udp\"); 0 leaves both off")
	fs.IntVar(&p.Count, "udp-count", 5, "UDP probes per target per cycle")
	fs.IntVar(&p.Rate, "udp-responder-rate", 0, "most UDP probes the responder answers per second from each source address (burst: as many); the rest are dropped and counted (default 0: derived from --udp-count and --interval, see responder.DefaultPerSourceLimit)")
}

func (p *UDPOptions) validate(*Options) error {
	if p.Port < 0 || p.Port > 65535 || p.Port != 0 && (p.Count < 1 || p.Rate < 0) {
		return fmt.Errorf("--udp-port %d, --udp-count %d, --udp-responder-rate %d: want a port 0..65535 (0 is off), a count of at least 1 and a rate of 0 (derived) or more", p.Port, p.Count, p.Rate)
	}
	if err := checkEvery(p.protocol(), p.Every); err != nil {
		return err
	}
	return nil
}

func (p *UDPOptions) share(o *Options) *Share {
	return o.afterBurst(p.protocol(), p.Port != 0, p.Count)
}

func (p *UDPOptions) build(b *builder) (*Registration, error) {
	if p.Port == 0 {
		return nil, nil
	}
	u, err := probe.NewUDP(probe.UDPConfig{Port: p.Port, Count: p.Count, Interval: b.o.extraSpread(), Timeout: b.o.ICMP.Timeout})
	if err != nil {
		return nil, fmt.Errorf("set up the UDP probe: %w", err)
	}
	b.closers = append(b.closers, u.Close)
	b.engines = append(b.engines, Engine{Protocol: probe.ProtocolUDP, Counters: u.Counters})
	if !b.o.Once {
		lim := responder.DefaultPerSourceLimit(p.Count, b.o.Interval)
		if p.Rate > 0 {
			lim = responder.Limit{Rate: float64(p.Rate), Burst: p.Rate}
		}
		r, err := responder.ListenUDP(fmt.Sprintf(":%d", p.Port), lim, b.log)
		if err != nil {
			return nil, fmt.Errorf("start the UDP responder: %w", err)
		}
		b.responders = append(b.responders, udpResponder{r})
	}
	return &Registration{Probe: AddrProbe(u), Scope: NodesOnly, Every: p.Every}, nil
}

// udpResponder echoes listed nodes' probes and reports what it answered and dropped.
type udpResponder struct{ r *responder.UDP }

func (u udpResponder) Serve(ctx context.Context) error { return u.r.Serve(ctx) }

func (u udpResponder) UseList(l nodelist.List) { u.r.SetAllowed(allowList(l)) }

func (u udpResponder) Stats() results.ResponderStats {
	return results.ResponderStats{Protocol: probe.ProtocolUDP, Answered: u.r.Answered(), Dropped: u.r.Dropped()}
}

// allowList is every address of every listed node, this one's included: the responders answer
// those only.
func allowList(l nodelist.List) []netip.Addr {
	var addrs []netip.Addr
	for _, n := range l.Nodes {
		addrs = append(addrs, n.Addrs()...)
	}
	return addrs
}
