package controller

import (
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Zone labels, newest first.
var zoneLabels = []string{"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}

// Render turns Nodes into a nodes list, sorted by name. Per address family a node gets its first
// InternalIP, or else its first ExternalIP. Nodes without a usable address are left out and
// named in the second result.
func Render(nodes []*v1.Node) (nodelist.List, []string) {
	var (
		l       nodelist.List
		skipped []string
	)
	for _, n := range nodes {
		out := nodelist.Node{Name: n.Name, Schedulable: !n.Spec.Unschedulable}
		for _, k := range zoneLabels {
			if z, ok := n.Labels[k]; ok {
				out.Zone = z
				break
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				out.Ready = c.Status == v1.ConditionTrue
			}
		}
		for _, typ := range []v1.NodeAddressType{v1.NodeInternalIP, v1.NodeExternalIP} {
			for _, a := range n.Status.Addresses {
				if a.Type != typ {
					continue
				}
				ip, ok := nodelist.UsableAddr(a.Address)
				if !ok || nodelist.Refused(ip, false) != "" {
					continue
				}
				if ip.Is4() && !out.IPv4.IsValid() {
					out.IPv4 = ip
				} else if ip.Is6() && !out.IPv6.IsValid() {
					out.IPv6 = ip
				}
			}
		}
		if !out.IPv4.IsValid() && !out.IPv6.IsValid() {
			skipped = append(skipped, n.Name)
			continue
		}
		l.Nodes = append(l.Nodes, out)
	}
	sort.Slice(l.Nodes, func(i, j int) bool { return l.Nodes[i].Name < l.Nodes[j].Name })
	sort.Strings(skipped)
	return l, skipped
}
