package targets

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

func TestSelect(t *testing.T) {
	a := nodelist.Node{Name: "a", Zone: "z1", IPv4: netip.MustParseAddr("198.18.0.1"), IPv6: netip.MustParseAddr("fd00::1")}
	b := nodelist.Node{Name: "b", IPv4: netip.MustParseAddr("198.18.0.2")}
	c := nodelist.Node{Name: "c", IPv6: netip.MustParseAddr("fd00::3")}
	l := nodelist.List{Nodes: []nodelist.Node{a, b, c}}
	cases := []struct {
		self     string
		want     []Target
		wantSelf bool
	}{
		{"a", []Target{{b, b.IPv4}, {c, c.IPv6}}, true},
		{"b", []Target{{a, a.IPv4}, {a, a.IPv6}, {c, c.IPv6}}, true},
		{"not-listed", []Target{{a, a.IPv4}, {a, a.IPv6}, {b, b.IPv4}, {c, c.IPv6}}, false},
	}
	for _, tc := range cases {
		got, me := Select(l, tc.self)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Select(%q) = %v, want %v", tc.self, got, tc.want)
		}
		if (me != nil) != tc.wantSelf || me != nil && me.Name != tc.self {
			t.Errorf("Select(%q) self = %v, want found=%v", tc.self, me, tc.wantSelf)
		}
	}
}

// Select, the full mesh that Build's plans are checked against, returns every address of every node in the list except self's, in list order, IPv4
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
