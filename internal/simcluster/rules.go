//go:build linux

package simcluster

import (
	"fmt"
	"regexp"

	"github.com/nodeping/nodeping/internal/rulecampaign"
)

// ScaleRules divides every duration of a rules file (range windows, subquery steps, offsets, for:
// and group intervals; rulecampaign.ScaleRules is the one rule for that) by factor, so that the
// shipped expressions run at the simulated cluster's fast scrapes and prove each alert in seconds
// rather than minutes (the real windows are proven by the promtool tests). The textfile
// staleness threshold (> 120 seconds) and the baseline's history (>= 180 seconds) are divided
// too.
func ScaleRules(data []byte, factor int) []byte {
	if factor <= 1 {
		return data
	}
	out := rulecampaign.ScaleRules(string(data), factor)
	out = regexp.MustCompile(`> 120\b`).ReplaceAllString(out, fmt.Sprintf("> %d", 120/factor))
	return []byte(regexp.MustCompile(`>= 180\b`).ReplaceAllString(out, fmt.Sprintf(">= %d", 180/factor)))
}
