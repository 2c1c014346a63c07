package targets

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// Modes of a plan, as Plan.Mode returns them.
const (
	ModeFullMesh = "full-mesh"
	ModeSubset   = "subset"
)

// Defaults of the probe-plan flags; docs/scale.md says how they were chosen.
const (
	// DefaultFullMeshMax keeps the binary's full mesh (what the agent did before subsetting) up to
	// 5,000 nodes, the largest full mesh the ICMP engine is benchmarked at beside fping
	// (scripts/bench-scale, docs/icmp-engine.md). The shipped DaemonSet and chart set
	// --full-mesh-max=50 (RecommendedFullMeshMax) to keep their four protocols near 600 pair
	// series per agent (docs/scale.md).
	DefaultFullMeshMax = 5000
	// RecommendedFullMeshMax is what the shipped manifests set.
	RecommendedFullMeshMax = 50
	// DefaultSubsetPeers is K: every node is observed by 8 ring sources, so the rules' majority
	// ("more than half of a node's sources lose it") needs 5 of them and tolerates 3 bad sources.
	DefaultSubsetPeers = 8
	// DefaultZonePairMin is M: every ordered zone pair is probed by at least 3 pairs, so that a
	// majority of its pairs means 2 of 3, and a zone link broken one way differs from one broken
	// both ways in at least 3 pairs.
	DefaultZonePairMin = 3
	// DefaultMaxZones caps the zones a plan tells apart. Zones come from a Node label, so one
	// mislabelling can give every node its own zone; a node alone in its zone probes about
	// K + M(Z-1) peers, and with 16 zones that is 53 at the default K and M: about 1,000 series
	// per agent with the shipped series (docs/scale.md), the budget subset mode keeps at any size.
	// Real clusters have 3 to 6 zones.
	DefaultMaxZones = 16
)

// foldedZone is the plan's name for the zones past Options.MaxZones, planned as one. A zone
// label cannot hold a NUL byte, so no listed zone has this name.
const foldedZone = "\x00folded"

// Options choose the probe plan. Every agent must use the same options, or their plans disagree.
type Options struct {
	// FullMeshMax: every node probes every other node while the list has at most this many nodes.
	FullMeshMax int
	// SubsetPeers (K): above FullMeshMax, each node probes the next K nodes on the hash ring.
	SubsetPeers int
	// ZonePairMin (M): above FullMeshMax, every ordered pair of zones (a, b) is probed by at least
	// min(M, |a|*|b|) node pairs.
	ZonePairMin int
	// MaxZones: the most zones the plan tells apart (0: DefaultMaxZones). When the list has more,
	// the MaxZones-1 largest (ties by name) keep their own and the nodes of all the others are
	// planned as one more zone (Stats.FoldedZones, Stats.FoldedNodes).
	MaxZones int
}

// DefaultOptions returns the shipped defaults.
func DefaultOptions() Options {
	return Options{FullMeshMax: DefaultFullMeshMax, SubsetPeers: DefaultSubsetPeers, ZonePairMin: DefaultZonePairMin, MaxZones: DefaultMaxZones}
}

// ringPeers is the ring's width of a subset plan of n nodes. Just past FullMeshMax it is as wide
// as the full mesh it replaces, and it narrows by steps to K at twice FullMeshMax: a list that
// goes from FullMeshMax to FullMeshMax+1 nodes and back changes each node's ring by one peer,
// not every plan from a full mesh to K peers.
func (o Options) ringPeers(n int) int {
	top, band := o.FullMeshMax-1, o.FullMeshMax // ring width just past FullMeshMax; band: nodes until K
	if top <= o.SubsetPeers || n >= o.FullMeshMax+band {
		return o.SubsetPeers
	}
	left := o.FullMeshMax + band - n // nodes until the ring is K wide
	return o.SubsetPeers + ((top-o.SubsetPeers)*left+band-1)/band
}

// RingPeers is the number of ring successors each node probes in subset mode (rule 1): K, or
// more just past FullMeshMax (Options.ringPeers); 0 in full-mesh mode.
func (p *Plan) RingPeers() int { return p.k }

