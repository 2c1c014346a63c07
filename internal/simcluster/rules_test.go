//go:build linux

package simcluster

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestScaleRulesThresholds: the shipped rules' literal second thresholds are divided with their
// windows, or a scaled rule would wait six times too long (the baseline's 3 minutes of history,
// the textfile's 120 seconds).
func TestScaleRulesThresholds(t *testing.T) {
	data, err := os.ReadFile("../../manifests/rules/nodeping.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, lit := range []string{">= 180", "> 120"} {
		if !strings.Contains(string(data), lit) {
			t.Fatalf("the shipped rules no longer hold %q: update ScaleRules", lit)
		}
	}
	scaled := string(ScaleRules(data, 6))
	for lit, want := range map[string]string{">= 180": ">= 30", "> 120": "> 20"} {
		if regexp.MustCompile(regexp.QuoteMeta(lit) + `\b`).MatchString(scaled) {
			t.Errorf("scaled rules still hold %q", lit)
		}
		if !strings.Contains(scaled, want) {
			t.Errorf("scaled rules lack %q", want)
		}
	}
}
