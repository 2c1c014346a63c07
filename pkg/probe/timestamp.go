package probe

import (
	"encoding/binary"
	"time"
)

// cmsgLayout describes a platform's control messages: the header's size (a length word of the
// C long's size, then level and type as 32-bit ints), the alignment of headers and data (the C
// long's size), and the level and types that carry a receive timestamp as a timespec.
type cmsgLayout struct {
	hdrLen, align int
	level         int32
	types         [2]int32 // SO_TIMESTAMPNS (old), SO_TIMESTAMPNS_NEW
}

// Linux's layouts on 64-bit and 32-bit platforms with SOL_SOCKET = 1 and SO_TIMESTAMPNS = 35,
// SO_TIMESTAMPNS_NEW = 64 (all but mips, parisc and sparc, where icmp_socket_linux.go's native
// layout takes the values from golang.org/x/sys/unix).
var (
	cmsgLayout64 = cmsgLayout{hdrLen: 16, align: 8, level: 1, types: [2]int32{35, 64}}
	cmsgLayout32 = cmsgLayout{hdrLen: 12, align: 4, level: 1, types: [2]int32{35, 64}}
)

func (l cmsgLayout) alignUp(n int) int { return (n + l.align - 1) &^ (l.align - 1) }

// parseTimestamp finds a kernel receive timestamp in a received message's control data and
// returns it in Unix nanoseconds; 0 when there is none or the data is malformed. The timespec is
// read by its length, so both forms are understood: 16 bytes (64-bit seconds and nanoseconds:
// 64-bit platforms, and SO_TIMESTAMPNS_NEW everywhere) and 8 bytes (32-bit fields: the old
// SO_TIMESTAMPNS on 32-bit platforms). It never panics, whatever oob holds.
func (l cmsgLayout) parseTimestamp(oob []byte) int64 {
	ne := binary.NativeEndian
	for len(oob) >= l.hdrLen {
		var n int
		if l.hdrLen == 16 {
			v := ne.Uint64(oob[0:8])
			if v > uint64(len(oob)) {
				return 0
			}
			n = int(v)
		} else {
			n = int(ne.Uint32(oob[0:4]))
		}
		off := l.hdrLen - 8
		level, typ := int32(ne.Uint32(oob[off:])), int32(ne.Uint32(oob[off+4:]))
		if n < l.hdrLen || n > len(oob) {
			return 0
		}
		data := oob[l.alignUp(l.hdrLen):n]
		if level == l.level && (typ == l.types[0] || typ == l.types[1]) {
			var sec, nsec int64
			switch {
			case len(data) >= 16:
				sec, nsec = int64(ne.Uint64(data[0:8])), int64(ne.Uint64(data[8:16]))
			case len(data) >= 8:
				sec, nsec = int64(int32(ne.Uint32(data[0:4]))), int64(int32(ne.Uint32(data[4:8])))
			default:
				return 0
			}
			if sec <= 0 || sec > 1<<33 || nsec < 0 || nsec >= 1e9 {
				return 0 // not a plausible receive time (and sec*1e9 must not overflow)
			}
			return sec*1e9 + nsec
		}
		next := l.alignUp(n)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// replyRTT is a reply's round-trip time: from the probe's send to the reply's read, both
// engine-monotonic (sentMono, readMono), or to the kernel's receive timestamp (kernelTS, Unix
// nanoseconds; 0 when unknown) when that is consistent with them: not before the send by the wall
// clock (sentWall; a clock step can put it there) and not after the read. It is never below zero:
// a read time taken before the send was recorded is clamped to 0 rather than the reply discarded,
// since the reply matched its probe (cookie, serial and source) and was received, not lost.
func replyRTT(sentMono, readMono, sentWall, kernelTS int64) time.Duration {
	rtt := max(time.Duration(readMono-sentMono), 0)
	if kernelTS != 0 {
		if k := time.Duration(kernelTS - sentWall); k >= 0 && k <= rtt {
			return k // the kernel's receive time, unaffected by how late the reader ran
		}
	}
	return rtt
}