// maxZones is MaxZones with its default.
func (o Options) maxZones() int {
	if o.MaxZones == 0 {
		return DefaultMaxZones
	}
	return o.MaxZones
}

// Validate reports options that cannot give a sound plan.
func (o Options) Validate() error {
	if o.FullMeshMax < 0 {
		return fmt.Errorf("--full-mesh-max %d: must not be negative", o.FullMeshMax)
	}
	if o.SubsetPeers < 2 {
		return fmt.Errorf("--subset-peers %d: must be at least 2 (with one, a node and its only source look alike)", o.SubsetPeers)
	}
	if o.MaxZones < 0 || o.MaxZones == 1 {
		return fmt.Errorf("--max-zones %d: must be at least 2 (0: %d), or no zone link can be told from a node", o.MaxZones, DefaultMaxZones)
	}
	if o.ZonePairMin < 1 {
		return fmt.Errorf("zone pair minimum %d: must be at least 1", o.ZonePairMin)
	}
	return nil
}

// Plan is the probe plan of one nodes list: which node probes which. Every agent builds the same
// plan from the same list and options, with no coordination; the node name is the only per-node
// input.
//
// Full mesh (at most FullMeshMax nodes): every node probes every other node.
//
// Zones are the plan's: past MaxZones, the smallest zones of the list are planned as one
// (planZones), so Z below is at most MaxZones whatever the list holds.
//
// Subset (more nodes): nodes sit on a ring ordered by the first 8 bytes of sha256(name) (ties by
// name). A node u of zone a (a zone-less node is in zone "") probes the union of:
//
//  1. ring: the next K nodes on the ring. Every node is observed by exactly K ring sources. Just
//     past FullMeshMax the ring is wider (RingPeers): FullMeshMax-1 at FullMeshMax+1 nodes,
//     narrowing to K at 2*FullMeshMax, so that crossing FullMeshMax does not flip every plan.
//     K below stands for that width.
//  2. zone ring: the next node of its own zone on the ring, when the zone has two nodes or more.
//     Every node of such a zone is then observed from its own zone, and probes it.
//  3. zone diversity: when the ring node after u is of another zone z, the nodes at positions
//     K+1 .. K+C (C = 2K) of the run of zone-z nodes that starts there. Their K ring sources are
//     all of their own zone z; u adds a second zone. Each node takes at most C such duties.
//  4. zone pairs: for every ordered pair of distinct zones (a, b), min(M, |a|*|b|) distinct pairs
//     from min(M, |a|) distinct nodes of a to min(M, |b|) distinct nodes of b: pair j takes the
//     first node clockwise from a point hashed from the zone names and j, among the nodes the
//     pairs before it use least (zonePairs).
//
// Guarantees (tested in plan_test.go over random clusters of 1..5,000 nodes in 1..10 zones):
//   - no node probes itself, and every node is observed by exactly K ring sources (N > K);
//   - out-degree <= K+1+2K+M(Z-1), in-degree <= K+2+M(Z-1): O(K + zones) series per agent;
//   - every ordered zone pair is probed by at least min(M, |a|*|b|) pairs;
//   - every node with a node of another zone among its 3K ring predecessors is observed from at
//     least two zones (unless it is alone in its zone and there are only two); a node is never observed from, nor probes into, one single zone other than
//     its own, unless it is alone in its zone and there are only two zones (then nothing can
//     tell its fault from the zone link's);
//   - single faults are identifiable: the set of lossy ordered pairs of each of the faults below
//     is non-empty and differs from that of every other fault, wherever the full mesh tells the
//     two apart. Faults: node v (every pair from and to v lossy), node v inbound (every pair to
//     v), node v outbound (every pair from v), zone link a->b (every pair from a node of a to a
//     node of b), zone link a<->b (both directions);
//   - a node that joins or leaves changes at most 4K + 3Z pairs among the other nodes with
//     K >= 8, 3K + 3 + 6(Z-1) with any K (TestPlanChurn).
type Plan struct {
	opts   Options
	nodes  []nodelist.Node
	mode   string
	byName map[string]int
	k      int // subset mode: the ring's width, RingPeers

	// Zones as the plan sees them, past MaxZones folded into one (planZones).
	zone        []int    // list index -> zone id
	zones       []string // zone id -> name, sorted
	listZones   int      // zones in the list
	foldedZones int      // zones folded into foldedZone
	foldedNodes int      // their nodes

	// Subset mode only.
	hash     []uint64   // by list index
	ring     []int      // list indexes in ring order
	pos      []int      // list index -> ring position
	zoneRing [][]int    // zone id -> ring positions of its members, ascending
	zoneIdx  []int      // list index -> index in its zone's zoneRing
	zoneOut  [][][2]int // zone id a -> rule 4's pairs from a, to every other zone (zonePairs)
}

