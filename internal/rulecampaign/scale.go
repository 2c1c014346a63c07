package rulecampaign

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var durations = regexp.MustCompile(`(\[|:|offset |for: |interval: )(\d+)(ms|s|m|h)\b`)

// ScaleRules divides every duration of a rules file (range windows, subquery steps, offsets,
// for: and group intervals) by div, for a simulated cluster that scrapes div times faster than
// 15s. Thresholds in seconds (NodePingTextfileStale's 120) are left alone.
func ScaleRules(rules string, div int) string {
	return durations.ReplaceAllStringFunc(rules, func(m string) string {
		p := durations.FindStringSubmatch(m)
		n, _ := strconv.Atoi(p[2])
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[p[3]]
		d := time.Duration(n) * unit / time.Duration(div)
		if d%time.Second == 0 {
			return fmt.Sprintf("%s%ds", p[1], d/time.Second)
		}
		return fmt.Sprintf("%s%dms", p[1], d/time.Millisecond)
	})
}
