package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nodeping/nodeping/pkg/probe"
	"github.com/nodeping/nodeping/pkg/resolve"
	"github.com/nodeping/nodeping/pkg/results"
)

// builder constructs the probes and components from validated options.
type builder struct {
	o   *Options
	log *slog.Logger
	// nameservers are /etc/resolv.conf's, read once for the DNS probe and external look-ups;
	// nameserversErr is why they could not be read.
	nameservers    []string
	nameserversErr error
	engine         *probe.ICMP // the batch ICMP engine, shared by the ICMP and MTU probes
	icmpModes      map[string]string
	responders     []Responder
	engines        []Engine
	closers        []func() error
}

// icmpEngine opens the batch engine's sockets once.
func (b *builder) icmpEngine() (*probe.ICMP, error) {
	if b.engine != nil {
		return b.engine, nil
	}
	e, err := probe.NewICMP(b.o.ICMP.config(), b.log)
	if err != nil {
		return nil, fmt.Errorf("open ICMP sockets: %w", err)
	}
	b.engine = e
	b.closers = append(b.closers, e.Close)
	b.icmpModes = icmpModes(e)
	b.engines = append(b.engines, Engine{Protocol: probe.ProtocolICMP, Counters: e.Counters})
	return e, nil
}

func (b *builder) close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// externalResolver asks servers for external targets' host names within lookup, the bound of a
// whole look-up (Config.ResolveTimeout, the agent's context): each server's exchange has its
// share of it, so that a server that does not answer leaves the next ones their turn.
func externalResolver(servers []string, lookup time.Duration) resolve.DNS {
	return resolve.DNS{Servers: servers, Timeout: lookup / time.Duration(max(len(servers), 1))}
}

// Build constructs the agent from the derivation of options that Validate accepted: it logs what
// Derive turned off, opens the probes' sockets and the responders' listeners, and returns the
// agent and a function that closes them.
func Build(d Derived, build results.BuildInfo, log *slog.Logger) (*Agent, func() error, error) {
	o := &d.Options
	for _, n := range d.Notices {
		log.Warn(n)
	}
	b := &builder{o: o, log: log}
	b.nameservers, b.nameserversErr = probe.ResolversFromFile("/etc/resolv.conf")
	var regs []Registration
	shares := map[string]Share{}
	for _, s := range d.Budget.Shares {
		shares[s.Protocol] = s
	}
	for _, p := range o.probes() {
		reg, err := p.build(b)
		if err != nil {
			b.close()
			return nil, nil, err
		}
		if reg == nil {
			continue
		}
		reg.Protocol = p.protocol()
		if s, ok := shares[reg.Protocol]; ok && !o.Once {
			reg.Budget = s.Need()
		}
		regs = append(regs, *reg)
	}
	// External targets' host names are asked of the nameservers themselves, fully qualified, so
	// that the answers' TTLs are known and the pod's search list is not walked.
	var resolver resolve.Backend = resolve.Net{}
	if b.nameserversErr != nil {
		log.Warn("external targets are looked up by the Go resolver, whose answers are kept for 30s, not their TTL", "err", b.nameserversErr)
	} else {
		resolver = externalResolver(b.nameservers, o.resolveTimeout())
	}
	a := New(Config{
		NodeName:       o.NodeName,
		NodesFile:      o.NodesFile,
		TextfilePath:   filepath.Join(o.TextfileDir, o.TextfileName),
		Interval:       o.Interval,
		Grace:          o.Grace,
		Plan:           o.Plan,
		ResolveTimeout: o.resolveTimeout(),
		Resolver:       resolver,
		MaxExternal:    o.MaxExternal,
		Once:           o.Once,
		Compat:         o.Compat,
		RTTDetail:      o.RTTDetail,
		Build:          build,
		Probes:         regs,
		Responders:     b.responders,
		Engines:        b.engines,
		ICMPModes:      b.icmpModes,
	}, log)
	return a, b.close, nil
}
