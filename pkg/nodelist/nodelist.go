// Package nodelist defines the nodes list that agents read: its types, a decoder that detects the
// format (Flant's nodes.json, Deckhouse's targets.json, or nodeping's own), and an encoder for ours.
package nodelist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"unicode"
)

// Format names the layout a nodes list was decoded from.
type Format string

const (
	// FormatNodeping is nodeping's own format: {"nodes":[...],"external_targets":[...]}.
	FormatNodeping Format = "nodeping"
	// FormatFlant is Flant node-ping's nodes.json: [{"name":...,"ipAddress":...}].
	FormatFlant Format = "flant"
	// FormatDeckhouse is Deckhouse monitoring-ping's targets.json:
	// {"cluster_targets":[{"name","ipAddress"}],"external_targets":[{"name","host"}]}.
	FormatDeckhouse Format = "deckhouse"
)

// Node is one cluster node that agents probe.
type Node struct {
	Name string
	// Zone is the node's topology.kubernetes.io/zone label, "" when it has none.
	Zone string
	// IPv4 and IPv6 are the node's addresses; at least one is valid.
	IPv4, IPv6 netip.Addr
	// Ready and Schedulable come from the Node's status and spec; formats without them mean true.
	Ready, Schedulable bool
}

// Addrs returns the node's valid addresses, IPv4 first.
func (n Node) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// External is a target outside the cluster, named by an address or a host name that every agent
// looks up (pkg/resolve: kept for its TTL).
type External struct {
	Name string
	Host string
}

// List is a decoded nodes list.
type List struct {
	Format   Format
	Nodes    []Node
	External []External
}

// Skip is an entry of the list that was left out, with a short reason usable as a metric label.
type Skip struct {
	Name   string
	Reason string
	Detail string
}

func (s Skip) String() string { return fmt.Sprintf("%q: %s: %s", s.Name, s.Reason, s.Detail) }

// Skip reasons.
const (
	ReasonNoName        = "no_name"
	ReasonNoAddress     = "no_address"
	ReasonBadAddress    = "bad_address"
	ReasonDuplicateName = "duplicate_name"
	ReasonExtraAddress  = "extra_address"
	ReasonNoHost        = "no_host"
	// ReasonRefusedAddress: a loopback, multicast or link-local address, which no peer can
	// probe as this node's (loopback is kept in a list whose every address is loopback: a test or
	// a demo on one host); for an external target, also what RefusedTarget refuses.
	ReasonRefusedAddress = "refused_address"
)

// ErrEmpty is returned for an input that holds nothing but white space.
var ErrEmpty = errors.New("nodes list is empty")

type wireNode struct {
	Name        string   `json:"name"`
	Zone        string   `json:"zone,omitempty"`
	IPAddress   string   `json:"ipAddress,omitempty"`
	Addresses   []string `json:"addresses,omitempty"`
	Ready       *bool    `json:"ready,omitempty"`
	Schedulable *bool    `json:"schedulable,omitempty"`
}

type wireExternal struct {
	Name string `json:"name"`
	Host string `json:"host"`
}

type wireObject struct {
	Nodes          *[]wireNode    `json:"nodes"`
	ClusterTargets *[]wireNode    `json:"cluster_targets"`
	External       []wireExternal `json:"external_targets"`
}

