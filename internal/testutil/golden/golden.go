// Package golden compares test output with golden files in testdata/, and rewrites them when the
// test binary runs with -update.
package golden

import (
	"os"
	"testing"
)

// Check compares got with the golden file at path; with update it writes got there first.
func Check(t testing.TB, path, got string, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
