// Package rulecampaign runs randomized fault campaigns against the shipped Prometheus rules:
// it shapes counters the way agents write them (15s cycles, 10 echoes per pair, background loss,
// jittery round trips), injects a fault, renders the result as promtool unit tests, runs promtool,
// and scores which alerts fired, when, against the alerts that name the culprit.
package rulecampaign

import (
	"fmt"
	"hash/fnv"
	"sort"
)

// Node is one node of a synthetic cluster; Zone is empty for a node without a zone.
type Node struct{ Name, Zone string }

// Cluster is a set of nodes and the probe plan: Plan[s] lists the indexes of the nodes that node
// s probes. The plan is data, so any planner (a full mesh, a ring subset, pkg/targets) can be
// swapped in.
type Cluster struct {
	Name  string
	Nodes []Node
	Plan  [][]int
}

// NewNodes names n nodes node-1.. and puts them in zones zone-a.. round robin, except the last
// zoneless nodes, which get no zone.
func NewNodes(n, zones, zoneless int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("node-%d", i+1)
		if zones > 0 && i < n-zoneless {
			nodes[i].Zone = "zone-" + string(rune('a'+i%zones))
		}
	}
	return nodes
}

// FullMesh is the plan where every node probes every other node.
func FullMesh(name string, nodes []Node) Cluster {
	plan := make([][]int, len(nodes))
	for s := range nodes {
		for d := range nodes {
			if s != d {
				plan[s] = append(plan[s], d)
			}
		}
	}
	return Cluster{Name: name, Nodes: nodes, Plan: plan}
}

// RingSubset is a simple stand-in for the subset planner of issue 10: nodes ordered on a ring by
// an FNV hash of their names, each probes the next k, plus the next node of every zone (and of
// the zoneless nodes) it does not probe yet, so every zone pair is covered and every node is seen
// from several zones.
func RingSubset(name string, nodes []Node, k int) Cluster {
	order := make([]int, len(nodes))
	for i := range order {
		order[i] = i
	}
	hash := func(s string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(s))
		return h.Sum64()
	}
	sort.Slice(order, func(a, b int) bool { return hash(nodes[order[a]].Name) < hash(nodes[order[b]].Name) })
	plan := make([][]int, len(nodes))
	n := len(order)
	for pos, s := range order {
		seen := map[int]bool{s: true}
		zones := map[string]bool{}
		for j := 1; j <= k && j < n; j++ {
			d := order[(pos+j)%n]
			seen[d] = true
			zones[nodes[d].Zone] = true
			plan[s] = append(plan[s], d)
		}
		for j := 1; j < n; j++ {
			d := order[(pos+j)%n]
			if seen[d] || zones[nodes[d].Zone] {
				continue
			}
			seen[d] = true
			zones[nodes[d].Zone] = true
			plan[s] = append(plan[s], d)
		}
		sort.Ints(plan[s])
	}
	return Cluster{Name: name, Nodes: nodes, Plan: plan}
}

// Zones lists the cluster's zones (not the empty one), sorted.
func (c Cluster) Zones() []string {
	set := map[string]bool{}
	for _, n := range c.Nodes {
		if n.Zone != "" {
			set[n.Zone] = true
		}
	}
	var out []string
	for z := range set {
		out = append(out, z)
	}
	sort.Strings(out)
	return out
}

// InZone lists the indexes of the nodes in zone z.
func (c Cluster) InZone(z string) []int {
	var out []int
	for i, n := range c.Nodes {
		if n.Zone == z {
			out = append(out, i)
		}
	}
	return out
}

// Observed reports whether some node probes node d.
func (c Cluster) Observed(d int) bool {
	for _, ds := range c.Plan {
		for _, x := range ds {
			if x == d {
				return true
			}
		}
	}
	return false
}