// Build makes the plan of a list. It costs O(N log N + Z*Z*M log N), Z the plan's zones (at most
// MaxZones); each Peers call then costs O(K*K + Z*M). Options that do not validate are replaced by the defaults.
func Build(l nodelist.List, o Options) *Plan {
	if o.Validate() != nil {
		o = DefaultOptions()
	}
	o.MaxZones = o.maxZones()
	p := &Plan{opts: o, nodes: l.Nodes, byName: make(map[string]int, len(l.Nodes))}
	for i, n := range l.Nodes {
		p.byName[n.Name] = i
	}
	p.planZones()
	if len(l.Nodes) <= o.FullMeshMax {
		p.mode = ModeFullMesh
		return p
	}
	p.mode = ModeSubset
	n := len(l.Nodes)
	p.k = o.ringPeers(n)
	p.hash = make([]uint64, n)
	p.ring = make([]int, n)
	for i, nd := range l.Nodes {
		p.hash[i] = ringHash(nd.Name)
		p.ring[i] = i
	}
	sort.Slice(p.ring, func(a, b int) bool {
		ha, hb := p.hash[p.ring[a]], p.hash[p.ring[b]]
		if ha != hb {
			return ha < hb
		}
		return l.Nodes[p.ring[a]].Name < l.Nodes[p.ring[b]].Name
	})
	p.pos = make([]int, n)
	p.zoneIdx = make([]int, n)
	p.zoneRing = make([][]int, len(p.zones))
	for r, i := range p.ring {
		p.pos[i] = r
		z := p.zone[i]
		p.zoneIdx[i] = len(p.zoneRing[z])
		p.zoneRing[z] = append(p.zoneRing[z], r)
	}
	p.zoneOut = make([][][2]int, len(p.zones))
	for a := range p.zones {
		for b := range p.zones {
			if a != b {
				p.zoneOut[a] = append(p.zoneOut[a], p.zonePairs(a, b)...)
			}
		}
	}
	return p
}

// planZones gives every node its zone id. With more than MaxZones zones in the list, the
// MaxZones-1 largest (ties by name) keep their own, and the nodes of the others share one more,
// foldedZone. It costs O(N + Z log Z) and holds O(Z) besides the ids.
func (p *Plan) planZones() {
	size := map[string]int{}
	for _, n := range p.nodes {
		size[n.Zone]++
	}
	names := make([]string, 0, len(size))
	for z := range size {
		names = append(names, z)
	}
	p.listZones = len(names)
	if c := p.opts.maxZones(); len(names) > c {
		sort.Slice(names, func(a, b int) bool {
			if size[names[a]] != size[names[b]] {
				return size[names[a]] > size[names[b]]
			}
			return names[a] < names[b]
		})
		for _, z := range names[c-1:] {
			p.foldedZones++
			p.foldedNodes += size[z]
		}
		names = append(names[:c-1], foldedZone)
	}
	sort.Strings(names)
	ids := make(map[string]int, len(names))
	for id, z := range names {
		ids[z] = id
	}
	p.zones = names
	p.zone = make([]int, len(p.nodes))
	for i, n := range p.nodes {
		id, ok := ids[n.Zone]
		if !ok {
			id = ids[foldedZone]
		}
		p.zone[i] = id
	}
}

