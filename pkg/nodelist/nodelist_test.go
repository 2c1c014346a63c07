package nodelist

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nodeping/nodeping/internal/testutil/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

// render prints a decoded list and its skips in a stable, readable form for golden files.
func render(l List, skips []Skip) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format: %s\n", l.Format)
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "node %s zone=%q ipv4=%v ipv6=%v ready=%v schedulable=%v\n", n.Name, n.Zone, n.IPv4, n.IPv6, n.Ready, n.Schedulable)
	}
	for _, e := range l.External {
		fmt.Fprintf(&b, "external %s host=%s\n", e.Name, e.Host)
	}
	for _, s := range skips {
		fmt.Fprintf(&b, "skip %s\n", s)
	}
	return b.String()
}

// testdata reads testdata/name.json.
func testdata(t *testing.T, name string) []byte {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestDecodeGolden(t *testing.T) {
	for _, name := range []string{"flant", "deckhouse", "nodeping", "skips", "extra-address", "empty-array", "loopback-only"} {
		t.Run(name, func(t *testing.T) {
			in := testdata(t, name)
			l, skips, err := Decode(in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			golden.Check(t, filepath.Join("testdata", name+".golden"), render(l, skips), *update)
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	cases := map[string]string{
		"invalid-empty":     "nodes list is empty",
		"invalid-truncated": "decode flant nodes list: line 1, column 27: unexpected end of JSON input",
		"invalid-no-nodes":  `decode nodes list: object has neither "nodes" nor "cluster_targets"`,
		"invalid-string":    `decode nodes list: invalid JSON: starts with '"', want '[' or '{'`,
		"invalid-type":      "decode flant nodes list: line 1, column 11: field \"name\": a JSON number where a string belongs",
		"invalid-trailing":  "decode flant nodes list: line 1, column 39: invalid character 't' after top-level value",
		"invalid-line":      "decode nodes list object: line 4, column 43: invalid character '}' looking for beginning of object key string",
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			in := testdata(t, name)
			_, _, err := Decode(in)
			if err == nil || err.Error() != want {
				t.Errorf("Decode error = %v, want %q", err, want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, name := range []string{"flant", "deckhouse", "nodeping"} {
		t.Run(name, func(t *testing.T) {
			in := testdata(t, name)
			l, _, err := Decode(in)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := Encode(l)
			if err != nil {
				t.Fatal(err)
			}
			back, skips, err := Decode(enc)
			if err != nil || len(skips) != 0 {
				t.Fatalf("decode of encoded list: %v, skips %v\n%s", err, skips, enc)
			}
			if back.Format != FormatNodeping {
				t.Errorf("format = %s, want %s", back.Format, FormatNodeping)
			}
			back.Format = l.Format
			sort.Slice(l.Nodes, func(i, j int) bool { return l.Nodes[i].Name < l.Nodes[j].Name })
			sort.Slice(l.External, func(i, j int) bool { return l.External[i].Name < l.External[j].Name })
			if !reflect.DeepEqual(back, l) {
				t.Errorf("round trip changed the list:\n%+v\nwant\n%+v", back, l)
			}
			again, _ := Encode(back)
			if string(again) != string(enc) {
				t.Errorf("encoding is not deterministic:\n%s\nvs\n%s", again, enc)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _, err := Decode(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, n := range l.Nodes {
			if n.Name == "" || len(n.Addrs()) == 0 {
				t.Fatalf("decoded an unprobeable node %+v", n)
			}
			if seen[n.Name] {
				t.Fatalf("duplicate node %q survived decoding", n.Name)
			}
			seen[n.Name] = true
			if n.IPv4.IsValid() && !n.IPv4.Is4() || n.IPv6.IsValid() && !n.IPv6.Is6() {
				t.Fatalf("address in the wrong family: %+v", n)
			}
		}
		enc, err := Encode(l)
		if err != nil {
			t.Fatalf("Encode of a decoded list: %v", err)
		}
		back, _, err := Decode(enc)
		if err != nil || len(back.Nodes) != len(l.Nodes) || len(back.External) != len(l.External) {
			t.Fatalf("re-decode: %v, %d/%d nodes", err, len(back.Nodes), len(l.Nodes))
		}
	})
}