// Decode parses a nodes list in any supported format, detected from its shape. Entries that cannot
// be probed (no name, no or a bad address, a duplicate name) are left out and returned as skips; the
// error is for input that is not a nodes list at all.
func Decode(data []byte) (List, []Skip, error) {
	lead := len(data) - len(bytes.TrimLeftFunc(data, unicode.IsSpace))
	orig := data
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return List{}, nil, ErrEmpty
	}
	var (
		list  List
		nodes []wireNode
		exts  []wireExternal
	)
	switch data[0] {
	case '[':
		list.Format = FormatFlant
		if err := json.Unmarshal(data, &nodes); err != nil {
			return List{}, nil, fmt.Errorf("decode flant nodes list: %w", at(orig, lead, err))
		}
	case '{':
		var obj wireObject
		if err := json.Unmarshal(data, &obj); err != nil {
			return List{}, nil, fmt.Errorf("decode nodes list object: %w", at(orig, lead, err))
		}
		switch {
		case obj.Nodes != nil:
			list.Format, nodes = FormatNodeping, *obj.Nodes
		case obj.ClusterTargets != nil || obj.External != nil:
			list.Format = FormatDeckhouse
			if obj.ClusterTargets != nil {
				nodes = *obj.ClusterTargets
			}
		default:
			return List{}, nil, errors.New(`decode nodes list: object has neither "nodes" nor "cluster_targets"`)
		}
		exts = obj.External
	default:
		return List{}, nil, fmt.Errorf("decode nodes list: invalid JSON: starts with %q, want '[' or '{'", data[0])
	}

	var skips []Skip
	seen := make(map[string]bool, len(nodes))
	loopbackOK := loopbackOnly(usableAddrs(nodes))
	for _, w := range nodes {
		n, sk := fromWire(w, loopbackOK)
		skips = append(skips, sk...)
		if !n.IPv4.IsValid() && !n.IPv6.IsValid() {
			continue
		}
		if seen[n.Name] {
			skips = append(skips, Skip{Name: n.Name, Reason: ReasonDuplicateName, Detail: "a node of that name came earlier"})
			continue
		}
		seen[n.Name] = true
		list.Nodes = append(list.Nodes, n)
	}
	seenExt := make(map[string]bool, len(exts))
	for _, e := range exts {
		e.Host = strings.TrimSpace(e.Host)
		if e.Name == "" {
			e.Name = e.Host
		}
		switch {
		case e.Host == "":
			skips = append(skips, Skip{Name: e.Name, Reason: ReasonNoHost, Detail: "external target has no host"})
		case seenExt[e.Name]:
			skips = append(skips, Skip{Name: e.Name, Reason: ReasonDuplicateName, Detail: "an external target of that name came earlier"})
		default:
			seenExt[e.Name] = true
			list.External = append(list.External, External(e))
		}
	}
	return list, skips, nil
}

// posError is a JSON error with the line and column where it was found.
type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string {
	msg := e.err.Error()
	var typ *json.UnmarshalTypeError
	if errors.As(e.err, &typ) {
		// Our own words, not encoding/json's, whose wording of the field changes between Go
		// releases: the field's last name and what was there instead.
		field := typ.Field[strings.LastIndexByte(typ.Field, '.')+1:]
		msg = fmt.Sprintf("field %q: a JSON %s where a %s belongs", field, typ.Value, typ.Type)
	}
	return fmt.Sprintf("line %d, column %d: %s", e.line, e.col, msg)
}
func (e *posError) Unwrap() error { return e.err }

// at adds the line and column (both from 1, the column in bytes) to a JSON syntax or type error
// found in the input orig after lead bytes of leading white space were trimmed.
func at(orig []byte, lead int, err error) error {
	var off int64
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err
	}
	// Offset counts the bytes read when the error was found: the culprit is the last of them.
	i := min(max(int(off)-1, 0)+lead, len(orig))
	line := 1 + bytes.Count(orig[:i], []byte("\n"))
	col := i - bytes.LastIndexByte(orig[:i], '\n')
	return &posError{line: line, col: col, err: err}
}

// usableAddrs are the addresses of the list's nodes that parse and that Refused accepts when
// loopback is: those that decide whether the list is loopback only.
func usableAddrs(nodes []wireNode) []netip.Addr {
	var out []netip.Addr
	for _, w := range nodes {
		for _, s := range append([]string{w.IPAddress}, w.Addresses...) {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || a.IsUnspecified() || Refused(a.Unmap(), true) != "" {
				continue
			}
			out = append(out, a)
		}
	}
	return out
}

// loopbackOnly reports whether there is an address and every one is loopback: a list for a test
// or a demo on one host, where loopback is what there is to probe. Decode and List.LoopbackOnly
// both ask it.
func loopbackOnly(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return false
		}
	}
	return len(addrs) > 0
}

// Refused says why a parsed, usable address is still refused as a node's address ("loopback",
// "multicast", "link-local"), or "" when it is accepted. loopbackOK accepts loopback, for lists
// whose every address is loopback (tests and benchmarks on one machine); the controller never
// passes it. It is the one rule, with UsableAddr, for the agent and the controller, and the
// core of RefusedTarget for external targets.
func Refused(a netip.Addr, loopbackOK bool) string {
	switch {
	case a.IsLoopback() && !loopbackOK:
		return RefusedLoopback
	case a.IsMulticast():
		return RefusedMulticast
	case a.IsLinkLocalUnicast():
		return RefusedLinkLocal
	}
	return ""
}