// ringHash places a name on the ring: the first 8 bytes of its sha256, big-endian.
func ringHash(s string) uint64 {
	h := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(h[:8])
}

// zonePoint is where pair j of the zone pair (a, b) looks for its source ("src") or its
// destination ("dst").
func zonePoint(a, b string, j int, role string) uint64 {
	return ringHash("nodeping zone pair\x00" + a + "\x00" + b + "\x00" + role + "\x00" + strconv.Itoa(j))
}

// Mode says whether the plan is a full mesh or a subset.
func (p *Plan) Mode() string { return p.mode }

// Options returns the options the plan was built with.
func (p *Plan) Options() Options { return p.opts }

// Nodes returns the list's nodes, in list order.
func (p *Plan) Nodes() []nodelist.Node { return p.nodes }

// Peers returns the names of the nodes that name probes, in list order. A name that is not in
// the list probes every node in full-mesh mode, and its K ring successors in subset mode.
func (p *Plan) Peers(name string) []string {
	idx := p.peerIndexes(name)
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = p.nodes[i].Name
	}
	return out
}

// Targets returns every address of every node that self probes, in list order, IPv4 before IPv6
// for each node. The second result is self's entry, if the list has it.
func (p *Plan) Targets(self string) ([]Target, *nodelist.Node) {
	var me *nodelist.Node
	if i, ok := p.byName[self]; ok {
		me = &p.nodes[i]
	}
	var out []Target
	for _, i := range p.peerIndexes(self) {
		n := p.nodes[i]
		for _, a := range n.Addrs() {
			out = append(out, Target{Node: n, Addr: a})
		}
	}
	return out, me
}

// Pairs calls f for every ordered pair of the plan: sources in list order, and for each source
// its destinations in list order.
func (p *Plan) Pairs(f func(source, destination string)) {
	for _, n := range p.nodes {
		for _, j := range p.peerIndexes(n.Name) {
			f(n.Name, p.nodes[j].Name)
		}
	}
}

// peerIndexes returns the list indexes of the nodes that name probes, ascending.
func (p *Plan) peerIndexes(name string) []int {
	self, listed := p.byName[name]
	if p.mode == ModeFullMesh {
		out := make([]int, 0, len(p.nodes))
		for i := range p.nodes {
			if !listed || i != self {
				out = append(out, i)
			}
		}
		return out
	}
	if !listed {
		return p.unlistedPeers(name)
	}
	out := p.subsetPeers(self, nil)
	slices.Sort(out)
	return slices.Compact(out)
}

// unlistedPeers are the RingPeers ring successors of a name that is not on the ring.
func (p *Plan) unlistedPeers(name string) []int {
	h := ringHash(name)
	r := sort.Search(len(p.ring), func(k int) bool {
		i := p.ring[k]
		return p.hash[i] > h || p.hash[i] == h && p.nodes[i].Name > name
	})
	var out []int
	for s := 0; s < p.k && s < len(p.ring); s++ {
		out = append(out, p.ring[(r+s)%len(p.ring)])
	}
	slices.Sort(out)
	return out
}

// subsetPeers appends the list indexes that the node at list index self probes, some of them
// more than once.
func (p *Plan) subsetPeers(self int, out []int) []int {
	n, k := len(p.ring), p.k
	add := func(j int) {
		if j != self {
			out = append(out, j)
		}
	}
	r, a := p.pos[self], p.zone[self]
	// 1. ring
	for s := 1; s <= k && s < n; s++ {
		add(p.ring[(r+s)%n])
	}
	// 2. zone ring
	if zr := p.zoneRing[a]; len(zr) >= 2 {
		add(p.ring[zr[(p.zoneIdx[self]+1)%len(zr)]])
	}
	// 3. zone diversity
	if n > 1 {
		if z := p.zone[p.ring[(r+1)%n]]; z != a {
			for t := 1; t <= k+diversityDuties(k) && t < n; t++ {
				j := p.ring[(r+t)%n]
				if p.zone[j] != z {
					break
				}
				if t > k {
					add(j)
				}
			}
		}
	}
	// 4. zone pairs
	for _, pr := range p.zoneOut[a] {
		if pr[0] == self {
			add(pr[1])
		}
	}
	return out
}

