package targets

import (
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/internal/testutil/golden"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden")

// zonedList makes n nodes in zones of the given sizes, cycled: sizes {1} gives every node its
// own zone, {1, ..., 10} zones of 1 to 10 nodes.
func zonedList(n int, sizes []int) nodelist.List {
	l := nodelist.List{Format: nodelist.FormatNodeping}
	zone, left := 0, sizes[0]
	for i := range n {
		if left == 0 {
			zone++
			left = sizes[zone%len(sizes)]
		}
		left--
		l.Nodes = append(l.Nodes, nodelist.Node{
			Name: fmt.Sprintf("node-%04d", i), Zone: fmt.Sprintf("zone-%04d", zone), Ready: true, Schedulable: true,
			IPv4: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
		})
	}
	return l
}

// asPlanned is the list with every node's zone replaced by the zone the plan gives it.
func asPlanned(p *Plan) nodelist.List {
	l := nodelist.List{Format: nodelist.FormatNodeping}
	for i, n := range p.nodes {
		n.Zone = p.zones[p.zone[i]]
		l.Nodes = append(l.Nodes, n)
	}
	return l
}

// TestPlanZoneCap: past --max-zones, the smallest zones are planned as one. The plan then is
// exactly the plan of the list with those zones renamed to one, so every guarantee of
// TestPlanProperties holds over the plan's zones; no node probes more than the bound for
// MaxZones zones; and building the plan and its figures costs memory bounded by N, not by the
// square of the zones. testdata/zonecap.golden holds each case's figures (-update rewrites it).
func TestPlanZoneCap(t *testing.T) {
	cases := []struct {
		name     string
		l        nodelist.List
		maxZones int
	}{
		{"5000 nodes, each its own zone", zonedList(5000, []int{1}), 0},
		{"5000 nodes, zones of 1 to 10 nodes", zonedList(5000, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), 0},
		{"600 nodes, zones of 10", zonedList(600, []int{10}), 0},
		{"300 nodes, 16 zones: none folded", zonedList(300, []int{30, 25, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 63}), 0},
		{"300 nodes, 17 zones: the 2 smallest folded", zonedList(300, []int{30, 25, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 56}), 0},
		{"300 nodes, 17 zones, --max-zones 2", zonedList(300, []int{30, 25, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 56}), 2},
	}
	var got strings.Builder
	for _, c := range cases {
		o := Options{FullMeshMax: RecommendedFullMeshMax, SubsetPeers: DefaultSubsetPeers, ZonePairMin: DefaultZonePairMin, MaxZones: c.maxZones}
		p := Build(c.l, o)
		st := p.Stats()
		maxZ := o.maxZones()
		if len(p.zones) > maxZ {
			t.Fatalf("%s: the plan has %d zones, more than %d", c.name, len(p.zones), maxZ)
		}
		if st.Zones > maxZ && (st.FoldedZones != st.Zones-maxZ+1 || st.FoldedNodes == 0) || st.Zones <= maxZ && st.FoldedZones+st.FoldedNodes != 0 {
			t.Fatalf("%s: %d zones, %d folded (%d nodes), with --max-zones %d", c.name, st.Zones, st.FoldedZones, st.FoldedNodes, maxZ)
		}
		k, m := o.SubsetPeers, o.ZonePairMin
		if lim := k + 1 + 2*k + m*(maxZ-1); st.MaxPeers > lim {
			t.Fatalf("%s: a node probes %d peers, more than K+1+2K+M(MaxZones-1) = %d", c.name, st.MaxPeers, lim)
		}
		planned := asPlanned(p)
		if d := churn(pairSet(p), pairSet(Build(planned, o))); d != 0 {
			t.Fatalf("%s: the plan differs in %d pairs from that of the list with its zones folded", c.name, d)
		}
		checkPlan(t, planned, Options{FullMeshMax: 0, SubsetPeers: k, ZonePairMin: m, MaxZones: c.maxZones})
		if got, want := st, statsReference(p); got != want {
			t.Fatalf("%s: Stats() = %+v, want %+v", c.name, got, want)
		}
		fmt.Fprintf(&got, "%s: zones %d, folded %d (%d nodes), plan zones %d; pairs %d, peers at most %d, observers at most %d; zone pairs %d of %d covered, at least %d pairs each; observed from at least %d zones; %s peers %d\n",
			c.name, st.Zones, st.FoldedZones, st.FoldedNodes, len(p.zones), st.Pairs, st.MaxPeers, st.MaxObservers,
			st.ZonePairsCovered, st.ZonePairs, st.MinZonePairPairs, st.MinObservingZones, c.l.Nodes[42].Name, len(p.Peers(c.l.Nodes[42].Name)))
	}
	golden.Check(t, filepath.Join("testdata", "zonecap.golden"), got.String(), *updateGolden)
}

// TestPlanZoneCapMemory: an agent's work on a list of 5,000 one-node zones (build the plan, its
// own peers and the plan's figures) allocates a few megabytes, not a zones x zones matrix.
func TestPlanZoneCapMemory(t *testing.T) {
	l := zonedList(5000, []int{1})
	o := Options{FullMeshMax: RecommendedFullMeshMax, SubsetPeers: DefaultSubsetPeers, ZonePairMin: DefaultZonePairMin}
	for _, fullMesh := range []bool{false, true} {
		if fullMesh {
			o.FullMeshMax = DefaultFullMeshMax
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := Build(l, o)
		peers := len(p.Peers(l.Nodes[42].Name))
		st := p.Stats()
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d peers, %d plan zones, %.1f MB allocated", st.Mode, peers, len(p.zones), float64(alloc)/1e6)
		if alloc > 16<<20 {
			t.Errorf("%s: building the plan of 5,000 one-node zones and its figures allocated %d bytes", st.Mode, alloc)
		}
	}
}
