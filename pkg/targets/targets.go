// Package targets decides which peers this node probes.
package targets

import (
	"net/netip"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Target is one address of one peer node.
type Target struct {
	Node nodelist.Node
	Addr netip.Addr
}

// Select returns every address of every node in the list except self's, in list order, IPv4
// before IPv6 for each node: a full mesh. The second result is self's entry, if the list has it.
func Select(l nodelist.List, self string) ([]Target, *nodelist.Node) {
	var (
		out []Target
		me  *nodelist.Node
	)
	for i := range l.Nodes {
		n := l.Nodes[i]
		if n.Name == self {
			me = &l.Nodes[i]
			continue
		}
		for _, a := range n.Addrs() {
			out = append(out, Target{Node: n, Addr: a})
		}
	}
	return out, me
}
