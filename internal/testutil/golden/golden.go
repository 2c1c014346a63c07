// Package golden compares test output with golden files in testdata/ (and with the generated
// parts of documents), and rewrites them when the test binary runs with -update.
package golden

import (
	"os"
	"strings"
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

// Section compares got with the text of the file at path between the line begin and the next
// line end (the generated part of a hand-written document); with update it writes got there
// first. The markers stay in place.
func Section(t testing.TB, path, begin, end, got string, update bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i := strings.Index(doc, begin+"\n")
	j := -1
	if i >= 0 {
		i += len(begin) + 1
		if k := strings.Index(doc[i:], end); k >= 0 {
			j = i + k
		}
	}
	if i < 0 || j < 0 {
		t.Fatalf("%s lacks the %q ... %q markers", path, begin, end)
	}
	if update {
		if err := os.WriteFile(path, []byte(doc[:i]+got+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc[i:j] != got {
		t.Errorf("the generated part of %s between %q and %q is out of date (run go test -update-docs to rewrite it):\nwant:\n%s", path, begin, end, got)
	}
}
