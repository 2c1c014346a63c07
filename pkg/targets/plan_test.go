package targets

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// cluster makes a list of n nodes with random names in z zones of uneven sizes; a share of the
// nodes (about zoneless) has no zone.
func cluster(rng *rand.Rand, n, z int, zoneless float64) nodelist.List {
	weights := make([]float64, z)
	total := 0.0
	for i := range weights {
		weights[i] = 0.1 + rng.Float64()*float64(i+1) // uneven: later zones tend to be larger
		total += weights[i]
	}
	styles := []func(i int) string{
		func(i int) string { return fmt.Sprintf("node-%d", i) },
		func(i int) string { return fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", rng.IntN(256), i/256, i%256) },
		func(i int) string { return fmt.Sprintf("gke-pool-%08x-%d", rng.Uint32(), i) },
	}
	style := styles[rng.IntN(len(styles))]
	l := nodelist.List{Format: nodelist.FormatNodeping}
	for i := range n {
		zone := ""
		if rng.Float64() >= zoneless {
			x := rng.Float64() * total
			for k, w := range weights {
				if x < w || k == z-1 {
					zone = fmt.Sprintf("zone-%c", 'a'+k)
					break
				}
				x -= w
			}
		}
		l.Nodes = append(l.Nodes, nodelist.Node{
			Name: style(i), Zone: zone, Ready: true, Schedulable: true,
			IPv4: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		})
	}
	return l
}

// graph is a plan as adjacency lists by list index.
type graph struct {
	n        int
	zone     []int // zone id by node
	zones    int
	zoneSize []int
	out, in  [][]int
}

func planGraph(t testing.TB, p *Plan) graph {
	t.Helper()
	nodes := p.Nodes()
	idx := map[string]int{}
	zid := map[string]int{}
	g := graph{n: len(nodes), zone: make([]int, len(nodes)), out: make([][]int, len(nodes)), in: make([][]int, len(nodes))}
	for i, n := range nodes {
		idx[n.Name] = i
		if _, ok := zid[n.Zone]; !ok {
			zid[n.Zone] = len(zid)
		}
		g.zone[i] = zid[n.Zone]
	}
	g.zones = len(zid)
	g.zoneSize = make([]int, g.zones)
	for _, z := range g.zone {
		g.zoneSize[z]++
	}
	p.Pairs(func(s, d string) {
		i, j := idx[s], idx[d]
		g.out[i] = append(g.out[i], j)
		g.in[j] = append(g.in[j], i)
	})
	return g
}

// pairSet renders a plan as a set of "source\tdestination" lines.
func pairSet(p *Plan) map[string]bool {
	m := map[string]bool{}
	p.Pairs(func(s, d string) { m[s+"\t"+d] = true })
	return m
}

// testRing is the ring as the spec defines it, computed independently of the code under test.
func testRing(nodes []nodelist.Node) []int {
	r := make([]int, len(nodes))
	h := make([]uint64, len(nodes))
	for i, n := range nodes {
		r[i] = i
		s := sha256.Sum256([]byte(n.Name))
		h[i] = binary.BigEndian.Uint64(s[:8])
	}
	sort.Slice(r, func(a, b int) bool {
		if h[r[a]] != h[r[b]] {
			return h[r[a]] < h[r[b]]
		}
		return nodes[r[a]].Name < nodes[r[b]].Name
	})
	return r
}

// checkPlan asserts every guarantee of the subset plan. It returns the share of nodes observed
// from two zones or more among the nodes whose cluster has another zone.
func checkPlan(t *testing.T, l nodelist.List, o Options) float64 {
	t.Helper()
	p := Build(l, o)
	if p.Mode() != ModeSubset {
		t.Fatalf("mode %s, want subset", p.Mode())
	}
	g := planGraph(t, p)
	k, m, n, z := o.SubsetPeers, o.ZonePairMin, g.n, g.zones
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("N=%d Z=%d K=%d M=%d: %s", n, z, k, m, fmt.Sprintf(format, args...))
	}
	// No self-probe, no duplicate, degrees bounded.
	for i := range n {
		seen := map[int]bool{}
		for _, j := range g.out[i] {
			if j == i {
				fail("%s probes itself", l.Nodes[i].Name)
			}
			if seen[j] {
				fail("%s probes %s twice", l.Nodes[i].Name, l.Nodes[j].Name)
			}
			seen[j] = true
		}
		if lim := k + 1 + 2*k + m*(z-1); len(g.out[i]) > lim {
			fail("%s probes %d nodes, more than K+1+2K+M(Z-1) = %d", l.Nodes[i].Name, len(g.out[i]), lim)
		}
		if lim := k + 2 + m*(z-1); len(g.in[i]) > lim {
			fail("%s is observed by %d nodes, more than K+2+M(Z-1) = %d", l.Nodes[i].Name, len(g.in[i]), lim)
		}
	}
	// Ring: every node observed by its K ring predecessors, so by exactly K ring sources.
	ring := testRing(l.Nodes)
	for r, v := range ring {
		for s := 1; s <= k && s < n; s++ {
			u := ring[(r-s+n)%n]
			if !slices.Contains(g.out[u], v) {
				fail("%s does not probe %s, %d steps after it on the ring", l.Nodes[u].Name, l.Nodes[v].Name, s)
			}
		}
		if n > k && len(g.in[v]) < k {
			fail("%s observed by %d < K sources", l.Nodes[v].Name, len(g.in[v]))
		}
	}
	// Zone pairs: every ordered pair of distinct zones covered by min(M, |a||b|) pairs.
	zp := make([]int, z*z)
	for i := range n {
		for _, j := range g.out[i] {
			zp[g.zone[i]*z+g.zone[j]]++
		}
	}
	for a := range z {
		for b := range z {
			if a != b && zp[a*z+b] < min(m, g.zoneSize[a]*g.zoneSize[b]) {
				fail("zone pair %d->%d has %d pairs, want at least %d", a, b, zp[a*z+b], min(m, g.zoneSize[a]*g.zoneSize[b]))
			}
		}
	}
	// Zone pairs: from min(M, |a|) distinct sources to min(M, |b|) distinct destinations, so that
	// the rules can tell a zone link from one bad node at either end.
	srcs, dsts := make([]map[int]bool, z*z), make([]map[int]bool, z*z)
	for i := range n {
		for _, j := range g.out[i] {
			ab := g.zone[i]*z + g.zone[j]
			if srcs[ab] == nil {
				srcs[ab], dsts[ab] = map[int]bool{}, map[int]bool{}
			}
			srcs[ab][i], dsts[ab][j] = true, true
		}
	}
	for a := range z {
		for b := range z {
			if a != b && (len(srcs[a*z+b]) < min(m, g.zoneSize[a]) || len(dsts[a*z+b]) < min(m, g.zoneSize[b])) {
				fail("zone pair %d->%d has %d sources and %d destinations, want at least %d and %d", a, b, len(srcs[a*z+b]), len(dsts[a*z+b]), min(m, g.zoneSize[a]), min(m, g.zoneSize[b]))
			}
		}
	}
	// Zone diversity.
	two, eligible := 0, 0
	for r, v := range ring {
		obs := zoneSet(g, g.in[v])
		dst := zoneSet(g, g.out[v])
		near := false // a node of another zone among the 3K ring predecessors
		for s := 1; s <= 3*k && s < n; s++ {
			if g.zone[ring[(r-s+n)%n]] != g.zone[v] {
				near = true
				break
			}
		}
		others := z // zones of the other nodes
		if g.zoneSize[g.zone[v]] == 1 {
			others--
		}
		if near && others >= 2 && len(obs) < 2 {
			fail("%s has a node of another zone among its 3K ring predecessors, but is observed from zones %v only", l.Nodes[v].Name, obs)
		}
		inherent := g.zoneSize[g.zone[v]] == 1 && z == 2
		if len(obs) == 1 && !obs[g.zone[v]] && !inherent {
			fail("%s is observed from one zone, not its own: %v", l.Nodes[v].Name, obs)
		}
		if len(dst) == 1 && !dst[g.zone[v]] && !inherent {
			fail("%s probes into one zone, not its own: %v", l.Nodes[v].Name, dst)
		}
		if others >= 2 {
			eligible++
			if len(obs) >= 2 {
				two++
			}
		}
	}
	checkIdentifiable(t, l, g)
	if eligible == 0 {
		return 1
	}
	return float64(two) / float64(eligible)
}

