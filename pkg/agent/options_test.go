package agent

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
	"github.com/nodeping/nodeping/pkg/probe"
)

func parse(t *testing.T, env map[string]string, args ...string) (Options, error) {
	t.Helper()
	return Parse(args, func(k string) string { return env[k] })
}

// TestInvalidOptions is every refused configuration, each with its exact message (blackbox
// exporter's testdata/invalid-* idea, as a table).
func TestInvalidOptions(t *testing.T) {
	n := []string{"--node-name", "a"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no node name", nil, "--node-name (or $NODE_NAME, or $MY_NODE_NAME) is required: the agent must know which node is itself"},
		{"zero interval", append(n, "--interval", "0s"), "--interval 0s: must be positive"},
		{"negative grace", append(n, "--grace", "-1s"), "--grace -1s: must not be negative"},
		{"no external targets", append(n, "--max-external-targets", "0"), "--max-external-targets 0: must be at least 1 (a list without external targets probes none)"},
		{"bad engine", append(n, "--icmp-engine", "fast"), `--icmp-engine "fast": must be batch or pro-bing`},
		{"bad compat", append(n, "--compat", "kubenurse"), `--compat "kubenurse": must be empty or flant`},
		{"textfile name with a directory", append(n, "--textfile-name", "../x.prom"), `--textfile-name "../x.prom": want a file name ending in .prom, without a directory or a leading dot`},
		{"textfile name not .prom", append(n, "--textfile-name", "nodeping.txt"), `--textfile-name "nodeping.txt": want a file name ending in .prom, without a directory or a leading dot`},
		{"hidden textfile name", append(n, "--textfile-name", ".nodeping.prom"), `--textfile-name ".nodeping.prom": want a file name ending in .prom, without a directory or a leading dot`},
		{"bad mtu", append(n, "--mtu", "40"), "--mtu 40: must be 0 (off) or between 68 and 65000"},
		{"bad mtu count", append(n, "--mtu", "1500", "--mtu-count", "0"), "--mtu-count 0: must be at least 1"},
		{"bad mtu every", append(n, "--mtu-every", "0"), "--mtu-every 0: must be at least 1"},
		{"bad tcp port", append(n, "--tcp-port", "70000"), "--tcp-port 70000, --tcp-count 1: want a port 0..65535 (0 is off) and a count of at least 1"},
		{"bad tcp count", append(n, "--tcp-port", "9", "--tcp-count", "0"), "--tcp-port 9, --tcp-count 0: want a port 0..65535 (0 is off) and a count of at least 1"},
		{"bad tcp every", append(n, "--tcp-every", "0"), "--tcp-every 0: must be at least 1"},
		{"bad udp count", append(n, "--udp-port", "9", "--udp-count", "0"), "--udp-port 9, --udp-count 0, --udp-responder-rate 0: want a port 0..65535 (0 is off), a count of at least 1 and a rate of 0 (derived) or more"},
		{"bad udp rate", append(n, "--udp-port", "9", "--udp-responder-rate", "-1"), "--udp-port 9, --udp-count 5, --udp-responder-rate -1: want a port 0..65535 (0 is off), a count of at least 1 and a rate of 0 (derived) or more"},
		{"bad udp every", append(n, "--udp-every", "0"), "--udp-every 0: must be at least 1"},
		{"bad dns every", append(n, "--dns-every", "0"), "--dns-every 0: must be at least 1"},
		{"bad dns timeout", append(n, "--dns-names", "a.", "--dns-timeout", "0s"), "--dns-timeout 0s: must be positive"},
		{"bad subset peers", append(n, "--subset-peers", "1"), "--subset-peers 1: must be at least 2 (with one, a node and its only source look alike)"},
		{"negative full mesh max", append(n, "--full-mesh-max", "-1"), "--full-mesh-max -1: must not be negative"},
		{"bad icmp size", append(n, "--icmp-size", "70000"), "icmp payload size 70000: must be between 8 and 65000 bytes"},
		// The budget: the message names the probe that does not fit, and the numbers.
		{"icmp burst over the interval", append(n, "--interval", "1s", "--icmp-count", "10", "--icmp-interval", "200ms"),
			"icmp does not fit in --interval 1s: --icmp-count 10 x --icmp-interval 200ms + timeout 2s = 4s, and the probes before it take 0s of the 900ms the probes may use (nine tenths of the interval)"},
		{"udp after icmp", append(n, "--interval", "3s", "--icmp-count", "2", "--icmp-interval", "1s", "--icmp-timeout", "300ms", "--udp-port", "9"),
			"udp does not fit in --interval 3s: --udp-count 5 x 200ms + timeout 300ms = 1.3s, and the probes before it take 2.3s of the 2.7s the probes may use (nine tenths of the interval)"},
		{"dns timeout over the interval", append(n, "--interval", "2s", "--icmp-count", "1", "--icmp-interval", "100ms", "--dns-names", "a.", "--dns-timeout", "2s"),
			"dns does not fit in --interval 2s: --dns-timeout 2s = 2s, over the 1.8s the probes may use (nine tenths of the interval)"},
		{"tcp with a set timeout", append(n, "--interval", "2s", "--icmp-count", "1", "--icmp-interval", "500ms", "--icmp-timeout", "1s", "--tcp-port", "9"),
			"tcp does not fit in --interval 2s: --tcp-count 1 x 200ms + timeout 1s = 1.2s, and the probes before it take 1.5s of the 1.8s the probes may use (nine tenths of the interval)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, nil, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v\nwant %s", tc.args, err, tc.want)
			}
		})
	}
}

