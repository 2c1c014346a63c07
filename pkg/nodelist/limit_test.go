package nodelist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigList renders n dual-stack nodes in nodeping's format, with names and zones as long as a
// cloud provider's.
func bigList(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"nodes": [`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n  {\"name\":\"ip-10-%d-%d-%d.eu-west-1.compute.internal\",\"zone\":\"eu-west-1%c\",\"addresses\":[\"10.%d.%d.%d\",\"2a05:d018:%x:%x::1\"]}",
			i>>16, (i>>8)&255, i&255, 'a'+i%3, i>>16, (i>>8)&255, i&255, i>>8, i&255)
	}
	b.WriteString("\n]}\n")
	return []byte(b.String())
}

func TestCheckSize(t *testing.T) {
	l, _, err := Decode(bigList(12))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSize(l, 12); err != nil {
		t.Errorf("12 nodes, at most 12: %v", err)
	}
	err = CheckSize(l, 11)
	if !errors.Is(err, ErrTooLarge) || err.Error() != "nodes list too large: 12 nodes, at most 11 are accepted" {
		t.Errorf("12 nodes, at most 11: %v", err)
	}
	if err := CheckSize(l, 0); err != nil {
		t.Errorf("12 nodes, default maximum: %v", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.json")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(path, 10); err != nil || string(data) != "0123456789" {
		t.Errorf("10 bytes, at most 10: %q, %v", data, err)
	}
	_, err := ReadFile(path, 9)
	if !errors.Is(err, ErrTooLarge) || err.Error() != "nodes list too large: "+path+" is larger than 9 bytes" {
		t.Errorf("10 bytes, at most 9: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestLimitsFitTogether: a list of MaxNodes dual-stack nodes fits in MaxBytes, and a ConfigMap's
// 1 MiB holds fewer than MaxNodes.
func TestLimitsFitTogether(t *testing.T) {
	data := bigList(MaxNodes)
	if len(data) > MaxBytes {
		t.Errorf("%d nodes take %d bytes, more than MaxBytes %d", MaxNodes, len(data), MaxBytes)
	}
	perNode := float64(len(data)) / MaxNodes
	t.Logf("%d dual-stack nodes: %d bytes (%.0f per node); 1 MiB holds %.0f", MaxNodes, len(data), perNode, (1<<20)/perNode)
}

// BenchmarkDecode measures decoding a list of 8,700 (what a ConfigMap holds), MaxNodes and 50,000
// dual-stack nodes. The agent never decodes the last: at 6 MB it is above MaxBytes.
func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{8700, MaxNodes, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			data := bigList(n)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ReportMetric(float64(len(data))/(1<<20), "file-MiB")
			for b.Loop() {
				if l, _, err := Decode(data); err != nil || len(l.Nodes) != n {
					b.Fatal(len(l.Nodes), err)
				}
			}
		})
	}
}
