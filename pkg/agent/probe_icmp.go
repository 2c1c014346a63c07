package agent

import (
	"flag"
	"fmt"
	"time"

	"github.com/nodeping/nodeping/pkg/probe"
)

// ICMPOptions set the ICMP echo probe (protocol="icmp"), whose engine the MTU probe shares.
type ICMPOptions struct {
	On           bool
	Count, Size  int
	Interval     time.Duration
	Timeout      time.Duration // 0: derived by Derive from what the interval leaves
	DontFragment bool
	MTUSize      int // payload room for the MTU probe; set by Derive
}

func (p *ICMPOptions) protocol() string { return probe.ProtocolICMP }

func (p *ICMPOptions) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&p.On, "icmp", true, "run the ICMP probe (--icmp=false leaves only the other probes; the MTU probe still uses the ICMP sockets)")
	fs.IntVar(&p.Count, "icmp-count", 10, "ICMP echoes per target per cycle")
	fs.DurationVar(&p.Interval, "icmp-interval", time.Second, "time between two echoes to the same target; sends to different targets are spread over it")
	fs.DurationVar(&p.Timeout, "icmp-timeout", 0, "how long an echo (and a TCP handshake, a UDP probe) may take before it counts as lost (default: what nine tenths of the cycle leave after the probes' sends, shared by the probes that wait, at most 2s)")
	fs.IntVar(&p.Size, "icmp-size", 56, "ICMP echo payload in bytes")
	fs.BoolVar(&p.DontFragment, "icmp-dont-fragment", false, "set the DF bit on ICMP echoes (always set when --mtu is on: the MTU probe shares the sockets)")
}

func (p *ICMPOptions) validate(*Options) error { return nil } // config().Validate runs once the timeout is known

func (p *ICMPOptions) config() probe.ICMPConfig {
	return probe.ICMPConfig{Count: p.Count, Interval: p.Interval, Timeout: p.Timeout, Size: p.Size, MTUSize: p.MTUSize, DontFragment: p.DontFragment}
}

func (p *ICMPOptions) share(*Options) *Share {
	if !p.On {
		return nil
	}
	return &Share{Protocol: p.protocol(), What: fmt.Sprintf("--icmp-count %d x --icmp-interval %s", p.Count, p.Interval),
		Spread: time.Duration(p.Count) * p.Interval, Wait: p.Timeout}
}

func (p *ICMPOptions) build(b *builder) (*Registration, error) {
	var pr AddrProber
	switch b.o.Engine {
	case "batch":
		e, err := b.icmpEngine() // opened even with --icmp=false: its socket modes are reported
		if err != nil {
			return nil, err
		}
		pr = e
	case "pro-bing":
		pb, err := probe.NewProBing(p.config())
		if err != nil {
			return nil, fmt.Errorf("set up pro-bing: %w", err)
		}
		pr = pb
	}
	if !p.On {
		return nil, nil
	}
	return &Registration{Probe: AddrProbe(pr), Scope: AllTargets}, nil
}

// icmpModes maps each address family whose socket the batch engine opened to its mode, for
// nodeping_icmp_socket_info; the sockets, and so the modes, are the engine's for its life.
func icmpModes(e *probe.ICMP) map[string]string {
	v4, v6 := e.Modes()
	modes := map[string]string{}
	for fam, m := range map[string]probe.SocketMode{"ipv4": v4, "ipv6": v6} {
		if m != "" {
			modes[fam] = string(m)
		}
	}
	return modes
}