// TestDerivedOptions: each rule Derive applies, by a table.
func TestDerivedOptions(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o Derived)
	}{
		{"env sets flags, flags win, $NODE_NAME", []string{"--interval", "30s"}, map[string]string{"NODE_NAME": "from-node-name", "MY_NODE_NAME": "flant", "NODEPING_ICMP_COUNT": "3", "NODEPING_INTERVAL": "20s"},
			func(t *testing.T, o Derived) {
				if o.NodeName != "from-node-name" || o.ICMP.Count != 3 || o.Interval != 30*time.Second {
					t.Errorf("node %q count %d interval %s; want $NODE_NAME, env count 3, flag interval 30s", o.NodeName, o.ICMP.Count, o.Interval)
				}
			}},
		{"Flant's $MY_NODE_NAME", nil, map[string]string{"MY_NODE_NAME": "flant-node"},
			func(t *testing.T, o Derived) {
				if o.NodeName != "flant-node" {
					t.Errorf("node %q, want $MY_NODE_NAME's flant-node", o.NodeName)
				}
			}},
		{"default timeout is 2s when the cycle leaves room", []string{"--node-name", "a"}, nil,
			func(t *testing.T, o Derived) {
				if o.ICMP.Timeout != 2*time.Second {
					t.Errorf("timeout %s, want 2s", o.ICMP.Timeout)
				}
			}},
		{"shipped DaemonSet flags: the timeout shares what nine tenths of the interval leave", []string{"--node-name", "a", "--mtu", "1500", "--tcp-port", "9711", "--udp-port", "9711", "--dns-names", "kubernetes.default.svc.cluster.local."}, nil,
			func(t *testing.T, o Derived) {
				// 13.5s - (10s icmp + 0.2s mtu + 0.2s tcp + 1s udp) = 2.1s over 4 waits; DNS runs beside.
				if o.ICMP.Timeout != 525*time.Millisecond {
					t.Errorf("timeout %s, want 525ms", o.ICMP.Timeout)
				}
				var used time.Duration
				for _, s := range o.Budget.Shares {
					if !s.Beside {
						used += s.Need()
					}
				}
				if used > o.Budget.Available || o.Budget.Available != 13500*time.Millisecond {
					t.Errorf("the probes need %s of %s", used, o.Budget.Available)
				}
				if want := "13.5s of 15s: icmp 10.525s, mtu 725ms, tcp 725ms, udp 1.525s, dns 2s beside"; o.Budget.String() != want {
					t.Errorf("budget %q, want %q", o.Budget.String(), want)
				}
				if o.resolveTimeout() != 1500*time.Millisecond {
					t.Errorf("resolve timeout %s, want 1.5s (a tenth of the interval)", o.resolveTimeout())
				}
			}},
		{"a set timeout stays", []string{"--node-name", "a", "--icmp-timeout", "700ms"}, nil,
			func(t *testing.T, o Derived) {
				if o.ICMP.Timeout != 700*time.Millisecond {
					t.Errorf("timeout %s, want 700ms", o.ICMP.Timeout)
				}
			}},
		{"--once takes what it takes", []string{"--node-name", "a", "--once", "--interval", "1s"}, nil,
			func(t *testing.T, o Derived) {
				if o.ICMP.Timeout <= 0 {
					t.Errorf("timeout %s, want positive", o.ICMP.Timeout)
				}
			}},
		{"--mtu sets DF and room on the shared sockets", []string{"--node-name", "a", "--mtu", "1500"}, nil,
			func(t *testing.T, o Derived) {
				if !o.ICMP.DontFragment || o.ICMP.MTUSize != 1472 || o.MTU.Size != 1500 {
					t.Errorf("DF %v, MTU room %d, mtu %d; want DF, 1472, 1500", o.ICMP.DontFragment, o.ICMP.MTUSize, o.MTU.Size)
				}
			}},
		{"without --mtu, DF is as asked", []string{"--node-name", "a"}, nil,
			func(t *testing.T, o Derived) {
				if o.ICMP.DontFragment || o.ICMP.MTUSize != 0 {
					t.Errorf("DF %v, MTU room %d; want neither", o.ICMP.DontFragment, o.ICMP.MTUSize)
				}
			}},
		{"pro-bing turns --mtu off and says so", []string{"--node-name", "a", "--mtu", "1500", "--icmp-engine", "pro-bing"}, nil,
			func(t *testing.T, o Derived) {
				want := []string{"--mtu 1500 is off: the pro-bing engine has no MTU probe (use --icmp-engine=batch)"}
				if o.MTU.Size != 0 || o.ICMP.DontFragment || !slices.Equal(o.Notices, want) {
					t.Errorf("mtu %d, DF %v, notices %q; want 0, no DF, %q", o.MTU.Size, o.ICMP.DontFragment, o.Notices, want)
				}
			}},
		{"--icmp=false leaves icmp out of the budget", []string{"--node-name", "a", "--icmp=false", "--interval", "2s", "--udp-port", "9"}, nil,
			func(t *testing.T, o Derived) {
				if len(o.Budget.Shares) != 1 || o.Budget.Shares[0].Protocol != "udp" {
					t.Errorf("shares %+v, want udp only", o.Budget.Shares)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o.Derive())
		})
	}
}

