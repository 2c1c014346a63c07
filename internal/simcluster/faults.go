package simcluster

import (
	"fmt"
	"os/exec"
	"strings"
)

// Fault is an injected fault: an nftables table in one namespace. Clear removes it.
//
// tc netem is not available on the machines this runs on, so there is no added-latency fault:
// nftables can drop packets but cannot delay them.
type Fault struct {
	c     *Cluster
	ns    string
	table string
	desc  string
}

func (f *Fault) String() string { return f.desc }

// Clear removes the fault.
func (f *Fault) Clear() error {
	return run("ip", "netns", "exec", f.ns, "nft", "delete", "table", "inet", f.table)
}

// inject loads chains into a new table in ns.
func (c *Cluster) inject(ns, desc, chains string) (*Fault, error) {
	c.mu.Lock()
	c.faults++
	table := fmt.Sprintf("nodeping_fault_%d", c.faults)
	c.mu.Unlock()
	ruleset := fmt.Sprintf("table inet %s {\n%s}\n", table, chains)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("simcluster: inject %s: %w: %s\n%s", desc, err, strings.TrimSpace(string(out)), ruleset)
	}
	c.logf("fault on: %s", desc)
	return &Fault{c: c, ns: ns, table: table, desc: desc}, nil
}

// Loss drops percent% of the probe packets (ICMP echo requests and replies) that reach a node:
// every pair with that node at either end loses about that share.
func (c *Cluster) Loss(node string, percent int) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	if percent < 0 || percent > 100 {
		return nil, fmt.Errorf("simcluster: loss %d%%: want 0..100", percent)
	}
	return c.inject(nd.NS, fmt.Sprintf("%d%% loss on %s", percent, node), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		icmp type { echo-request, echo-reply } numgen random mod 100 < %[1]d drop
		icmpv6 type { echo-request, echo-reply } numgen random mod 100 < %[1]d drop
	}
`, percent))
}

// Blackhole cuts a node off: everything in or out but its loopback is dropped, node-exporter's
// scrapes included, as when a node's link or switch port dies.
func (c *Cluster) Blackhole(node string) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	return c.inject(nd.NS, "blackholed "+node, `	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
	}
	chain output {
		type filter hook output priority 0; policy drop;
		oif lo accept
	}
`)
}

// Isolate drops the echo requests a node sends, before they leave: it loses every peer, while
// they still reach it (and Prometheus still scrapes it).
func (c *Cluster) Isolate(node string) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	return c.inject(nd.NS, "isolated "+node, `	chain output {
		type filter hook output priority 0;
		icmp type echo-request drop
		icmpv6 type echo-request drop
	}
`)
}

// BreakLink drops all traffic between two nodes, both ways; each still reaches everyone else.
func (c *Cluster) BreakLink(a, b string) (*Fault, error) {
	na, err := c.Node(a)
	if err != nil {
		return nil, err
	}
	nb, err := c.Node(b)
	if err != nil {
		return nil, err
	}
	return c.inject(na.NS, fmt.Sprintf("broken link %s <-> %s", a, b), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		ip saddr %s drop
		ip6 saddr %s drop
	}
`, nb.IPv4, nb.IPv6))
}

// BreakZoneLink drops all traffic between two zones, both ways, at the router.
func (c *Cluster) BreakZoneLink(za, zb string) (*Fault, error) {
	ia, ib := -1, -1
	for i, z := range c.Zones {
		if z == za {
			ia = i
		}
		if z == zb {
			ib = i
		}
	}
	if ia < 0 || ib < 0 || ia == ib {
		return nil, fmt.Errorf("simcluster: zone link %s <-> %s: want two different zones of %v", za, zb, c.Zones)
	}
	return c.inject(c.Router, fmt.Sprintf("broken zone link %s <-> %s", za, zb), fmt.Sprintf(`	chain forward {
		type filter hook forward priority 0;
		ip saddr 198.18.%[1]d.0/24 ip daddr 198.18.%[2]d.0/24 drop
		ip saddr 198.18.%[2]d.0/24 ip daddr 198.18.%[1]d.0/24 drop
		ip6 saddr fd00:0:0:%[1]x::/64 ip6 daddr fd00:0:0:%[2]x::/64 drop
		ip6 saddr fd00:0:0:%[2]x::/64 ip6 daddr fd00:0:0:%[1]x::/64 drop
	}
`, ia, ib))
}

// MTUBlackhole silently drops every packet longer than maxLen bytes (IP header included) that
// reaches a node, as a path with a smaller MTU that filters ICMP "fragmentation needed" does.
func (c *Cluster) MTUBlackhole(node string, maxLen int) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	return c.inject(nd.NS, fmt.Sprintf("MTU black hole at %d bytes on %s", maxLen, node), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		meta length > %d drop
	}
`, maxLen))
}
