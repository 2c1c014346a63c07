package agent

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/responder"
	"github.com/nodeping/nodeping/pkg/results"
)

// TCPOptions set the TCP handshake probe (protocol="tcp") and the responder that answers peers'.
type TCPOptions struct {
	Port, Count, Every int
}

func (p *TCPOptions) protocol() string { return probe.ProtocolTCP }

func (p *TCPOptions) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&p.Port, "tcp-port", 0, "TCP probe and responder port: the agent answers TCP handshakes on it and times its own to every peer's (protocol=\"tcp\", failures by reason); 0 leaves both off")
	fs.IntVar(&p.Count, "tcp-count", 1, "TCP handshakes per target per cycle")
	everyFlag(fs, &p.Every, p.protocol())
}

func (p *TCPOptions) validate(*Options) error {
	if p.Port < 0 || p.Port > 65535 || p.Port != 0 && p.Count < 1 {
		return fmt.Errorf("--tcp-port %d, --tcp-count %d: want a port 0..65535 (0 is off) and a count of at least 1", p.Port, p.Count)
	}
	if err := checkEvery(p.protocol(), p.Every); err != nil {
		return err
	}
	return nil
}

func (p *TCPOptions) share(o *Options) *Share {
	return o.afterBurst(p.protocol(), p.Port != 0, p.Count)
}

// tcpFits tells whether a run to n targets still fits the probe's budget when no handshake is
// answered, by the run's exact worst case.
func tcpFits(cfg probe.TCPConfig, budget time.Duration) func(n int) error {
	return func(n int) error {
		if worst := cfg.WorstCase(n); worst > budget {
			return fmt.Errorf("%d handshakes, each up to %s: %s when none is answered, over the TCP probe's %s",
				n*cfg.Count, cfg.Timeout, worst.Round(time.Millisecond), budget)
		}
		return nil
	}
}

func (p *TCPOptions) build(b *builder) (*Registration, error) {
	if p.Port == 0 {
		return nil, nil
	}
	cfg := probe.TCPConfig{Port: p.Port, Count: p.Count, Interval: b.o.extraSpread(), Timeout: b.o.ICMP.Timeout}
	t, err := probe.NewTCP(cfg)
	if err != nil {
		return nil, fmt.Errorf("set up the TCP probe: %w", err)
	}
	if !b.o.Once { // a one-shot run answers nobody
		r, err := responder.ListenTCP(fmt.Sprintf(":%d", p.Port), responder.TCPConfig{}, b.log)
		if err != nil {
			return nil, fmt.Errorf("start the TCP responder: %w", err)
		}
		b.responders = append(b.responders, tcpResponder{r})
	}
	reg := &Registration{Probe: AddrProbe(t), Scope: NodesOnly, Every: p.Every}
	if s := p.share(b.o); s != nil && !b.o.Once {
		reg.Fits = tcpFits(cfg, s.Need())
	}
	return reg, nil
}

// tcpResponder answers peers' handshakes and reports how many.
type tcpResponder struct{ r *responder.TCP }

func (t tcpResponder) Serve(ctx context.Context) error { return t.r.Serve(ctx) }

// UseList lets the listed nodes' handshakes through; until the first list the responder answers
// nobody.
func (t tcpResponder) UseList(l nodelist.List) { t.r.SetAllowed(allowList(l)) }

func (t tcpResponder) Stats() results.ResponderStats {
	return results.ResponderStats{Protocol: probe.ProtocolTCP, Answered: t.r.Answered(), Dropped: t.r.Dropped()}
}