func zoneSet(g graph, nodes []int) map[int]bool {
	s := map[int]bool{}
	for _, j := range nodes {
		s[g.zone[j]] = true
	}
	return s
}

// A fault, and which ordered pairs it makes lossy.
type fault struct {
	kind string // node, in, out, link, link2
	v    int    // node faults
	a, b int    // zone links
}

func (f fault) affects(g graph, x, y int) bool {
	switch f.kind {
	case "node":
		return x == f.v || y == f.v
	case "in":
		return y == f.v
	case "out":
		return x == f.v
	case "link":
		return g.zone[x] == f.a && g.zone[y] == f.b
	case "link2":
		return g.zone[x] == f.a && g.zone[y] == f.b || g.zone[x] == f.b && g.zone[y] == f.a
	}
	panic(f.kind)
}

func (f fault) String(l nodelist.List) string {
	if f.kind == "link" || f.kind == "link2" {
		return fmt.Sprintf("%s(zone %d, zone %d)", f.kind, f.a, f.b)
	}
	return fmt.Sprintf("%s(%s)", f.kind, l.Nodes[f.v].Name)
}

// pattern is the sorted set of the plan's pairs that a fault makes lossy, as x*n+y.
func (f fault) pattern(g graph) []int {
	var out []int
	for x := range g.n {
		for _, y := range g.out[x] {
			if f.affects(g, x, y) {
				out = append(out, x*g.n+y)
			}
		}
	}
	slices.Sort(out)
	return out
}

