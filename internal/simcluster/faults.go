//go:build linux

package simcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodeping/nodeping/internal/simcluster/relay"
)

// Fault is an injected fault: nftables tables, delay links, a stopped agent or a changed nodes
// list, each undone by Clear, in reverse order.
type Fault struct {
	desc  string
	undo  []func() error
	once  sync.Once
	err   error
	c     *Cluster
	links []*relay.Link
}

func (f *Fault) String() string { return f.desc }

// Clear removes the fault. It is safe to call more than once, and on the nil Fault of a "none"
// spec.
func (f *Fault) Clear() error {
	if f == nil {
		return nil
	}
	f.once.Do(func() {
		var errs []error
		for i := len(f.undo) - 1; i >= 0; i-- {
			errs = append(errs, f.undo[i]())
		}
		f.err = errors.Join(errs...)
		if f.c != nil {
			f.c.logf("fault off: %s", f.desc)
			f.c.forget(f)
		}
	})
	return f.err
}

// Combine injects several faults at once (two sick nodes, say): Clear clears them all.
func Combine(faults ...*Fault) *Fault {
	f := &Fault{}
	var descs []string
	for _, g := range faults {
		descs = append(descs, g.desc)
		f.undo = append(f.undo, g.Clear)
		f.links = append(f.links, g.links...)
	}
	f.desc = strings.Join(descs, " + ")
	return f
}

// track registers a fault so that Close clears it (delay links hold devices and goroutines).
func (c *Cluster) track(f *Fault) *Fault {
	f.c = c
	c.mu.Lock()
	c.active[f] = true
	c.mu.Unlock()
	c.logf("fault on: %s", f.desc)
	return f
}

func (c *Cluster) forget(f *Fault) {
	c.mu.Lock()
	delete(c.active, f)
	c.mu.Unlock()
}

// nft loads chains into a new table in ns, and returns the undo that deletes it.
func (c *Cluster) nft(ns, chains string) (func() error, error) {
	c.mu.Lock()
	c.faults++
	table := fmt.Sprintf("nodeping_fault_%d", c.faults)
	c.mu.Unlock()
	ruleset := fmt.Sprintf("table inet %s {\n%s}\n", table, chains)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("simcluster: nft: %w: %s\n%s", err, strings.TrimSpace(string(out)), ruleset)
	}
	return func() error { return run("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table) }, nil
}

// inject loads chains into a new table in ns as one fault.
func (c *Cluster) inject(ns, desc, chains string) (*Fault, error) {
	undo, err := c.nft(ns, chains)
	if err != nil {
		return nil, fmt.Errorf("inject %s: %w", desc, err)
	}
	return c.track(&Fault{desc: desc, undo: []func() error{undo}}), nil
}

// injectOn loads chains into a new table in the named node's namespace as one fault.
func (c *Cluster) injectOn(node, desc, chains string) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	return c.inject(nd.NS, desc, chains)
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

// lossChains drops a share of ICMP echoes (requests and replies, both families) both ways:
// in the node's input and in its output, each with probability bp/10000.
func lossChains(bp int) string {
	return fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		icmp type { echo-request, echo-reply } numgen random mod 10000 < %[1]d drop
		icmpv6 type { echo-request, echo-reply } numgen random mod 10000 < %[1]d drop
	}
	chain output {
		type filter hook output priority 0;
		icmp type { echo-request, echo-reply } numgen random mod 10000 < %[1]d drop
		icmpv6 type { echo-request, echo-reply } numgen random mod 10000 < %[1]d drop
	}
`, bp)
}

// GrayLoss drops percent% of the ICMP echoes a node receives and percent% of those it sends
// (a flaky NIC or cable): every pair with that node at one end loses about 2×percent% of its
// round trips. percent has a resolution of 0.01.
func (c *Cluster) GrayLoss(node string, percent float64) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	if percent < 0.01 || percent > 100 {
		return nil, fmt.Errorf("simcluster: loss %g%%: want 0.01..100", percent)
	}
	return c.inject(nd.NS, fmt.Sprintf("%g%% loss each way on %s", percent, node), lossChains(int(percent*100+0.5)))
}

// BackgroundLoss makes every pair of the cluster lose about percent% of its round trips, as
// healthy networks do: every node drops percent/4 % of the echoes it receives and of those it
// sends (a round trip crosses four such drops).
func (c *Cluster) BackgroundLoss(percent float64) (*Fault, error) {
	bp := int(percent*100/4 + 0.5)
	if bp < 1 || percent > 10 {
		return nil, fmt.Errorf("simcluster: background loss %g%%: want 0.04..10", percent)
	}
	f := &Fault{desc: fmt.Sprintf("%g%% background loss on every pair", percent)}
	for _, nd := range c.Nodes {
		undo, err := c.nft(nd.NS, lossChains(bp))
		if err != nil {
			f.Clear()
			return nil, err
		}
		f.undo = append(f.undo, undo)
	}
	return c.track(f), nil
}

// Blackhole cuts a node off: everything in or out but its loopback is dropped, node-exporter's
// scrapes included, as when a node's link or switch port dies.
func (c *Cluster) Blackhole(node string) (*Fault, error) {
	return c.injectOn(node, "blackholed "+node, blackholeChains)
}

const blackholeChains = `	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
	}
	chain output {
		type filter hook output priority 0; policy drop;
		oif lo accept
	}
