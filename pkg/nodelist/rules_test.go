package nodelist

import "testing"

// TestUsableAddr is the one address rule of the controller and the agents, by a table.
func TestUsableAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" when refused
	}{
		{"198.18.0.1", "198.18.0.1"},
		{" 198.18.0.1 ", "198.18.0.1"},
		{"fd00::1", "fd00::1"},
		{"::ffff:198.18.0.1", "198.18.0.1"},
		{"0.0.0.0", ""},
		{"::", ""},
		{"fe80::1%eth0", ""},
		{"198.18.0.1/24", ""},
		{"node-a", ""},
		{"", ""},
	} {
		got, ok := UsableAddr(tc.in)
		if tc.want == "" {
			if ok {
				t.Errorf("UsableAddr(%q) = %s, want it refused", tc.in, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("UsableAddr(%q) = %s, %v; want %s", tc.in, got, ok, tc.want)
		}
	}
}

// TestState is the one node-state rule of the controller and the agents, by a table.
func TestState(t *testing.T) {
	for _, tc := range []struct {
		ready, schedulable bool
		want               string
	}{
		{true, true, StateReady},
		{true, false, StateCordoned},
		{false, true, StateNotReady},
		{false, false, StateNotReady},
	} {
		if got := (Node{Ready: tc.ready, Schedulable: tc.schedulable}).State(); got != tc.want {
			t.Errorf("ready %v schedulable %v: %s, want %s", tc.ready, tc.schedulable, got, tc.want)
		}
	}
}
