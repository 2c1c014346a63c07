package controller

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// FuzzRender feeds Render Node objects as the API server could return them (any name, zone
// label, address strings and types, conditions) next to one ordinary node: Render never panics,
// renders only usable addresses (no loopback, multicast, link-local or unspecified one), and
// its list survives Encode and Decode whole.
func FuzzRender(f *testing.F) {
	f.Add("node-a", "z1", "10.0.0.1", "InternalIP", "fd00::1", "InternalIP", true, false)
	f.Add("node-b", "", "127.0.0.1", "InternalIP", "10.0.0.2", "ExternalIP", false, true)
	f.Add("n", "zone with spaces\n", "224.0.0.1", "InternalIP", "fe80::1%eth0", "InternalIP", true, true)
	f.Add("", "", "169.254.0.1", "Hostname", "::ffff:10.1.2.3", "InternalIP", true, false)
	f.Add(strings.Repeat("x", 5000), "\"quoted\"", "0.0.0.0", "InternalIP", "::", "ExternalIP", false, false)
	f.Add("ok", "z", "not an address", "InternalDNS", "ff02::1", "InternalIP", true, false)
	f.Fuzz(func(t *testing.T, name, zone, addr1, type1, addr2, type2 string, ready, unschedulable bool) {
		status := v1.ConditionFalse
		if ready {
			status = v1.ConditionTrue
		}
		n := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"topology.kubernetes.io/zone": zone}},
			Spec:       v1.NodeSpec{Unschedulable: unschedulable},
			Status: v1.NodeStatus{
				Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: status}},
				Addresses:  []v1.NodeAddress{{Type: v1.NodeAddressType(type1), Address: addr1}, {Type: v1.NodeAddressType(type2), Address: addr2}},
			},
		}
		other := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "zz-ordinary"},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.9.9.9"}}}}
		l, skipped := Render([]*v1.Node{n, other})
		if len(l.Nodes)+len(skipped) != 2 {
			t.Fatalf("%d rendered + %d skipped, want 2 in all", len(l.Nodes), len(skipped))
		}
		for _, rn := range l.Nodes {
			if len(rn.Addrs()) == 0 {
				t.Fatalf("rendered node %q has no address", rn.Name)
			}
			for _, a := range rn.Addrs() {
				if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.Is4In6() {
					t.Fatalf("rendered node %q with unusable address %s", rn.Name, a)
				}
			}
			if rn.IPv4.IsValid() && !rn.IPv4.Is4() || rn.IPv6.IsValid() && !rn.IPv6.Is6() {
				t.Fatalf("address in the wrong family: %+v", rn)
			}
		}
		enc, err := nodelist.Encode(l)
		if err != nil {
			t.Fatalf("Encode of a rendered list: %v", err)
		}
		back, _, err := nodelist.Decode(enc)
		if err != nil {
			t.Fatalf("Decode of an encoded rendered list: %v\n%s", err, enc)
		}
		// Decode trims names and leaves the nameless out: Node names never have either.
		want := 0
		for _, rn := range l.Nodes {
			if s := strings.TrimSpace(rn.Name); s != "" && s == rn.Name {
				want++
			}
		}
		if len(back.Nodes) < want {
			t.Fatalf("decoded %d of %d rendered nodes:\n%s", len(back.Nodes), want, enc)
		}
	})
}
