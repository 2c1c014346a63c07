package results

import (
	"bufio"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// WriteText renders every metric in the text exposition format (0.0.4), families in name order,
// without timestamps (node-exporter's textfile collector rejects them).
func (r *Results) WriteText(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sorted == nil {
		r.sorted = make([]*pairState, 0, len(r.pairs))
		for _, p := range r.pairs {
			r.sorted = append(r.sorted, p)
		}
		sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i].labels < r.sorted[j].labels })
	}
	e := &encoder{w: bufio.NewWriterSize(w, 32<<10), b: r.buf[:0]}
	for _, f := range families {
		if f.Compat != "" && f.Compat != r.compat {
			continue
		}
		f.renderTo(r, e)
	}
	r.buf = e.b
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// encoder writes exposition text a line at a time through a reused line buffer.
type encoder struct {
	w      *bufio.Writer
	b      []byte  // the line being built
	err    error   // the first write error
	family *Family // whose header is pending until its first sample
}

func (e *encoder) flushLine() {
	if e.err == nil {
		_, e.err = e.w.Write(e.b)
	}
	e.b = e.b[:0]
}

func (e *encoder) start(f *Family) { e.family = f }

func (e *encoder) header() {
	if e.family == nil {
		return
	}
	f := e.family
	e.family = nil
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, f.Name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, helpEscaper.Replace(f.Help)...)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, f.Name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, f.Type...)
	e.b = append(e.b, '\n')
	e.flushLine()
}

func (e *encoder) sample(name, suffix, labels string, v float64) {
	e.header()
	e.b = append(e.b, name...)
	e.b = append(e.b, suffix...)
	e.b = append(e.b, labels...)
	e.b = append(e.b, ' ')
	e.b = strconv.AppendFloat(e.b, v, 'g', -1, 64)
	e.b = append(e.b, '\n')
	e.flushLine()
}

// renderHist writes one histogram series: cumulative buckets, +Inf, sum and count.
func renderHist(e *encoder, name string, h *histState, bounds []float64) {
	var cum uint64
	for i, ub := range bounds {
		cum += h.buckets[i]
		e.sample(name, "_bucket", h.labels+`,le="`+strconv.FormatFloat(ub, 'g', -1, 64)+`"}`, float64(cum))
	}
	e.sample(name, "_bucket", h.labels+`,le="+Inf"}`, float64(h.count))
	e.sample(name, "_sum", h.labels+"}", h.sum)
	e.sample(name, "_count", h.labels+"}", float64(h.count))
}

func (r *Results) pairLabels(p Pair) string {
	if p.Kind == KindExternal {
		return renderLabels(extPairLabelNames, []string{r.src.Node, r.src.Zone, p.Name, p.Host, p.IP.String(), family(p.IP), p.Protocol}, true)
	}
	return renderLabels(nodePairLabelNames, []string{r.src.Node, r.src.Zone, p.Name, p.Zone, p.IP.String(), family(p.IP), p.Protocol}, true)
}

func family(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "ipv6"
	}
	return "ipv4"
}

// labels renders a label set of the family from its values, given in the order of f.Labels.
func (f *Family) labels(values ...string) string { return renderLabels(f.Labels, values, true) }

// open renders a histogram's label set of the family without the closing brace, for le to follow.
func (f *Family) open(values ...string) string { return renderLabels(f.Labels, values, false) }

// renderLabels renders {a="x",b="y"} with values escaped as the text format requires; without
// the closing brace when closed is false.
func renderLabels(names, values []string, closed bool) string {
	if len(names) != len(values) {
		panic("results: " + strconv.Itoa(len(values)) + " label values for " + strings.Join(names, ","))
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(values[i]))
		b.WriteByte('"')
	}
	if closed {
		b.WriteByte('}')
	}
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)