// fullMeshEqual says whether two faults give the same pattern in the full mesh: then no plan can
// tell them apart.
func fullMeshEqual(g graph, f1, f2 fault) bool {
	for x := range g.n {
		for y := range g.n {
			if x != y && f1.affects(g, x, y) != f2.affects(g, x, y) {
				return false
			}
		}
	}
	return true
}

func mix(x uint64) uint64 { // splitmix64
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// checkIdentifiable asserts that every single fault gives a non-empty loss pattern that no other
// single fault gives, wherever the full mesh tells them apart. Patterns are compared by a set
// hash (the sum of a mix of each pair) and size, then exactly on a match.
func checkIdentifiable(t *testing.T, l nodelist.List, g graph) {
	t.Helper()
	if g.n < 2 {
		return
	}
	type sig struct {
		sum  uint64
		size int
	}
	outSig, inSig := make([]sig, g.n), make([]sig, g.n)
	link := make([]sig, g.zones*g.zones)
	for x := range g.n {
		for _, y := range g.out[x] {
			h := mix(uint64(x*g.n + y))
			outSig[x].sum += h
			outSig[x].size++
			inSig[y].sum += h
			inSig[y].size++
			ab := g.zone[x]*g.zones + g.zone[y]
			link[ab].sum += h
			link[ab].size++
		}
	}
	seen := map[sig][]fault{}
	put := func(f fault, s sig) {
		if s.size == 0 {
			t.Fatalf("N=%d Z=%d: fault %s makes no probed pair lossy: it goes unseen", g.n, g.zones, f.String(l))
		}
		seen[s] = append(seen[s], f)
	}
	for v := range g.n {
		put(fault{kind: "out", v: v}, outSig[v])
		put(fault{kind: "in", v: v}, inSig[v])
		put(fault{kind: "node", v: v}, sig{outSig[v].sum + inSig[v].sum, outSig[v].size + inSig[v].size})
	}
	for a := range g.zones {
		for b := range g.zones {
			if a == b {
				continue
			}
			put(fault{kind: "link", a: a, b: b}, link[a*g.zones+b])
			if a < b {
				ba := link[b*g.zones+a]
				put(fault{kind: "link2", a: a, b: b}, sig{link[a*g.zones+b].sum + ba.sum, link[a*g.zones+b].size + ba.size})
			}
		}
	}
	for _, fs := range seen {
		for i := 0; i < len(fs); i++ {
			for j := i + 1; j < len(fs); j++ {
				if slices.Equal(fs[i].pattern(g), fs[j].pattern(g)) && !fullMeshEqual(g, fs[i], fs[j]) {
					t.Fatalf("N=%d Z=%d: faults %s and %s give the same loss pattern %v", g.n, g.zones, fs[i].String(l), fs[j].String(l), fs[i].pattern(g))
				}
			}
		}
	}
}

// churn is the number of ordered pairs in one plan and not the other.
func churn(a, b map[string]bool) int {
	d := 0
	for k := range a {
		if !b[k] {
			d++
		}
	}
	for k := range b {
		if !a[k] {
			d++
		}
	}
	return d
}

// churnAmong is the number of ordered pairs between nodes other than x in one plan and not the
// other: what x joining or leaving changes for the rest of the cluster.
func churnAmong(a, b map[string]bool, x string) int {
	d := 0
	for _, m := range [2][2]map[string]bool{{a, b}, {b, a}} {
		for k := range m[0] {
			s, t, _ := strings.Cut(k, "\t")
			if s != x && t != x && !m[1][k] {
				d++
			}
		}
	}
	return d
}

// churnBound is the most pairs among the other nodes that one node joining or leaving may
// change, as measured: 4K + 3Z with K >= 8 (the shipped K), and 3K + 3 + 6(Z-1) for any K (ring
// K, zone ring 1, zone diversity 2K + 2, and the zone pairs of the zones the node is in or
// leaves).
func churnBound(k, z int) int {
	if k >= DefaultSubsetPeers {
		return 4*k + 3*z
	}
	return 3*k + 3 + 6*max(z-1, 0)
}

type planCase struct {
	n, z     int
	zoneless float64
	k        int
}

func randomCases(rng *rand.Rand, count, maxN int) []planCase {
	var cs []planCase
	for range count {
		n := 1 + rng.IntN(maxN)
		if rng.IntN(3) == 0 {
			n = 1 + rng.IntN(min(maxN, 100))
		}
		zl := 0.0
		if rng.IntN(4) == 0 {
			zl = rng.Float64() * 0.3
		}
		cs = append(cs, planCase{n: n, z: 1 + rng.IntN(10), zoneless: zl, k: []int{2, 3, 5, 8, 8, 8, 10, 12}[rng.IntN(8)]})
	}
	return cs
}

// TestPlanProperties checks every guarantee on fixed and random clusters of 1..5,000 nodes in
// 1..10 zones. NODEPING_LONG=1 (scripts/test-long) runs a much larger random sweep.
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	cases := []planCase{
		{1, 1, 0, 8}, {2, 1, 0, 8}, {2, 2, 0, 8}, {3, 2, 0, 8}, {3, 3, 0, 2}, {9, 1, 0, 8}, {10, 3, 0, 8},
		{60, 5, 0, 8}, {61, 2, 0.5, 8}, {100, 10, 0.1, 8}, {257, 3, 0, 8}, {1000, 3, 0, 8}, {1000, 10, 0.05, 10},
		{5000, 3, 0, 8}, {5000, 2, 0, 8}, {5000, 10, 0.02, 8},
	}
	cases = append(cases, randomCases(rng, 40, 2000)...)
	if os.Getenv("NODEPING_LONG") != "" {
		cases = append(cases, randomCases(rng, 2000, 5000)...)
	}
	worst, sum, count := 1.0, 0.0, 0
	for _, c := range cases {
		l := cluster(rng, c.n, c.z, c.zoneless)
		share := checkPlan(t, l, Options{FullMeshMax: 0, SubsetPeers: c.k, ZonePairMin: DefaultZonePairMin})
		worst = min(worst, share)
		sum += share
		count++
	}
	t.Logf("%d clusters: share of nodes observed from two zones or more (where the cluster has two): worst %.4f, mean %.4f", count, worst, sum/float64(count))
}