// RefusedSkip is the skip of the entry name whose address a is refused for why (Refused's or
// RefusedTarget's reason).
func RefusedSkip(name string, a netip.Addr, why string) Skip {
	return Skip{Name: name, Reason: ReasonRefusedAddress, Detail: fmt.Sprintf("%s address %s refused", why, a)}
}

// fromWire validates one entry. A node whose addresses are all unusable comes back with neither
// address set, and the skips say why.
func fromWire(w wireNode, loopbackOK bool) (Node, []Skip) {
	n := Node{Name: strings.TrimSpace(w.Name), Zone: w.Zone, Ready: true, Schedulable: true}
	if w.Ready != nil {
		n.Ready = *w.Ready
	}
	if w.Schedulable != nil {
		n.Schedulable = *w.Schedulable
	}
	if n.Name == "" {
		return Node{}, []Skip{{Name: w.IPAddress, Reason: ReasonNoName, Detail: "node has no name"}}
	}
	raw := w.Addresses
	if w.IPAddress != "" {
		raw = append([]string{w.IPAddress}, raw...)
	}
	var skips []Skip
	for _, s := range raw {
		a, ok := UsableAddr(s)
		if !ok {
			skips = append(skips, Skip{Name: n.Name, Reason: ReasonBadAddress, Detail: fmt.Sprintf("unusable address %q", s)})
			continue
		}
		if why := Refused(a, loopbackOK); why != "" {
			skips = append(skips, RefusedSkip(n.Name, a, why))
			continue
		}
		slot := &n.IPv6
		if a.Is4() {
			slot = &n.IPv4
		}
		if slot.IsValid() {
			if *slot != a {
				skips = append(skips, Skip{Name: n.Name, Reason: ReasonExtraAddress, Detail: fmt.Sprintf("address %s ignored: %s is the node's address of that family", a, *slot)})
			}
			continue
		}
		*slot = a
	}
	if !n.IPv4.IsValid() && !n.IPv6.IsValid() && len(skips) == 0 {
		skips = append(skips, Skip{Name: n.Name, Reason: ReasonNoAddress, Detail: "node has no address"})
	}
	return n, skips
}

// UsableAddr parses s as an address a node can be probed at: an IP address without a zone, not
// the unspecified one; an IPv4-mapped IPv6 address gives its IPv4 address. It is the one rule for
// both the controller, which renders the list, and the agents, which decode it.
func UsableAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// The states of a listed node, as State gives them.
const (
	StateReady    = "ready"
	StateNotReady = "not_ready"
	StateCordoned = "cordoned"
)

// State is the node's state: not_ready when it is not Ready (whether or not it is cordoned),
// cordoned when it is Ready but unschedulable, ready otherwise. It is the one rule for the
// controller's node counts and the agents' nodeping_node_maintenance.
func (n Node) State() string {
	switch {
	case !n.Ready:
		return StateNotReady
	case !n.Schedulable:
		return StateCordoned
	}
	return StateReady
}

// Encode renders a list in nodeping's own format, nodes and external targets sorted by name, one
// entry per line, so that equal lists give equal bytes, diffs stay readable, and a 5,000-node
// cluster fits a ConfigMap. Ready and schedulable are written only when false (absent means true).
func Encode(l List) ([]byte, error) {
	nodes := make([]wireNode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		w := wireNode{Name: n.Name, Zone: n.Zone}
		if !n.Ready {
			w.Ready = new(bool)
		}
		if !n.Schedulable {
			w.Schedulable = new(bool)
		}
		for _, a := range n.Addrs() {
			w.Addresses = append(w.Addresses, a.String())
		}
		nodes = append(nodes, w)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	exts := make([]wireExternal, 0, len(l.External))
	for _, e := range l.External {
		exts = append(exts, wireExternal(e))
	}
	sort.Slice(exts, func(i, j int) bool { return exts[i].Name < exts[j].Name })
	var b bytes.Buffer
	b.WriteString("{\"nodes\": [")
	for i, n := range nodes {
		if err := entry(&b, i, n); err != nil {
			return nil, err
		}
	}
	b.WriteString("\n]")
	if len(exts) > 0 {
		b.WriteString(",\n\"external_targets\": [")
		for i, e := range exts {
			if err := entry(&b, i, e); err != nil {
				return nil, err
			}
		}
		b.WriteString("\n]")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// entry appends one list element on its own line.
func entry(b *bytes.Buffer, i int, v any) error {
	if i > 0 {
		b.WriteByte(',')
	}
	b.WriteString("\n  ")
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode nodes list: %w", err)
	}
	b.Write(j)
	return nil
}
