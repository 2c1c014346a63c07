package probe

import (
	"encoding/binary"
	"testing"
	"time"
)

// cmsg builds one control message in layout l.
func (l cmsgLayout) cmsg(level, typ int32, data []byte) []byte {
	n := l.hdrLen + len(data)
	b := make([]byte, l.alignUp(n))
	ne := binary.NativeEndian
	if l.hdrLen == 16 {
		ne.PutUint64(b, uint64(n))
	} else {
		ne.PutUint32(b, uint32(n))
	}
	ne.PutUint32(b[l.hdrLen-8:], uint32(level))
	ne.PutUint32(b[l.hdrLen-4:], uint32(typ))
	copy(b[l.hdrLen:], data)
	return b
}

func timespec64(sec, nsec int64) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint64(b, uint64(sec))
	binary.NativeEndian.PutUint64(b[8:], uint64(nsec))
	return b
}

func timespec32(sec, nsec int32) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b, uint32(sec))
	binary.NativeEndian.PutUint32(b[4:], uint32(nsec))
	return b
}

func TestParseTimestamp(t *testing.T) {
	const sec, nsec = 1_764_000_000, 123_456_789
	want := int64(sec)*1e9 + nsec
	l64, l32 := cmsgLayout64, cmsgLayout32
	other64 := l64.cmsg(0, 8, []byte{1, 2, 3, 4}) // IP_TTL-like, 4 bytes of data, padded
	for _, tc := range []struct {
		name string
		l    cmsgLayout
		oob  []byte
		want int64
	}{
		{"64-bit SO_TIMESTAMPNS", l64, l64.cmsg(1, 35, timespec64(sec, nsec)), want},
		{"64-bit SO_TIMESTAMPNS_NEW", l64, l64.cmsg(1, 64, timespec64(sec, nsec)), want},
		{"64-bit after another message", l64, append(other64, l64.cmsg(1, 35, timespec64(sec, nsec))...), want},
		{"32-bit SO_TIMESTAMPNS (32-bit timespec)", l32, l32.cmsg(1, 35, timespec32(sec, nsec)), want},
		{"32-bit SO_TIMESTAMPNS_NEW (64-bit timespec)", l32, l32.cmsg(1, 64, timespec64(sec, nsec)), want},
		{"32-bit after another message", l32, append(l32.cmsg(0, 8, []byte{1, 2, 3}), l32.cmsg(1, 35, timespec32(sec, nsec))...), want},
		{"other level", l64, l64.cmsg(0, 35, timespec64(sec, nsec)), 0},
		{"other type", l64, l64.cmsg(1, 36, timespec64(sec, nsec)), 0},
		{"short data", l64, l64.cmsg(1, 35, []byte{1, 2, 3, 4}), 0},
		{"length past the buffer", l64, l64.cmsg(1, 35, timespec64(sec, nsec))[:20], 0},
		{"nanoseconds out of range", l64, l64.cmsg(1, 35, timespec64(sec, 1e9)), 0},
		{"negative seconds", l64, l64.cmsg(1, 35, timespec64(-1, 0)), 0},
		{"empty", l64, nil, 0},
	} {
		if got := tc.l.parseTimestamp(tc.oob); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// FuzzParseTimestamp feeds any bytes to both layouts' parsers: they must never panic, and what
// they return is 0 or a plausible time that the bytes really hold. The seed corpus is in
// testdata/fuzz/FuzzParseTimestamp (real messages of both layouts, and broken ones).
func FuzzParseTimestamp(f *testing.F) {
	f.Add(cmsgLayout64.cmsg(1, 35, timespec64(1_764_000_000, 5)))
	f.Add(cmsgLayout32.cmsg(1, 35, timespec32(1_764_000_000, 5)))
	f.Fuzz(func(t *testing.T, oob []byte) {
		// The two layouts Linux has; timestamp_linux_test.go checks that the native one is the
		// kernel's (nativeCmsg is Linux-only, and this file builds everywhere).
		for _, l := range []cmsgLayout{cmsgLayout64, cmsgLayout32} {
			ts := l.parseTimestamp(oob)
			if ts == 0 {
				continue
			}
			if ts < 1e9 || ts >= (1<<33+1)*1e9 {
				t.Fatalf("layout %+v: implausible %d from %x", l, ts, oob)
			}
			// Re-encoding what was found must parse to the same value.
			again := l.parseTimestamp(l.cmsg(l.level, l.types[0], timespec64(ts/1e9, ts%1e9)))
			if again != ts {
				t.Fatalf("layout %+v: %d does not round-trip (%d)", l, ts, again)
			}
		}
	})
}

// TestReplyRTT: the kernel's receive time when it is consistent, the read time otherwise, and
// never below zero.
func TestReplyRTT(t *testing.T) {
	const wall = int64(1_700_000_000_000_000_000) // the send's wall clock, Unix nanoseconds
	cases := []struct {
		name                         string
		sentMono, readMono, kernelTS int64
		want                         time.Duration
	}{
		{"read time, no kernel timestamp", 1000, 5000, 0, 4000},
		{"kernel timestamp before the read", 1000, 5000, wall + 3000, 3000},
		{"kernel timestamp after the read (clock stepped forward)", 1000, 5000, wall + 9000, 4000},
		{"kernel timestamp before the send (clock stepped back)", 1000, 5000, wall - 10, 4000},
		{"read at the send", 1000, 1000, 0, 0},
		{"read time before the send: clamped", 5000, 1000, 0, 0},
		{"read time before the send, kernel timestamp after it: clamped", 5000, 1000, wall + 3000, 0},
		{"read time before the send, kernel timestamp at it", 5000, 1000, wall, 0},
	}
	for _, tc := range cases {
		if got := replyRTT(tc.sentMono, tc.readMono, wall, tc.kernelTS); got != tc.want {
			t.Errorf("%s: replyRTT = %s, want %s", tc.name, got, tc.want)
		}
	}
}
