package nodelist

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLoad: every way a nodes file is refused, each with its one error text, and what a good
// one gives.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name      string
		path      string
		wantNodes int
		wantSkips int
		wantErr   string
		wantIs    error
	}{
		{"flant", write("flant.json", []byte(`[{"name":"a","ipAddress":"198.18.0.1"},{"name":"b","ipAddress":"198.18.0.2"},{"name":"","ipAddress":"198.18.0.3"}]`)), 2, 1, "", nil},
		{"ours", write("ours.json", bigList(3)), 3, 0, "", nil},
		{"missing", filepath.Join(dir, "missing.json"), 0, 0, "read nodes file: open " + filepath.Join(dir, "missing.json") + ": no such file or directory", os.ErrNotExist},
		{"empty", write("empty.json", []byte("\n \n")), 0, 0, "nodes file " + filepath.Join(dir, "empty.json") + ": nodes list is empty", ErrEmpty},
		{"malformed", write("bad.json", []byte(`[{"name": "x", "ipAddress": `)), 0, 0, "nodes file " + filepath.Join(dir, "bad.json") + ": malformed: decode flant nodes list: line 1, column 27: unexpected end of JSON input", nil},
		{"too many bytes", write("big.json", bytes.Repeat([]byte(" "), MaxBytes+1)), 0, 0, "read nodes file: nodes list too large: " + filepath.Join(dir, "big.json") + " is larger than 4194304 bytes", ErrTooLarge},
		{"too many nodes", write("many.json", bigList(MaxNodes+1)), 0, 0, "nodes file " + filepath.Join(dir, "many.json") + ": nodes list too large: 10001 nodes, at most 10000 are accepted", ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, skips, err := Load(tc.path)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Load: %v\nwant %s", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("Load: %v does not wrap %v", err, tc.wantIs)
				}
				return
			}
			if err != nil || len(l.Nodes) != tc.wantNodes || len(skips) != tc.wantSkips {
				t.Errorf("Load: %d nodes, %d skipped, %v; want %d and %d", len(l.Nodes), len(skips), err, tc.wantNodes, tc.wantSkips)
			}
		})
	}
}

// TestLoadChanged: an unchanged file is not decoded again, a changed one is, and an error
// carries the sum of what was read.
func TestLoadChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.json")
	good := []byte(`[{"name":"a","ipAddress":"198.18.0.1"}]`)
	bad := []byte(`[{"name":`)
	cases := []struct {
		name    string
		content []byte
		last    Sum
		wantErr error // nil: decoded
		bad     bool  // another error
	}{
		{"first read", good, Sum{}, nil, false},
		{"unchanged", good, sha256.Sum256(good), ErrUnchanged, false},
		{"changed", good, sha256.Sum256(bad), nil, false},
		{"bad content, sum returned", bad, Sum{}, nil, true},
		{"bad content unchanged", bad, sha256.Sum256(bad), ErrUnchanged, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			l, _, sum, err := LoadChanged(path, tc.last)
			if sum != sha256.Sum256(tc.content) {
				t.Errorf("sum %x, want the content's", sum)
			}
			switch {
			case tc.bad:
				if err == nil || errors.Is(err, ErrUnchanged) {
					t.Errorf("LoadChanged: %v, want a decode error", err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || len(l.Nodes) != 0 {
					t.Errorf("LoadChanged: %d nodes, %v; want none and %v", len(l.Nodes), err, tc.wantErr)
				}
			case err != nil || len(l.Nodes) != 1:
				t.Errorf("LoadChanged: %d nodes, %v; want 1", len(l.Nodes), err)
			}
		})
	}
	if _, _, sum, err := LoadChanged(filepath.Join(dir, "missing"), Sum{}); err == nil || sum != sha256.Sum256(nil) {
		t.Errorf("missing file: sum %x, %v; want the sum of nothing and an error", sum, err)
	}
}