`

// Isolate drops the echo requests a node sends, before they leave: it loses every peer, while
// they still reach it (and Prometheus still scrapes it).
func (c *Cluster) Isolate(node string) (*Fault, error) {
	return c.injectOn(node, "isolated "+node, `	chain output {
		type filter hook output priority 0;
		icmp type echo-request drop
		icmpv6 type echo-request drop
	}
`)
}

// BreakLink drops all traffic between two nodes, both ways; each still reaches everyone else.
func (c *Cluster) BreakLink(a, b string) (*Fault, error) { return c.LossyLink(a, b, 100) }

// dropShare is an nftables statement dropping percent% of what matched (all of it at 100).
func dropShare(percent int) string {
	if percent >= 100 {
		return "drop"
	}
	return fmt.Sprintf("numgen random mod 100 < %d drop", percent)
}

// linkDesc describes a fault dropping percent% of the traffic between a and b (all of it at 100,
// a broken link); what is "link" or "zone link".
func linkDesc(what, a, b string, percent int) string {
	if percent < 100 {
		return fmt.Sprintf("%d%% loss between %s and %s", percent, a, b)
	}
	return fmt.Sprintf("broken %s %s <-> %s", what, a, b)
}

// nodePair looks up two nodes by name.
func (c *Cluster) nodePair(a, b string) (Node, Node, error) {
	na, err := c.Node(a)
	if err != nil {
		return Node{}, Node{}, err
	}
	nb, err := c.Node(b)
	return na, nb, err
}

// LossyLink drops percent% of all traffic between two nodes, both ways (everything at 100).
func (c *Cluster) LossyLink(a, b string, percent int) (*Fault, error) {
	na, nb, err := c.nodePair(a, b)
	if err != nil {
		return nil, err
	}
	return c.inject(na.NS, linkDesc("link", a, b, percent), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		ip saddr %[1]s %[3]s
		ip6 saddr %[2]s %[3]s
	}
	chain output {
		type filter hook output priority 0;
		ip daddr %[1]s %[3]s
		ip6 daddr %[2]s %[3]s
	}
`, nb.IPv4, nb.IPv6, dropShare(percent)))
}