// TestPlanChurn adds and removes one node at a time and counts the pairs that change among the
// other nodes: on a 300-node list in 4 uneven zones with K = 8, where the bound is 4K + 3Z = 44,
// and on random lists of 1 to 10 zones.
func TestPlanChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	type churnCase struct {
		l      nodelist.List
		k      int
		trials int
	}
	var cases []churnCase
	uneven := zonedList(300, []int{150, 90, 45, 15})
	cases = append(cases, churnCase{uneven, 8, 60})
	for _, c := range append([]planCase{{60, 5, 0, 8}, {1000, 3, 0, 8}, {5000, 3, 0, 8}, {5000, 10, 0.05, 8}, {200, 1, 0, 8}, {300, 2, 0, 10}}, randomCases(rng, 20, 2000)...) {
		cases = append(cases, churnCase{cluster(rng, c.n, c.z, c.zoneless), c.k, 4})
	}
	if os.Getenv("NODEPING_LONG") != "" {
		for _, c := range randomCases(rng, 300, 5000) {
			cases = append(cases, churnCase{cluster(rng, c.n, c.z, c.zoneless), c.k, 4})
		}
	}
	maxC, worst, max300 := 0.0, "", 0
	for ci, c := range cases {
		o := Options{FullMeshMax: 0, SubsetPeers: c.k, ZonePairMin: DefaultZonePairMin}
		l := c.l
		before := pairSet(Build(l, o))
		zones := map[string]bool{}
		for _, n := range l.Nodes {
			zones[n.Zone] = true
		}
		for trial := range c.trials {
			var l2 nodelist.List
			var x string
			if trial%2 == 0 && len(l.Nodes) > 1 { // leave
				drop := rng.IntN(len(l.Nodes))
				x = l.Nodes[drop].Name
				l2.Nodes = slices.Concat(l.Nodes[:drop], l.Nodes[drop+1:])
			} else { // join, into an existing zone
				nd := l.Nodes[rng.IntN(len(l.Nodes))]
				nd.Name = fmt.Sprintf("joined-%d-%d", trial, rng.Uint32())
				x = nd.Name
				l2.Nodes = append(slices.Clone(l.Nodes), nd)
			}
			d := churnAmong(before, pairSet(Build(l2, o)), x)
			if lim := churnBound(c.k, len(zones)); d > lim {
				t.Fatalf("N=%d Z=%d K=%d: %s joining or leaving changed %d pairs among the others, more than %d", len(l.Nodes), len(zones), c.k, x, d, lim)
			}
			if ci == 0 {
				max300 = max(max300, d)
			}
			if cc := float64(d) / float64(churnBound(c.k, len(zones))); cc > maxC {
				maxC, worst = cc, fmt.Sprintf("N=%d Z=%d K=%d: %d pairs", len(l.Nodes), len(zones), c.k, d)
			}
		}
	}
	t.Logf("churn: 300 nodes in 4 uneven zones, K=8: at most %d pairs among the others (bound 4K+3Z = 44)", max300)
	t.Logf("churn: worst against the bound %.2f (%s)", maxC, worst)
}

func TestPlanDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	l := cluster(rng, 700, 4, 0.1)
	o := DefaultOptions()
	want := pairSet(Build(l, o))
	shuffled := nodelist.List{Nodes: slices.Clone(l.Nodes)}
	rng.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
	got := pairSet(Build(shuffled, o))
	if d := churn(want, got); d != 0 {
		t.Fatalf("the same list in another order gives %d different pairs", d)
	}
	// Each agent computes only its own peers; together they are the plan.
	p := Build(shuffled, o)
	for _, n := range l.Nodes[:50] {
		for _, d := range p.Peers(n.Name) {
			if !want[n.Name+"\t"+d] {
				t.Fatalf("Peers(%s) has %s, not in the plan", n.Name, d)
			}
		}
	}
}

// recommended is the plan the shipped manifests run: the defaults with --full-mesh-max 50.
func recommended() Options {
	o := DefaultOptions()
	o.FullMeshMax = RecommendedFullMeshMax
	return o
}

func TestPlanModes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	l := cluster(rng, 50, 3, 0)
	full := Build(l, recommended())
	if full.Mode() != ModeFullMesh {
		t.Fatalf("50 nodes with --full-mesh-max 50: mode %s", full.Mode())
	}
	for _, n := range l.Nodes {
		got, me := full.Targets(n.Name)
		want, wantMe := Select(l, n.Name)
		if !slices.Equal(got, want) || me != wantMe && *me != *wantMe {
			t.Fatalf("full mesh Targets(%s) differs from Select", n.Name)
		}
	}
	l.Nodes = append(l.Nodes, nodelist.Node{Name: "one-more", Zone: "zone-a", IPv4: netip.MustParseAddr("198.18.1.1"), IPv6: netip.MustParseAddr("fd00::1")})
	sub := Build(l, recommended())
	if sub.Mode() != ModeSubset {
		t.Fatalf("51 nodes with --full-mesh-max 50: mode %s", sub.Mode())
	}
	// Just past --full-mesh-max the ring is as wide as the full mesh was (TestPlanBand).
	if sub.RingPeers() != RecommendedFullMeshMax-1 {
		t.Fatalf("51 nodes with --full-mesh-max 50: ring of %d peers, want %d", sub.RingPeers(), RecommendedFullMeshMax-1)
	}
	peers := sub.Peers(l.Nodes[0].Name)
	if len(peers) < sub.RingPeers() || len(peers) > 50 {
		t.Fatalf("subset peers of %s: %d", l.Nodes[0].Name, len(peers))
	}
	// A dual-stack peer gives one target per address.
	var observer string
	sub.Pairs(func(s, d string) {
		if d == "one-more" && observer == "" {
			observer = s
		}
	})
	tg, me := sub.Targets(observer)
	if me == nil || me.Name != observer {
		t.Fatalf("Targets(%s) self = %v", observer, me)
	}
	addrs := 0
	for _, x := range tg {
		if x.Node.Name == "one-more" {
			addrs++
		}
	}
	if addrs != 2 {
		t.Fatalf("dual-stack peer gave %d targets, want 2", addrs)
	}
	// A node that is not in the list probes its K ring successors; nobody probes it.
	if got := sub.Peers("not-listed"); len(got) != sub.RingPeers() {
		t.Fatalf("Peers(not-listed) = %d nodes, want %d", len(got), sub.RingPeers())
	}
	if tg, me := sub.Targets("not-listed"); me != nil || len(tg) == 0 {
		t.Fatalf("Targets(not-listed) = %d targets, self %v", len(tg), me)
	}
}

func TestPlanStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	l := cluster(rng, 600, 3, 0)
	st := Build(l, recommended()).Stats()
	if st.Mode != ModeSubset || st.Nodes != 600 || st.Zones != 3 || st.SubsetPeers != 8 || st.ZonePairMin != 3 ||
		st.ZonePairs != 6 || st.ZonePairsCovered != 6 || st.MinZonePairPairs < 3 || st.MinObservingZones < 2 ||
		st.MaxPeers < 8 || st.MaxObservers < 8 || st.Pairs < 600*8 {
		t.Fatalf("stats: %+v", st)
	}
	t.Logf("600 nodes, 3 zones: %+v", st)
	st = Build(nodelist.List{Nodes: l.Nodes[:10]}, recommended()).Stats()
	if st.Mode != ModeFullMesh || st.Pairs != 90 || st.SubsetPeers != 0 || st.MaxPeers != 9 {
		t.Fatalf("full mesh stats: %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{DefaultOptions(), ""},
		{Options{FullMeshMax: -1, SubsetPeers: 8, ZonePairMin: 3}, "--full-mesh-max -1: must not be negative"},
		{Options{FullMeshMax: 50, SubsetPeers: 1, ZonePairMin: 3}, "--subset-peers 1: must be at least 2 (with one, a node and its only source look alike)"},
		{Options{FullMeshMax: 50, SubsetPeers: 8, ZonePairMin: 0}, "zone pair minimum 0: must be at least 1"},
		{Options{FullMeshMax: 50, SubsetPeers: 8, ZonePairMin: 3, MaxZones: 0}, ""},
		{Options{FullMeshMax: 50, SubsetPeers: 8, ZonePairMin: 3, MaxZones: 1}, "--max-zones 1: must be at least 2 (0: 16), or no zone link can be told from a node"},
		{Options{FullMeshMax: 50, SubsetPeers: 8, ZonePairMin: 3, MaxZones: -2}, "--max-zones -2: must be at least 2 (0: 16), or no zone link can be told from a node"},
	}
	for _, c := range cases {
		err := c.o.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("Validate(%+v) = %q, want %q", c.o, got, c.want)
		}
	}
}

// BenchmarkBuild5000 is what an agent does on every new list: build the plan and its own peers.
func BenchmarkBuild5000(b *testing.B) {
	l := cluster(rand.New(rand.NewPCG(1, 1)), 5000, 3, 0)
	b.ReportAllocs()
	for b.Loop() {
		p := Build(l, DefaultOptions())
		if len(p.Peers(l.Nodes[42].Name)) < 8 {
			b.Fatal("too few peers")
		}
	}
}

