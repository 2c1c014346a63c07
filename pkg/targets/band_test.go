package targets

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/internal/testutil/golden"
	"github.com/nodeping/nodeping/pkg/nodelist"
)

// TestPlanBand: a list that crosses --full-mesh-max by one node, as an autoscaler at 50 and 51
// does, changes each node's plan by about one peer, not from a full mesh to K peers and back;
// 50 -> 51 -> 50 gives the first plan again. From 51 to 100 nodes the ring narrows to K, no node
// probes more than the full mesh at 50 did, and each step changes at most 2N pairs among the
// other nodes. testdata/band.golden holds the figures of every size (-update rewrites it).
func TestPlanBand(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 16))
	all := cluster(rng, 2*RecommendedFullMeshMax+2, 3, 0)
	o := recommended()
	at := func(n int) (nodelist.List, *Plan) {
		l := nodelist.List{Nodes: all.Nodes[:n]}
		return l, Build(l, o)
	}
	_, p50 := at(50)
	_, p51 := at(51)
	s50, s51 := pairSet(p50), pairSet(p51)
	joined := all.Nodes[50].Name
	up := churnAmong(s50, s51, joined)
	if back := pairSet(Build(nodelist.List{Nodes: all.Nodes[:50]}, o)); churn(s50, back) != 0 {
		t.Fatalf("50 -> 51 -> 50 nodes does not give the plan of 50 back")
	}
	if up > 51 {
		t.Fatalf("50 -> 51 nodes changed %d pairs among the first 50 nodes, more than one a node", up)
	}
	// Without the band, the same step would change nearly every pair.
	hard := o
	hard.FullMeshMax = 0
	flip := churnAmong(s50, pairSet(Build(nodelist.List{Nodes: all.Nodes[:51]}, hard)), joined)
	t.Logf("50 -> 51 nodes: %d pairs changed among the first 50 (a hard switch to K=8: %d)", up, flip)

	var got strings.Builder
	prev := s50
	for n := 51; n <= 2*RecommendedFullMeshMax+1; n++ {
		_, p := at(n)
		st := p.Stats()
		cur := pairSet(p)
		d := churnAmong(prev, cur, all.Nodes[n-1].Name)
		if p.Mode() != ModeSubset || st.MaxPeers > 50+2*DefaultZonePairMin || d > 2*n {
			t.Fatalf("%d nodes: mode %s, at most %d peers, %d pairs changed from %d nodes", n, p.Mode(), st.MaxPeers, d, n-1)
		}
		if n >= 2*RecommendedFullMeshMax && p.RingPeers() != DefaultSubsetPeers {
			t.Fatalf("%d nodes: ring of %d peers, want K = %d", n, p.RingPeers(), DefaultSubsetPeers)
		}
		fmt.Fprintf(&got, "%d nodes: ring %d, pairs %d, peers at most %d, changed from %d nodes %d\n", n, p.RingPeers(), st.Pairs, st.MaxPeers, n-1, d)
		prev = cur
	}
	golden.Check(t, filepath.Join("testdata", "band.golden"), got.String(), *updateGolden)
}

// TestRingPeers: the ring's width across the band, for the shipped and other thresholds.
func TestRingPeers(t *testing.T) {
	cases := []struct {
		fullMeshMax, k int
		n              []int
		want           []int
	}{
		{50, 8, []int{51, 52, 75, 99, 100, 5000}, []int{49, 48, 29, 9, 8, 8}},
		{0, 8, []int{1, 9, 5000}, []int{8, 8, 8}},
		{5, 8, []int{6, 10}, []int{8, 8}}, // the full mesh is narrower than K: K at once
		{20, 8, []int{21, 30, 39, 40, 60}, []int{19, 14, 9, 8, 8}},
	}
	for _, c := range cases {
		o := Options{FullMeshMax: c.fullMeshMax, SubsetPeers: c.k, ZonePairMin: 3}
		var got []int
		for _, n := range c.n {
			got = append(got, o.ringPeers(n))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("--full-mesh-max %d, K %d: ring widths at %v nodes = %v, want %v", c.fullMeshMax, c.k, c.n, got, c.want)
		}
	}
}
