package simcluster

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var (
	rangeRE = regexp.MustCompile(`\[(\d+)([smh])(:\d+[smh])?\]`)
	forRE   = regexp.MustCompile(`(for|keep_firing_for): (\d+)([smh])`)
)

// ScaleRules divides every range window ([2m], [1h], subquery ranges) and every for: of a rules
// file by factor, so that the shipped expressions run at the simulated cluster's fast scrapes
// and prove each alert in seconds rather than minutes (the real windows are proven by the
// promtool tests). Windows never go below 4 scrapes of 2s. The textfile staleness threshold
// (> 120 seconds) is divided too.
func ScaleRules(data []byte, factor int) []byte {
	if factor <= 1 {
		return data
	}
	scale := func(n, unit string, floor time.Duration) string {
		v, _ := strconv.Atoi(n)
		d := time.Duration(v) * map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit] / time.Duration(factor)
		d = max(d, floor).Round(time.Second)
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	out := rangeRE.ReplaceAllFunc(data, func(m []byte) []byte {
		g := rangeRE.FindSubmatch(m)
		return []byte("[" + scale(string(g[1]), string(g[2]), 8*time.Second) + string(g[3]) + "]")
	})
	out = forRE.ReplaceAllFunc(out, func(m []byte) []byte {
		g := forRE.FindSubmatch(m)
		return []byte(string(g[1]) + ": " + scale(string(g[2]), string(g[3]), 0))
	})
	return regexp.MustCompile(`> 120\b`).ReplaceAll(out, []byte(fmt.Sprintf("> %d", 120/factor)))
}