// PairLoss drops percent% of the echo requests src sends to dst, at dst: only the pair
// src->dst loses (dst's own probes of src, and their replies, pass).
func (c *Cluster) PairLoss(src, dst string, percent int) (*Fault, error) {
	ns, nd, err := c.nodePair(src, dst)
	if err != nil {
		return nil, err
	}
	return c.inject(nd.NS, fmt.Sprintf("%d%% loss from %s to %s, one way", percent, src, dst), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		ip saddr %[1]s icmp type echo-request %[3]s
		ip6 saddr %[2]s icmpv6 type echo-request %[3]s
	}
`, ns.IPv4, ns.IPv6, dropShare(percent)))
}

func (c *Cluster) zoneIndex(z string) int {
	for i, name := range c.Zones {
		if name == z {
			return i
		}
	}
	return -1
}

func (c *Cluster) zonePair(za, zb string) (int, int, error) {
	ia, ib := c.zoneIndex(za), c.zoneIndex(zb)
	if ia < 0 || ib < 0 || ia == ib {
		return 0, 0, fmt.Errorf("simcluster: zone link %s <-> %s: want two different zones of %v", za, zb, c.Zones)
	}
	return ia, ib, nil
}

// BreakZoneLink drops all traffic between two zones, both ways, at the router.
func (c *Cluster) BreakZoneLink(za, zb string) (*Fault, error) { return c.LossyZoneLink(za, zb, 100) }

// LossyZoneLink drops percent% of the traffic between two zones, both ways, at the router.
func (c *Cluster) LossyZoneLink(za, zb string, percent int) (*Fault, error) {
	ia, ib, err := c.zonePair(za, zb)
	if err != nil {
		return nil, err
	}
	return c.inject(c.Router, linkDesc("zone link", za, zb, percent), fmt.Sprintf(`	chain forward {
		type filter hook forward priority 0;
		ip saddr 198.18.%[1]d.0/24 ip daddr 198.18.%[2]d.0/24 %[3]s
		ip saddr 198.18.%[2]d.0/24 ip daddr 198.18.%[1]d.0/24 %[3]s
		ip6 saddr fd00:0:0:%[1]x::/64 ip6 daddr fd00:0:0:%[2]x::/64 %[3]s
		ip6 saddr fd00:0:0:%[2]x::/64 ip6 daddr fd00:0:0:%[1]x::/64 %[3]s
	}
`, ia, ib, dropShare(percent)))
}

// Partition cuts a zone off from every other zone, both ways, at the router: its nodes still
// reach each other, and Prometheus (on the router, as on a management network) still scrapes
// them.
func (c *Cluster) Partition(zone string) (*Fault, error) {
	z := c.zoneIndex(zone)
	if z < 0 {
		return nil, fmt.Errorf("simcluster: partition %s: no such zone in %v", zone, c.Zones)
	}
	// By address, not by bridge: where br_netfilter is loaded, switched traffic inside the
	// zone also passes the forward hook, with the bridge as both its in and out interface.
	return c.inject(c.Router, "partitioned "+zone, fmt.Sprintf(`	chain forward {
		type filter hook forward priority 0;
		ip saddr 198.18.%[1]d.0/24 ip daddr != 198.18.%[1]d.0/24 drop
		ip daddr 198.18.%[1]d.0/24 ip saddr != 198.18.%[1]d.0/24 drop
		ip6 saddr fd00:0:0:%[1]x::/64 ip6 daddr != fd00:0:0:%[1]x::/64 drop
		ip6 daddr fd00:0:0:%[1]x::/64 ip6 saddr != fd00:0:0:%[1]x::/64 drop
	}
`, z))
}

// MTUBlackhole silently drops every packet longer than maxLen bytes (IP header included) that
// reaches a node, as a path with a smaller MTU that filters ICMP "fragmentation needed" does.
func (c *Cluster) MTUBlackhole(node string, maxLen int) (*Fault, error) {
	return c.injectOn(node, fmt.Sprintf("MTU black hole at %d bytes on %s", maxLen, node), fmt.Sprintf(`	chain input {
		type filter hook input priority 0;
		meta length > %d drop
	}
`, maxLen))
}

func (c *Cluster) nodeIndex(name string) int {
	for i, nd := range c.Nodes {
		if nd.Name == name {
			return i
		}
	}
	return -1
}

func latencyDesc(rtt, jitter time.Duration) string {
	if jitter == 0 {
		return "+" + rtt.String()
	}
	return fmt.Sprintf("+%s±%s", rtt, jitter)
}

// Latency adds rtt (±jitter) to every round trip to or from a node, scrapes included: its port
// on its zone's bridge is swapped, while everything runs, for a TAP device, and a relay holds
// each frame between the two for rtt/2 (±jitter/2) each way. Clear swaps the port back; the
// healthy path has no relay in it.
func (c *Cluster) Latency(node string, rtt, jitter time.Duration) (*Fault, error) {
	i := c.nodeIndex(node)
	if i < 0 {
		return nil, fmt.Errorf("simcluster: no node %q", node)
	}
	d := relay.Delay{Base: rtt / 2, Jitter: jitter / 2}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("simcluster: latency on %s: %w", node, err)
	}
	port, tap, br := fmt.Sprintf("v%d", i+1), fmt.Sprintf("d%d", i+1), fmt.Sprintf("br%d", i%c.cfg.Zones)
	pk, err := relay.OpenPacket(c.Router, port)
	if err != nil {
		return nil, fmt.Errorf("simcluster: latency on %s: %w", node, err)
	}
	tf, err := relay.OpenTAP(c.Router, tap)
	if err != nil {
		pk.Close()
		return nil, fmt.Errorf("simcluster: latency on %s: %w", node, err)
	}
	link := relay.Bridge(pk, tf, d, c.seed(i))
	if err := ipBatch(c.Router, []string{"link set " + port + " nomaster", "link set " + tap + " master " + br, "link set " + tap + " up"}); err != nil {
		link.Close()
		ipBatch(c.Router, []string{"link set " + port + " master " + br})
		return nil, fmt.Errorf("simcluster: latency on %s: %w", node, err)
	}
	f := &Fault{desc: fmt.Sprintf("latency %s on %s", latencyDesc(rtt, jitter), node), links: []*relay.Link{link}}
	f.undo = append(f.undo, func() error {
		err := ipBatch(c.Router, []string{"link set " + tap + " down", "link set " + port + " master " + br})
		return errors.Join(err, link.Close())
	})
	return c.track(f), nil
}

// ZoneLatency adds rtt (±jitter) to every round trip between two zones: the router's policy
// routing sends the traffic between their subnets, both ways, through a TUN device whose relay
// holds each packet rtt/2 (±jitter/2) and hands it back to be routed on.
func (c *Cluster) ZoneLatency(za, zb string, rtt, jitter time.Duration) (*Fault, error) {
	ia, ib, err := c.zonePair(za, zb)
	if err != nil {
		return nil, err
	}
	d := relay.Delay{Base: rtt / 2, Jitter: jitter / 2}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("simcluster: latency %s <-> %s: %w", za, zb, err)
	}
	c.mu.Lock()
	c.faults++
	n := c.faults
	c.mu.Unlock()
	dev, table := fmt.Sprintf("zl%d", n), fmt.Sprint(1000+n)
	tf, err := relay.OpenTUN(c.Router, dev)
	if err != nil {
		return nil, fmt.Errorf("simcluster: latency %s <-> %s: %w", za, zb, err)
	}
	link := relay.Loop(tf, d, c.seed(1000+n))
	var rules4, rules6 []string
	for _, p := range [][2]int{{ia, ib}, {ib, ia}} {
		rules4 = append(rules4, fmt.Sprintf("from 198.18.%d.0/24 to 198.18.%d.0/24 iif br%d table %s", p[0], p[1], p[0], table))
		rules6 = append(rules6, fmt.Sprintf("from fd00:0:0:%x::/64 to fd00:0:0:%x::/64 iif br%d table %s", p[0], p[1], p[0], table))
	}
	del := func() error {
		var errs []error
		for _, r := range rules4 {
			errs = append(errs, run("ip", append([]string{"-n", c.Router, "-4", "rule", "del"}, strings.Fields(r)...)...))
		}
		for _, r := range rules6 {
			errs = append(errs, run("ip", append([]string{"-n", c.Router, "-6", "rule", "del"}, strings.Fields(r)...)...))
		}
		return errors.Join(append(errs, link.Close())...)
	}
	setup := []string{"link set " + dev + " up", "route add 0.0.0.0/0 dev " + dev + " table " + table, "route add ::/0 dev " + dev + " table " + table}
	err = ipBatch(c.Router, setup)
	if err == nil {
		err = run("ip", "netns", "exec", c.Router, "sysctl", "-q", "-w", "net.ipv4.conf."+dev+".rp_filter=0")
	}
	for _, r := range rules4 {
		if err == nil {
			err = run("ip", append([]string{"-n", c.Router, "-4", "rule", "add"}, strings.Fields(r)...)...)
		}
	}
	for _, r := range rules6 {
		if err == nil {
			err = run("ip", append([]string{"-n", c.Router, "-6", "rule", "add"}, strings.Fields(r)...)...)
		}
	}
	if err != nil {
		del() // some rules may not exist yet: their errors do not matter here
		return nil, fmt.Errorf("simcluster: latency %s <-> %s: %w", za, zb, err)
	}
	f := &Fault{desc: fmt.Sprintf("latency %s between %s and %s", latencyDesc(rtt, jitter), za, zb), links: []*relay.Link{link}}
	f.undo = append(f.undo, del)
	return c.track(f), nil
}

// StopAgent stops a node's agent cleanly (SIGTERM: it removes its file and exits), as when its
// pod is deleted and not replaced; its node-exporter keeps serving. Clear starts a new agent.
func (c *Cluster) StopAgent(node string) (*Fault, error) {
	nd, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cmd := c.agents[node]
	c.mu.Unlock()
	if cmd == nil {
		return nil, fmt.Errorf("simcluster: %s has no agent running", node)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("simcluster: stop agent on %s: %w", node, err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("simcluster: agent on %s did not exit 10s after SIGTERM", node)
	}
	c.mu.Lock()
	delete(c.agents, node)
	c.mu.Unlock()
	if _, err := os.Stat(nd.TextfileDir + "/nodeping.prom"); err == nil {
		return nil, fmt.Errorf("simcluster: agent on %s exited but left its file", node)
	}
	return c.track(&Fault{desc: "agent stopped on " + node, undo: []func() error{func() error { return c.startAgent(nd) }}}), nil
}

// CordonedBlackhole marks a node unschedulable in the nodes list, waits until every other agent
// reports it in maintenance, then blackholes it: a planned drain, which must stay silent.
// Clear lifts the blackhole, then the cordon.
func (c *Cluster) CordonedBlackhole(node string) (*Fault, error) {
	if c.nodeIndex(node) < 0 {
		return nil, fmt.Errorf("simcluster: no node %q", node)
	}
	if err := c.setSchedulable(node, false); err != nil {
		return nil, err
	}
	uncordon := func() error { return c.setSchedulable(node, true) }
	if err := c.awaitMaintenance(node, len(c.Nodes)-1, 30*time.Second); err != nil {
		uncordon()
		return nil, err
	}
	nd, _ := c.Node(node)
	undo, err := c.nft(nd.NS, blackholeChains)
	if err != nil {
		uncordon()
		return nil, err
	}
	return c.track(&Fault{desc: "cordoned and blackholed " + node, undo: []func() error{uncordon, undo}}), nil
}