// diversityDuties is C, the most nodes a node observes for zone diversity (rule 3).
func diversityDuties(k int) int { return 2 * k }

// zonePairCount is how many pairs rule 4 gives the zone pair (a, b): min(M, |a|*|b|).
func (p *Plan) zonePairCount(a, b int) int {
	return min(p.opts.ZonePairMin, len(p.zoneRing[a])*len(p.zoneRing[b]))
}

// zonePairs returns the pairs (list indexes, source then destination) that rule 4 gives the
// ordered zone pair (a, b): min(M, |a|*|b|) distinct pairs, from min(M, |a|) distinct sources
// to min(M, |b|) distinct destinations. Pair j's source is the first node of a clockwise from a
// point hashed from the zone names and j, among the nodes the pairs before it use least; its
// destination likewise in b, among those that make a new pair. Each pair has its own points, so
// a node that joins or leaves moves only the pairs whose choice it is (or was), not the others.
func (p *Plan) zonePairs(a, b int) [][2]int {
	c := p.zonePairCount(a, b)
	out := make([][2]int, 0, c)
	var src, dst []int
	for j := range c {
		s := p.leastUsed(a, zonePoint(p.zones[a], p.zones[b], j, "src"), src, func(int) bool { return true })
		d := p.leastUsed(b, zonePoint(p.zones[a], p.zones[b], j, "dst"), dst, func(d int) bool { return !slices.Contains(out, [2]int{s, d}) })
		out = append(out, [2]int{s, d})
		src, dst = append(src, s), append(dst, d)
	}
	return out
}

// leastUsed returns the list index of the first node of zone z clockwise from the point h that
// ok accepts, among those that appear least often in used. It walks until it finds an unused
// node, so at most len(used)+1 steps in a zone larger than used, |z| in a smaller one.
func (p *Plan) leastUsed(z int, h uint64, used []int, ok func(int) bool) int {
	zr := p.zoneRing[z]
	start := sort.Search(len(zr), func(k int) bool { return p.hash[p.ring[zr[k]]] >= h })
	best, bestUses := -1, 0
	for k := range zr {
		i := p.ring[zr[(start+k)%len(zr)]]
		if !ok(i) {
			continue
		}
		uses := 0
		for _, u := range used {
			if u == i {
				uses++
			}
		}
		if best < 0 || uses < bestUses {
			best, bestUses = i, uses
		}
		if uses == 0 {
			break
		}
	}
	return best
}

// Stats describe a plan, for the agent's self-metrics and its start-up log line.
type Stats struct {
	Mode  string
	Nodes int
	// Zones is the number of zones in the list; FoldedZones of them (FoldedNodes nodes), past
	// Options.MaxZones, are planned as one zone. The zone figures below are of the plan's zones.
	Zones, FoldedZones, FoldedNodes int
	// SubsetPeers and ZonePairMin are the ring's width (RingPeers: K, or more just past
	// FullMeshMax) and M (0 in full-mesh mode).
	SubsetPeers, ZonePairMin int
	// Pairs is the number of ordered pairs probed in the whole cluster.
	Pairs int
	// MaxPeers and MaxObservers are the largest out- and in-degree of any node.
	MaxPeers, MaxObservers int
	// ZonePairs is the number of ordered pairs of distinct zones, ZonePairsCovered how many of
	// them at least one pair probes, MinZonePairPairs the fewest pairs that probe one of them.
	ZonePairs, ZonePairsCovered, MinZonePairPairs int
	// MinObservingZones is the fewest zones any node is observed from (its own counts).
	MinObservingZones int
}

