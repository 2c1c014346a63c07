package probe

import (
	"encoding/binary"
	"testing"
)

func ipv4Header(total int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:4], uint16(total))
	h[9] = 1
	return h
}

func TestParseEchoReply(t *testing.T) {
	var cookie [cookieLen]byte
	copy(cookie[:], "nodeping")
	reply4 := echoTemplate(false, 16, cookie)
	reply4[0] = icmpv4EchoReply
	putEcho(reply4, 0x1234, 7, true)
	reply6 := echoTemplate(true, 16, cookie)
	reply6[0] = icmpv6EchoReply
	putEcho(reply6, 0x1234, 8, false)
	withIP := append(ipv4Header(20+len(reply4)), reply4...)
	request := append(ipv4Header(20+len(reply4)), echoTemplate(false, 16, cookie)...)
	fragment := append(ipv4Header(20+len(reply4)), reply4...)
	fragment[6] = 0x20 // more fragments
	padded := append(append([]byte(nil), withIP...), 0, 0, 0, 0)
	cases := []struct {
		name     string
		b        []byte
		v6, ipHd bool
		seq      uint16
		err      error
	}{
		{"v4 raw", withIP, false, true, 7, nil},
		{"v4 raw with link padding", padded, false, true, 7, nil},
		{"v4 ping socket", reply4, false, false, 7, nil},
		{"v6", reply6, true, false, 8, nil},
		{"v4 request is not a reply", request, false, true, 0, errNotReply},
		{"v6 parsed as v4", reply6, false, false, 0, errNotReply},
		{"fragment", fragment, false, true, 0, errFragmented},
		{"short", withIP[:25], false, true, 0, errTruncated},
		{"short icmp", reply6[:4], true, false, 0, errShort},
		{"not ipv4", reply6, false, true, 0, errNotIPv4},
		{"empty", nil, false, true, 0, errShort},
	}
	for _, tc := range cases {
		r, err := parseEchoReply(tc.b, tc.v6, tc.ipHd)
		if err != tc.err {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && (r.ID != 0x1234 || r.Seq != tc.seq || string(r.Data[:cookieLen]) != "nodeping" || len(r.Data) != 16) {
			t.Errorf("%s: got %+v", tc.name, r)
		}
	}
}

func TestChecksum(t *testing.T) {
	var cookie [cookieLen]byte
	b := echoTemplate(false, 31, cookie) // odd length
	putEcho(b, 1, 2, true)
	if checksum(b) != 0 {
		t.Errorf("checksum over a packet with its checksum = %#x, want 0", checksum(b))
	}
}

func FuzzParseEchoReply(f *testing.F) {
	var cookie [cookieLen]byte
	r := echoTemplate(false, 56, cookie)
	r[0] = icmpv4EchoReply
	f.Add(append(ipv4Header(20+len(r)), r...), false, true)
	f.Add(r, false, false)
	r6 := echoTemplate(true, 8, cookie)
	r6[0] = icmpv6EchoReply
	f.Add(r6, true, false)
	f.Add([]byte{0x4f, 0, 0, 0}, false, true)
	f.Fuzz(func(t *testing.T, b []byte, v6, ipHd bool) {
		r, err := parseEchoReply(b, v6, ipHd)
		if err != nil {
			return
		}
		if len(r.Data) > len(b) {
			t.Fatalf("data longer than the packet")
		}
	})
}
