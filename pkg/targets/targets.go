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
