package agent

import (
	"fmt"
	"strings"
	"time"
)

// Derived is what the agent runs with beyond what its flags say: Derive computes it from
// options, and Build constructs the agent from it.
type Derived struct {
	// Options are the options as the agent runs them: the ICMP timeout filled in when it was
	// left automatic, DF and the MTU probe's room set on the ICMP sockets when --mtu is on, and
	// --mtu turned off with the pro-bing engine.
	Options
	// Notices are what Derive turned off or changed, for the log at start.
	Notices []string
	// Budget is how the probes share the interval.
	Budget Budget
	// autoTimeout: the ICMP timeout was derived, not set.
	autoTimeout bool
}

// Derive computes the automatic ICMP timeout, what the MTU probe implies for the ICMP sockets,
// and the interval's budget. It leaves o as it is; Validate tells whether the result fits.
func (o Options) Derive() Derived {
	d := Derived{Options: o, autoTimeout: o.ICMP.Timeout == 0}
	if m := d.MTU.Size; m != 0 && d.Engine == "pro-bing" {
		d.Notices = append(d.Notices, fmt.Sprintf("--mtu %d is off: the pro-bing engine has no MTU probe (use --icmp-engine=batch)", m))
		d.MTU.Size = 0
	}
	if d.MTU.Size != 0 {
		// The MTU probe shares the engine's sockets, which then set DF on every echo: harmless
		// for small ones, and every raw socket costs a copy of every ICMP packet on the host.
		d.ICMP.DontFragment, d.ICMP.MTUSize = true, d.MTU.Size-28
	}
	d.fitTimeout()
	return d
}

// Budget is how the probes share one interval.
type Budget struct {
	Interval time.Duration
	// Available is what the probes may use: the interval less a tenth, kept for reading the
	// list, resolving external targets and writing the file.
	Available time.Duration
	// Shares are the probes that are on, in the order they run.
	Shares []Share
}

// Share is one probe's worst case in a cycle: its sends spread over Spread, then a wait of up to
// Wait for the last answers.
type Share struct {
	Protocol string
	// What says where Spread comes from, in flags ("--icmp-count 10 x --icmp-interval 1s").
	What         string
	Spread, Wait time.Duration
	// Beside: the probe runs beside the others (its own sockets), so it needs the budget, not a
	// part of it.
	Beside bool
}

// String tells the budget in one line, for the log at start.
func (b Budget) String() string {
	var parts []string
	for _, s := range b.Shares {
		part := fmt.Sprintf("%s %s", s.Protocol, s.Need())
		if s.Beside {
			part += " beside"
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("%s of %s: %s", b.Available, b.Interval, strings.Join(parts, ", "))
}

// resolveTimeout bounds the look-ups of external targets' host names: within the tenth of the
// interval the probes leave, at most 2s.
func (o *Options) resolveTimeout() time.Duration { return min(2*time.Second, o.Interval/10) }

// Need is the share's worst case.
func (s Share) Need() time.Duration { return s.Spread + s.Wait }

// extraSpread is the time between two probes to one target for the probes that follow the ICMP
// burst (MTU, TCP, UDP): short, so that they fit in the cycle.
func (o *Options) extraSpread() time.Duration { return min(o.ICMP.Interval, 200*time.Millisecond) }

// afterBurst is the share of a probe that follows the ICMP burst (MTU, TCP, UDP): count probes
// per target spread over extraSpread each, then the shared ICMP timeout. nil when it is off.
func (o *Options) afterBurst(protocol string, on bool, count int) *Share {
	if !on {
		return nil
	}
	return &Share{Protocol: protocol, What: fmt.Sprintf("--%s-count %d x %s", protocol, count, o.extraSpread()),
		Spread: time.Duration(count) * o.extraSpread(), Wait: o.ICMP.Timeout}
}

// fitTimeout derives the automatic ICMP timeout and the budget. The ICMP timeout is shared by
// the probes that follow the ICMP burst (MTU, TCP, UDP): each may wait it.
func (d *Derived) fitTimeout() {
	o := &d.Options
	avail := o.Interval - o.Interval/10
	if d.autoTimeout {
		var spreads time.Duration // no share's spread depends on the timeout
		waits := 0
		for _, p := range o.probes() {
			if s := p.share(o); s != nil && !s.Beside {
				spreads += s.Spread
				waits++
			}
		}
		o.ICMP.Timeout = 2 * time.Second
		if waits > 0 && avail > spreads {
			o.ICMP.Timeout = min(2*time.Second, (avail-spreads)/time.Duration(waits))
		}
	}
	d.Budget = Budget{Interval: o.Interval, Available: avail}
	for _, p := range o.probes() {
		if s := p.share(o); s != nil {
			d.Budget.Shares = append(d.Budget.Shares, *s)
		}
	}
}

// fits checks that every probe fits the budget (with --once, anything goes: nothing follows the
// one cycle) and that the ICMP engine accepts its derived configuration.
func (d Derived) fits() error {
	if !d.Once {
		var used time.Duration
		avail := d.Budget.Available
		for _, s := range d.Budget.Shares {
			need := s.Need()
			if s.Beside {
				if need > avail {
					return fmt.Errorf("%s does not fit in --interval %s: %s = %s, over the %s the probes may use (nine tenths of the interval)",
						s.Protocol, d.Interval, s.What, need, avail)
				}
				continue
			}
			if used+need > avail || d.autoTimeout && s.Wait <= 0 {
				return fmt.Errorf("%s does not fit in --interval %s: %s + timeout %s = %s, and the probes before it take %s of the %s the probes may use (nine tenths of the interval)",
					s.Protocol, d.Interval, s.What, max(s.Wait, 0), need, used, avail)
			}
			used += need
		}
	}
	return d.ICMP.config().Validate()
}
