//go:build linux

package simcluster

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	spec := func(s string) Spec {
		x, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	results := []CaseResult{
		{Spec: spec("blackhole:node-1"), Expected: []string{"A"}, Fired: map[string]time.Duration{"A": 40 * time.Second}, Detected: true, Took: 40 * time.Second},
		{Spec: spec("blackhole:node-2"), Expected: []string{"B"}, Fired: map[string]time.Duration{"B": 60 * time.Second, "X": 70 * time.Second}, Detected: true, Took: 60 * time.Second},
		{Spec: spec("blackhole:node-3"), Expected: []string{"C"}, Fired: map[string]time.Duration{}},
		{Spec: spec("background-loss:0.2"), Fired: map[string]time.Duration{}},
	}
	var out bytes.Buffer
	WriteRows(&out, Summarize(results))
	want := `class              cases precision recall median_s worst_s alerts_per_fault
healthy                1      1.00   1.00        -       -             0.00
node-blackhole         3      0.67   0.67       50      60             1.00
all                    4      0.67   0.67       50      60             0.75
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// TestDrawSpec: every class draws valid specs of its own class, reproducibly from a seed.
func TestDrawSpec(t *testing.T) {
	nodes, zones := Names(12, 3)
	for _, class := range CampaignClasses {
		a, b := rand.New(rand.NewPCG(7, 1)), rand.New(rand.NewPCG(7, 1))
		for i := 0; i < 50; i++ {
			s, err := DrawSpec(a, class, nodes, zones)
			if err != nil {
				t.Fatalf("%s: %v", class, err)
			}
			if s.Class() != class {
				t.Errorf("%s drew %s of class %s", class, s, s.Class())
			}
			if err := s.Check(nodes, zones); err != nil {
				t.Error(err)
			}
			if s2, _ := DrawSpec(b, class, nodes, zones); s2.String() != s.String() {
				t.Errorf("%s: same seed drew %s then %s", class, s, s2)
			}
		}
	}
}
