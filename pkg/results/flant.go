package results

import "github.com/nodeping/nodeping/pkg/probe"

// The label names of Flant's series, declared once; the families carry the same slices.
var (
	flantNodeLabelNames = []string{"destination_node", "destination_node_ip_address"}
	flantExtLabelNames  = []string{"destination_name", "destination_host"}
)

// CompatFlant adds Flant node-ping's series (kube_node_ping_*, external_ping_*) to the output.
const CompatFlant = "flant"

func flantLabels(p Pair) string {
	if p.Kind == KindExternal {
		return renderLabels(flantExtLabelNames, []string{p.Name, p.Host}, true)
	}
	return renderLabels(flantNodeLabelNames, []string{p.Name, p.IP.String()}, true)
}

// flantFamilies are Flant node-ping's series, with its names, labels, HELP texts and units
// (milliseconds; per-cycle gauges are 0 when nothing came back), so that its dashboards and its
// NodePingPacketLoss alert keep working. Their source is the ICMP probe only (they are "ICMP
// packets" to Flant's users, never TCP or MTU counters), over IPv4 only: Flant had one series
// per node, and its labels for an external target cannot tell two addresses apart.
func flantFamilies(prefix string, kind Kind) []*Family {
	labels := flantNodeLabelNames
	if kind == KindExternal {
		labels = flantExtLabelNames
	}
	fam := func(name string, typ Type, help string, v func(p *pairState) float64) *Family {
		return &Family{Name: prefix + name, Type: typ, Help: help, Labels: labels, Compat: CompatFlant,
			render: func(f *Family, r *Results, e *encoder) {
				last := ""
				for _, p := range r.sorted {
					if p.pair.Kind != kind || !flantSource(p.pair) || p.pair.Name == last {
						continue
					}
					last = p.pair.Name // one series per node or target, as Flant had
					e.sample(f.Name, "", p.flantLabels, v(p))
				}
			}}
	}
	ms := func(s float64) float64 { return s * 1000 }
	return []*Family{
		fam("packets_received_total", Counter, "ICMP packets received", func(p *pairState) float64 { return float64(p.received) }),
		fam("packets_sent_total", Counter, "ICMP packets sent", func(p *pairState) float64 { return float64(p.sent) }),
		fam("rtt_max", Gauge, "maximum round-trip time", func(p *pairState) float64 { return ms(p.lastMax) }),
		fam("rtt_mdev", Gauge, "mean deviation of round-trip times", func(p *pairState) float64 { return ms(p.lastStddev) }),
		fam("rtt_milliseconds_total", Counter, "round-trip time", func(p *pairState) float64 { return ms(p.rttSum) }),
		fam("rtt_min", Gauge, "minimum round-trip time", func(p *pairState) float64 { return ms(p.lastMin) }),
	}
}

// flantSource tells the pairs Flant's series are taken from: ICMP over IPv4.
func flantSource(p Pair) bool { return p.Protocol == probe.ProtocolICMP && family(p.IP) == "ipv4" }
