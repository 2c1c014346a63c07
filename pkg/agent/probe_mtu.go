package agent

import (
	"flag"
	"fmt"

	"github.com/nodeping/nodeping/pkg/probe"
)

// MTUOptions set the MTU probe (protocol="mtu"): echoes that fill the path MTU, with DF set,
// through the batch ICMP engine's sockets.
type MTUOptions struct {
	Size, Count, Every int
}

func (p *MTUOptions) protocol() string { return probe.ProtocolMTU }

func (p *MTUOptions) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&p.Size, "mtu", 0, "packet size in bytes of the MTU probe: echoes that fill the path MTU (1500 on most networks), with DF set, after each ICMP burst, reported with protocol=\"mtu\"; 0 leaves it off (batch engine only)")
	fs.IntVar(&p.Count, "mtu-count", 1, "MTU probe echoes per target per cycle")
	everyFlag(fs, &p.Every, p.protocol())
}

func (p *MTUOptions) validate(*Options) error {
	switch {
	case p.Size != 0 && (p.Size < 68 || p.Size > 65000):
		return fmt.Errorf("--mtu %d: must be 0 (off) or between 68 and 65000", p.Size)
	case p.Size != 0 && p.Count < 1:
		return fmt.Errorf("--mtu-count %d: must be at least 1", p.Count)
	}
	if err := checkEvery(p.protocol(), p.Every); err != nil {
		return err
	}
	return nil
}

func (p *MTUOptions) share(o *Options) *Share {
	return o.afterBurst(p.protocol(), p.Size != 0, p.Count)
}

func (p *MTUOptions) build(b *builder) (*Registration, error) {
	if p.Size == 0 {
		return nil, nil
	}
	e, err := b.icmpEngine()
	if err != nil {
		return nil, err
	}
	m, err := e.NewMTUProbe(p.Size, p.Count, b.o.extraSpread())
	if err != nil {
		return nil, fmt.Errorf("set up the MTU probe: %w", err)
	}
	return &Registration{Probe: AddrProbe(m), Scope: NodesOnly, Every: p.Every}, nil
}
