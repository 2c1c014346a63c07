package udpecho

import "testing"

func TestProbeAndEcho(t *testing.T) {
	cookie := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	probe := make([]byte, Len)
	PutProbe(probe, cookie, 0xdeadbeef)
	echo := append([]byte(nil), probe...)
	MakeEcho(echo)
	other := cookie
	other[7] = 9
	cases := []struct {
		name       string
		b          []byte
		cookie     [8]byte
		isProbe    bool
		echoSerial uint32
		isEcho     bool
	}{
		{"probe", probe, cookie, true, 0, false},
		{"echo", echo, cookie, false, 0xdeadbeef, true},
		{"echo of another prober's probe", echo, other, false, 0, false},
		{"short", probe[:Len-1], cookie, false, 0, false},
		{"long", append(append([]byte(nil), probe...), 0), cookie, false, 0, false},
		{"no marker", append([]byte("XPG"), probe[3:]...), cookie, false, 0, false},
		{"unknown kind", append([]byte("NPGx"), probe[4:]...), cookie, false, 0, false},
		{"zeros", make([]byte, Len), cookie, false, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsProbe(tc.b); got != tc.isProbe {
				t.Errorf("IsProbe = %v, want %v", got, tc.isProbe)
			}
			serial, ok := ParseEcho(tc.b, tc.cookie)
			if ok != tc.isEcho || serial != tc.echoSerial {
				t.Errorf("ParseEcho = %#x, %v; want %#x, %v", serial, ok, tc.echoSerial, tc.isEcho)
			}
		})
	}
}

func FuzzParseEcho(f *testing.F) {
	var cookie [8]byte
	copy(cookie[:], "nodeping")
	f.Add([]byte("NPGenodeping\x00\x00\x00\x07"))
	f.Add([]byte("NPGpnodeping\x00\x00\x00\x07"))
	f.Add([]byte("short"))
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, ok := ParseEcho(b, cookie)
		if ok && (len(b) != Len || string(b[:4]) != "NPGe" || string(b[4:12]) != "nodeping") {
			t.Fatalf("accepted %q as seq %d", b, seq)
		}
	})
}
