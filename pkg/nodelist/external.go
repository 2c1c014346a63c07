package nodelist

import (
	"fmt"
	"net/netip"
)

// MaxExternal is how many external targets a list carries by default (the controller's and the
// agent's --max-external-targets): each is probed by every agent, so that a long list costs every
// node the same, and every target is looked up by every agent (cached for its TTL).
//
// The cap has one convention everywhere: both flags take at least 1 (a list without external
// targets has none to cap), and in Go (LimitExternal, controller.LimitExternal, agent.Config) a
// cap of 0 or less means MaxExternal.
const MaxExternal = 32

// ReasonTooManyExternal: an external target past the cap (--max-external-targets).
const ReasonTooManyExternal = "too_many_external"

// LimitExternal keeps the first max external targets of ext (MaxExternal when max <= 0), in their
// order, and returns the others as skips. The controller writes them sorted by name, so that
// every agent keeps the same ones.
func LimitExternal(ext []External, max int) ([]External, []Skip) {
	if max <= 0 {
		max = MaxExternal
	}
	if len(ext) <= max {
		return ext, nil
	}
	var skips []Skip
	for _, e := range ext[max:] {
		skips = append(skips, Skip{Name: e.Name, Reason: ReasonTooManyExternal,
			Detail: fmt.Sprintf("%d external targets, at most %d are probed (--max-external-targets)", len(ext), max)})
	}
	return ext[:max], skips
}

// metadataAddrs are the cloud providers' instance metadata and credential endpoints. A probe
// never has a reason to reach them, and an external target naming one (or resolving to one) is
// refused. Several are link-local, and refused as such anyway; they are listed so that the reason
// says what they are.
var metadataAddrs = map[netip.Addr]string{
	netip.MustParseAddr("169.254.169.254"): "AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean instance metadata",
	netip.MustParseAddr("fd00:ec2::254"):   "AWS instance metadata over IPv6 (a ULA, not link-local)",
	netip.MustParseAddr("169.254.170.2"):   "AWS ECS task metadata and credentials",
	netip.MustParseAddr("169.254.170.23"):  "AWS EKS Pod Identity agent",
	netip.MustParseAddr("fd00:ec2::23"):    "AWS EKS Pod Identity agent over IPv6",
	netip.MustParseAddr("100.100.100.200"): "Alibaba Cloud instance metadata (in the shared address space, not link-local)",
	netip.MustParseAddr("192.0.0.192"):     "Oracle Cloud legacy instance metadata",
}

// Reasons an external target's address is refused, as RefusedTarget gives them (metric labels).
const (
	RefusedLoopback    = "loopback"
	RefusedUnspecified = "unspecified"
	RefusedLinkLocal   = "link-local"
	RefusedMulticast   = "multicast"
	RefusedMetadata    = "metadata"
)

// RefusedReasons are RefusedTarget's reasons, sorted.
var RefusedReasons = []string{RefusedLinkLocal, RefusedLoopback, RefusedMetadata, RefusedMulticast, RefusedUnspecified}

// RefusedTarget says why an external target's address, written in the list or resolved from its
// host name, is not probed, or "" when it is. It is the nodes' rule (Refused: loopback,
// multicast, link-local), and the unspecified address and the cloud metadata endpoints on top.
// loopbackOK accepts loopback, for a list whose every node address is loopback (LoopbackOnly: a
// test or a demo on one host); the controller never passes it.
func RefusedTarget(a netip.Addr, loopbackOK bool) string {
	a = a.Unmap()
	if _, ok := metadataAddrs[a.WithZone("")]; ok {
		return RefusedMetadata
	}
	if a.IsUnspecified() {
		return RefusedUnspecified
	}
	return Refused(a, loopbackOK)
}

// LoopbackOnly reports whether the list has nodes and every address of theirs is loopback: a list
// for a test or a demo on one host, where loopback is what there is to probe.
func (l List) LoopbackOnly() bool {
	var addrs []netip.Addr
	for _, n := range l.Nodes {
		addrs = append(addrs, n.Addrs()...)
	}
	return loopbackOnly(addrs)
}