// TestValidateOnlyChecks: Parse leaves the options as the flags set them, Validate and Derive
// leave them as they were; what is derived comes back from Derive alone.
func TestValidateOnlyChecks(t *testing.T) {
	cases := []struct {
		name string
		args []string
		// want is what Derive gives: timeout, DF, MTU room, MTU size, notices.
		want string
	}{
		{"automatic timeout", []string{"--node-name", "a"}, "2s false 0 0 []"},
		{"shipped flags", []string{"--node-name", "a", "--mtu", "1500", "--tcp-port", "9711", "--udp-port", "9711"}, "525ms true 1472 1500 []"},
		{"pro-bing turns --mtu off", []string{"--node-name", "a", "--mtu", "1500", "--icmp-engine", "pro-bing"},
			"2s false 0 0 [--mtu 1500 is off: the pro-bing engine has no MTU probe (use --icmp-engine=batch)]"},
		{"a set timeout", []string{"--node-name", "a", "--icmp-timeout", "700ms", "--icmp-dont-fragment"}, "700ms true 0 0 []"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, nil, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			var flags Options
			fs := flags.FlagSet()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o, flags) {
				t.Errorf("after Parse the options are\n%+v\nwant what the flags set:\n%+v", o, flags)
			}
			before := o // Options holds values only (TestOptionsHoldValuesOnly): this copy is deep
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			d := o.Derive()
			if o != before {
				t.Errorf("Validate and Derive changed the options to\n%+v\nfrom\n%+v", o, before)
			}
			got := fmt.Sprintf("%s %v %d %d %v", d.ICMP.Timeout, d.ICMP.DontFragment, d.ICMP.MTUSize, d.MTU.Size, d.Notices)
			if got != tc.want {
				t.Errorf("Derive: %s, want %s", got, tc.want)
			}
		})
	}
}

// TestOptionsHoldValuesOnly: no field of Options, however deep, is a pointer, map, slice,
// channel, function or interface, so that a copy of Options is a deep copy and == compares all
// of it (TestValidateOnlyChecks relies on it).
func TestOptionsHoldValuesOnly(t *testing.T) {
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(path+"."+f.Name, f.Type)
			}
		case reflect.Array:
			walk(path+"[]", typ.Elem())
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
			t.Errorf("%s is a %s: a copy of Options would share it", path, typ.Kind())
		}
	}
	walk("Options", reflect.TypeFor[Options]())
}

func TestTCPFits(t *testing.T) {
	fits := tcpFits(probe.TCPConfig{Count: 1, Interval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond}, 725*time.Millisecond)
	for _, tc := range []struct {
		targets int
		want    string
	}{
		{1, ""},
		{64, ""},
		{65, "65 handshakes, each up to 500ms: 1.003s when none is answered, over the TCP probe's 725ms"},
		{1000, "1000 handshakes, each up to 500ms: 8.008s when none is answered, over the TCP probe's 725ms"},
	} {
		err := fits(tc.targets)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%d targets: %q, want %q", tc.targets, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%d targets fit, want %q", tc.targets, tc.want)
		}
	}
}

// TestAllowList: the UDP responder answers every address of every listed node.
func TestAllowList(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		want       string
	}{
		{"flant", `[{"name":"a","ipAddress":"198.18.0.1"},{"name":"b","ipAddress":"198.18.0.2"}]`, "198.18.0.1 198.18.0.2"},
		{"dual stack and external", `{"nodes":[{"name":"a","addresses":["198.18.0.1","fd00::1"]}],"external_targets":[{"name":"gw","host":"198.18.9.9"}]}`, "198.18.0.1 fd00::1"},
		{"a node without address", `{"nodes":[{"name":"a"},{"name":"b","addresses":["198.18.0.2"]}]}`, "198.18.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _, err := nodelist.Decode([]byte(tc.list))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range allowList(l) {
				got = append(got, a.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("allow list %q, want %q", got, tc.want)
			}
		})
	}
	_ = netip.Addr{}
}
