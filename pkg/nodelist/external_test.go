package nodelist

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestRefusedTarget(t *testing.T) {
	cases := []struct {
		addr       string
		loopbackOK bool
		want       string
	}{
		{"192.0.2.53", false, ""},
		{"2001:db8::53", false, ""},
		{"100.100.100.199", false, ""}, // next to Alibaba's metadata, an ordinary shared address
		{"fd00:ec2::253", false, ""},
		{"127.0.0.1", false, RefusedLoopback},
		{"127.0.0.1", true, ""},
		{"::1", false, RefusedLoopback},
		{"::ffff:127.0.0.1", false, RefusedLoopback},
		{"0.0.0.0", false, RefusedUnspecified},
		{"::", true, RefusedUnspecified},
		{"169.254.1.1", false, RefusedLinkLocal},
		{"fe80::1", false, RefusedLinkLocal},
		{"224.0.0.1", false, RefusedMulticast},
		{"ff02::1", false, RefusedMulticast},
		{"169.254.169.254", false, RefusedMetadata},
		{"169.254.169.254", true, RefusedMetadata},
		{"::ffff:169.254.169.254", false, RefusedMetadata},
		{"fd00:ec2::254", false, RefusedMetadata},
		{"100.100.100.200", false, RefusedMetadata},
		{"169.254.170.2", false, RefusedMetadata},
		{"169.254.170.23", false, RefusedMetadata},
		{"fd00:ec2::23", false, RefusedMetadata},
		{"192.0.0.192", false, RefusedMetadata},
	}
	for _, tc := range cases {
		if got := RefusedTarget(netip.MustParseAddr(tc.addr), tc.loopbackOK); got != tc.want {
			t.Errorf("RefusedTarget(%s, loopbackOK %v) = %q, want %q", tc.addr, tc.loopbackOK, got, tc.want)
		}
	}
}

func TestLimitExternal(t *testing.T) {
	var ext []External
	for i := range 5 {
		ext = append(ext, External{Name: fmt.Sprintf("t%d", i), Host: fmt.Sprintf("192.0.2.%d", i+1)})
	}
	kept, skips := LimitExternal(ext, 3)
	if fmt.Sprint(kept) != "[{t0 192.0.2.1} {t1 192.0.2.2} {t2 192.0.2.3}]" {
		t.Errorf("kept %v, want the first 3", kept)
	}
	if len(skips) != 2 || skips[0].String() != `"t3": too_many_external: 5 external targets, at most 3 are probed (--max-external-targets)` || skips[1].Name != "t4" {
		t.Errorf("skips %v, want t3 and t4 as too_many_external", skips)
	}
	if kept, skips := LimitExternal(ext, 5); len(kept) != 5 || skips != nil {
		t.Errorf("5 targets, at most 5: kept %d, skips %v", len(kept), skips)
	}
	many := make([]External, MaxExternal+1)
	for _, max := range []int{0, -1} {
		if kept, skips := LimitExternal(many, max); len(kept) != MaxExternal || len(skips) != 1 {
			t.Errorf("cap %d, the default: kept %d, skipped %d, want %d and 1", max, len(kept), len(skips), MaxExternal)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		list string
		want bool
	}{
		{`{"nodes":[{"name":"a","addresses":["127.0.0.1","::1"]},{"name":"b","addresses":["127.0.0.2"]}]}`, true},
		{`{"nodes":[{"name":"a","addresses":["127.0.0.1"]},{"name":"b","addresses":["198.18.0.2"]}]}`, false},
		{`{"external_targets":[{"name":"x","host":"127.0.0.1"}]}`, false},
	} {
		l, _, err := Decode([]byte(tc.list))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.LoopbackOnly(); got != tc.want {
			t.Errorf("%s: LoopbackOnly %v, want %v", tc.list, got, tc.want)
		}
	}
}