// Stats computes the plan's figures. In subset mode it walks the whole plan: O(N*(K+Z log N));
// in full-mesh mode it counts the pairs per zone instead of walking them: O(N + Z*Z). Z is the
// plan's zones, at most MaxZones.
func (p *Plan) Stats() Stats {
	st := Stats{Mode: p.mode, Nodes: len(p.nodes), Zones: p.listZones, FoldedZones: p.foldedZones, FoldedNodes: p.foldedNodes}
	if p.mode == ModeSubset {
		st.SubsetPeers, st.ZonePairMin = p.k, p.opts.ZonePairMin
	}
	nz := p.zone // list index -> zone id
	z := len(p.zones)
	st.ZonePairs = z * (z - 1)
	zp := make([]int, z*z)           // ordered zone pair -> pairs probed
	in := make([]int, len(p.nodes))  // list index -> observers
	obs := make([]int, len(p.nodes)) // list index -> zones it is observed from
	if p.mode == ModeFullMesh {
		p.fullMeshCounts(nz, z, &st, zp, in, obs)
	} else {
		// Observers zone by zone, so that a node's observing zones are counted with one mark each.
		byZone := make([]int, 0, len(p.nodes))
		for za := range z {
			for i := range p.nodes {
				if nz[i] == za {
					byZone = append(byZone, i)
				}
			}
		}
		mark := make([]int, len(p.nodes)) // list index -> 1 + the last zone counted in obs
		for _, i := range byZone {
			peers := p.peerIndexes(p.nodes[i].Name)
			st.Pairs += len(peers)
			st.MaxPeers = max(st.MaxPeers, len(peers))
			za := nz[i]
			for _, j := range peers {
				in[j]++
				zp[za*z+nz[j]]++
				if mark[j] != za+1 {
					mark[j] = za + 1
					obs[j]++
				}
			}
		}
	}
	st.ZonePairsCovered, st.MinZonePairPairs = zonePairCoverage(zp, z)
	st.MinObservingZones = -1
	for j := range p.nodes {
		st.MaxObservers = max(st.MaxObservers, in[j])
		if st.MinObservingZones < 0 || obs[j] < st.MinObservingZones {
			st.MinObservingZones = obs[j]
		}
	}
	if st.MinObservingZones < 0 {
		st.MinObservingZones = 0
	}
	return st
}

// fullMeshCounts fills Stats' pair counts of a full mesh without walking its N*(N-1) pairs: node
// i probes every node but s = byName[its name] (itself, unless a later node has its name).
func (p *Plan) fullMeshCounts(nz []int, z int, st *Stats, zp, in, obs []int) {
	n := len(p.nodes)
	if n == 0 {
		return
	}
	st.Pairs = n * (n - 1)
	st.MaxPeers = n - 1
	cnt := make([]int, z) // zone id -> nodes
	for i := range p.nodes {
		cnt[nz[i]]++
	}
	for a := range z {
		for b := range z {
			zp[a*z+b] = cnt[a] * cnt[b]
		}
	}
	for j := range in {
		in[j] = n
		obs[j] = z
	}
	// excl counts, per node s and zone, the observers of that zone that leave s out.
	excl := make(map[[2]int]int, n)
	for i, nd := range p.nodes {
		s := p.byName[nd.Name]
		in[s]--
		zp[nz[i]*z+nz[s]]--
		excl[[2]int{s, nz[i]}]++
	}
	for k, c := range excl {
		if c == cnt[k[1]] {
			obs[k[0]]-- // every node of that zone leaves it out
		}
	}
}

// zonePairCoverage reads zp, the pairs per ordered pair of zones (zp[a*z+b] from zone a to zone
// b, of z zones): how many ordered pairs of distinct zones have at least one, and the fewest any
// has (0 without two zones).
func zonePairCoverage(zp []int, z int) (covered, fewest int) {
	fewest = -1
	for a := range z {
		for b := range z {
			if a == b {
				continue
			}
			if zp[a*z+b] > 0 {
				covered++
			}
			if fewest < 0 || zp[a*z+b] < fewest {
				fewest = zp[a*z+b]
			}
		}
	}
	return covered, max(fewest, 0)
}