// BenchmarkAllPairs5000 is what `nodeping-agent plan` does: every node's peers.
func BenchmarkAllPairs5000(b *testing.B) {
	l := cluster(rand.New(rand.NewPCG(1, 1)), 5000, 3, 0)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		Build(l, DefaultOptions()).Pairs(func(_, _ string) { n++ })
		if n < 5000*8 {
			b.Fatal("too few pairs")
		}
	}
}

// BenchmarkStats5000 is the plan's self-metrics, computed once per new list.
func BenchmarkStats5000(b *testing.B) {
	l := cluster(rand.New(rand.NewPCG(1, 1)), 5000, 3, 0)
	p := Build(l, DefaultOptions())
	b.ReportAllocs()
	for b.Loop() {
		if p.Stats().Pairs < 5000*8 {
			b.Fatal("too few pairs")
		}
	}
}

// statsReference is Stats as it was first written: every node's peers walked, with a map of
// observing zones per node. TestStatsMatchesReference checks Stats' faster counts against it
// (the summary of the per-zone-pair counts, zonePairCoverage, is the same code in both).
func statsReference(p *Plan) Stats {
	st := Stats{Mode: p.mode, Nodes: len(p.nodes), FoldedZones: p.foldedZones, FoldedNodes: p.foldedNodes}
	if p.mode == ModeSubset {
		st.SubsetPeers, st.ZonePairMin = p.RingPeers(), p.opts.ZonePairMin
	}
	listZones := map[string]bool{}
	zoneID := map[string]int{} // of the plan's zones
	for i, n := range p.nodes {
		listZones[n.Zone] = true
		if _, ok := zoneID[p.zones[p.zone[i]]]; !ok {
			zoneID[p.zones[p.zone[i]]] = len(zoneID)
		}
	}
	z := len(zoneID)
	st.Zones, st.ZonePairs = len(listZones), z*(z-1)
	zp := make([]int, z*z)
	in := make([]int, len(p.nodes))
	obsZones := make([]map[int]bool, len(p.nodes))
	for i, n := range p.nodes {
		peers := p.peerIndexes(n.Name)
		st.Pairs += len(peers)
		st.MaxPeers = max(st.MaxPeers, len(peers))
		za := zoneID[p.zones[p.zone[i]]]
		for _, j := range peers {
			in[j]++
			zp[za*z+zoneID[p.zones[p.zone[j]]]]++
			if obsZones[j] == nil {
				obsZones[j] = map[int]bool{}
			}
			obsZones[j][za] = true
		}
	}
	st.ZonePairsCovered, st.MinZonePairPairs = zonePairCoverage(zp, z)
	st.MinObservingZones = -1
	for j := range p.nodes {
		st.MaxObservers = max(st.MaxObservers, in[j])
		if st.MinObservingZones < 0 || len(obsZones[j]) < st.MinObservingZones {
			st.MinObservingZones = len(obsZones[j])
		}
	}
	st.MinObservingZones = max(st.MinObservingZones, 0)
	return st
}

// TestStatsMatchesReference: Stats (counted per zone in a full mesh, with arrays in a subset)
// gives the figures of the plain walk over every pair, in both modes, with zone-less nodes,
// single-node zones and duplicate names.
func TestStatsMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for c := range 60 {
		n, z := []int{0, 1, 2, 3, 10, 40, 120}[c%7], 1+rng.IntN(6)
		l := cluster(rng, n, z, []float64{0, 0.1, 1}[c%3])
		if c%4 == 3 && n > 2 {
			for range 1 + rng.IntN(3) {
				l.Nodes[rng.IntN(n)].Name = l.Nodes[rng.IntN(n)].Name // duplicate names
			}
		}
		if c%5 == 4 && n > 0 {
			l.Nodes[rng.IntN(n)].Zone = "zone-alone"
		}
		for _, o := range []Options{{FullMeshMax: 1000, SubsetPeers: 8, ZonePairMin: 3}, {FullMeshMax: 5, SubsetPeers: 3, ZonePairMin: 2}, {FullMeshMax: 5, SubsetPeers: 3, ZonePairMin: 2, MaxZones: 3}} {
			p := Build(l, o)
			if got, want := p.Stats(), statsReference(p); got != want {
				t.Fatalf("case %d (%d nodes, %d zones, %s): Stats() = %+v, want %+v", c, n, z, p.mode, got, want)
			}
		}
	}
}
