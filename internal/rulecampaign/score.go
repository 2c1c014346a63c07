package rulecampaign

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// ClassScore sums up one fault class.
type ClassScore struct {
	Class          string
	Cases          int
	Silence        bool // no alert due: every alert is false
	Detected       int  // cases where every due alert fired after the fault
	Right, Wrong   int  // distinct alerts per case that named the fault, and that did not
	Times          []float64
	Clean, Gray    bool
	Latency        bool
	ClustersByName map[string]int
}

// Precision is right alerts over all alerts fired (1 when none fired).
func (s ClassScore) Precision() float64 {
	if s.Right+s.Wrong == 0 {
		return 1
	}
	return float64(s.Right) / float64(s.Right+s.Wrong)
}

// Recall is the share of cases whose due alerts all fired (1 for silence classes).
func (s ClassScore) Recall() float64 {
	if s.Silence || s.Cases == 0 {
		return 1
	}
	return float64(s.Detected) / float64(s.Cases)
}

// Median and Worst of the times to the right alert, in seconds (NaN when none).
func (s ClassScore) Median() float64 { return quantile(s.Times, 0.5) }
func (s ClassScore) Worst() float64  { return quantile(s.Times, 1) }

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if q >= 1 {
		return s[len(s)-1]
	}
	// the lower median for an even count: never flatters
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// Outcome is one case's result.
type Outcome struct {
	Case
	Missed []string // due alerts that never fired after the fault
	False  []Fired  // alerts that named something else, or fired before the fault
	Time   float64  // seconds from the fault to the first right alert (NaN if none)
}

// Score judges each case's alerts.
func Score(cases []Case, fired map[int][]Fired, classes []Class) ([]ClassScore, []Outcome) {
	silence := map[string]bool{}
	order := map[string]int{}
	for i, cl := range classes {
		silence[cl.Name] = cl.Silence
		order[cl.Name] = i
	}
	byClass := map[string]*ClassScore{}
	var outcomes []Outcome
	for _, cs := range cases {
		fault := cs.FaultSeconds()
		sc := byClass[cs.Class]
		if sc == nil {
			sc = &ClassScore{Class: cs.Class, Silence: silence[cs.Class], Clean: cs.Clean, Gray: cs.Gray, Latency: cs.Latency, ClustersByName: map[string]int{}}
			byClass[cs.Class] = sc
		}
		sc.Cases++
		sc.ClustersByName[cs.Cluster.Name]++
		want := map[string]bool{}
		for _, a := range cs.Want {
			want[a.Key()] = true
		}
		first := map[string]Fired{}
		for _, f := range fired[cs.ID] {
			k := f.Key()
			if old, ok := first[k]; !ok || f.At < old.At {
				first[k] = f
			}
		}
		o := Outcome{Case: cs, Time: math.NaN()}
		got := map[string]bool{}
		for k, f := range first {
			if want[k] && f.At >= fault {
				sc.Right++
				got[k] = true
				if t := f.At - fault; math.IsNaN(o.Time) || t < o.Time {
					o.Time = t
				}
				continue
			}
			sc.Wrong++
			o.False = append(o.False, f)
		}
		for k := range want {
			if !got[k] {
				o.Missed = append(o.Missed, k)
			}
		}
		sort.Strings(o.Missed)
		sort.Slice(o.False, func(i, j int) bool { return o.False[i].Key() < o.False[j].Key() })
		if len(want) > 0 && len(o.Missed) == 0 {
			sc.Detected++
			sc.Times = append(sc.Times, o.Time)
		}
		outcomes = append(outcomes, o)
	}
	var out []ClassScore
	for _, s := range byClass {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return order[out[i].Class] < order[out[j].Class] })
	return out, outcomes
}

// Totals are the campaign's overall figures.
type Totals struct {
	Cases, FaultCases, SilenceCases int
	Precision, Recall               float64
	FalseInSilence                  int
	CleanMedian, CleanWorst         float64
	GrayMedian, GrayWorst           float64
	LatencyMedian, LatencyWorst     float64
}

// Total sums the classes up.
func Total(scores []ClassScore) Totals {
	var t Totals
	var right, wrong, detected int
	var clean, gray, latency []float64
	for _, s := range scores {
		t.Cases += s.Cases
		right += s.Right
		wrong += s.Wrong
		if s.Silence {
			t.SilenceCases += s.Cases
			t.FalseInSilence += s.Wrong
			continue
		}
		t.FaultCases += s.Cases
		detected += s.Detected
		if s.Clean {
			clean = append(clean, s.Times...)
		}
		if s.Gray {
			gray = append(gray, s.Times...)
		}
		if s.Latency {
			latency = append(latency, s.Times...)
		}
	}
	t.Precision = 1
	if right+wrong > 0 {
		t.Precision = float64(right) / float64(right+wrong)
	}
	if t.FaultCases > 0 {
		t.Recall = float64(detected) / float64(t.FaultCases)
	}
	t.CleanMedian, t.CleanWorst = quantile(clean, 0.5), quantile(clean, 1)
	t.GrayMedian, t.GrayWorst = quantile(gray, 0.5), quantile(gray, 1)
	t.LatencyMedian, t.LatencyWorst = quantile(latency, 0.5), quantile(latency, 1)
	return t
}

func secs(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.0fs", f)
}

// Report prints the per-class table, the totals and every case that missed or raised a false
// alert.
func Report(w io.Writer, scores []ClassScore, outcomes []Outcome) Totals {
	fmt.Fprintf(w, "%-26s %6s %9s %7s %8s %7s %9s  %s\n", "class", "cases", "precision", "recall", "median", "worst", "alerts/f", "clusters")
	for _, s := range scores {
		var cl []string
		for name, n := range s.ClustersByName {
			cl = append(cl, fmt.Sprintf("%s:%d", name, n))
		}
		sort.Strings(cl)
		fmt.Fprintf(w, "%-26s %6d %9.3f %7.3f %8s %7s %9.2f  %s\n", s.Class, s.Cases, s.Precision(), s.Recall(),
			secs(s.Median()), secs(s.Worst()), float64(s.Right+s.Wrong)/float64(s.Cases), strings.Join(cl, " "))
	}
	t := Total(scores)
	fmt.Fprintf(w, "total: %d cases (%d faults, %d silent); precision %.3f, recall %.3f; false alerts in silent cases %d; "+
		"time to the right alert: clean faults median %s worst %s, gray (1-3%%) median %s worst %s, latency median %s worst %s\n",
		t.Cases, t.FaultCases, t.SilenceCases, t.Precision, t.Recall, t.FalseInSilence,
		secs(t.CleanMedian), secs(t.CleanWorst), secs(t.GrayMedian), secs(t.GrayWorst), secs(t.LatencyMedian), secs(t.LatencyWorst))
	for _, o := range outcomes {
		if len(o.Missed) == 0 && len(o.False) == 0 {
			continue
		}
		var fs []string
		for _, f := range o.False {
			fs = append(fs, fmt.Sprintf("%s@%s", f.Key(), secs(f.At-o.FaultSeconds())))
		}
		fmt.Fprintf(w, "  case %d %s on %s (%s, background %.2f%%): missed %v, false %v\n", o.ID, o.Class, o.Cluster.Name, o.Detail, 100*o.Background, o.Missed, fs)
	}
	return t
}
