package textfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// body renders a file whose every line says which version it belongs to, and whose last line
// marks the end, so that a reader can tell a whole file from a part or a mix.
func body(version, lines int) func(io.Writer) error {
	return func(w io.Writer) error {
		var b bytes.Buffer
		for i := 0; i < lines; i++ {
			fmt.Fprintf(&b, "metric_%d{v=\"%d\"} %d\n", i, version, i)
		}
		fmt.Fprintf(&b, "end %d\n", version)
		_, err := w.Write(b.Bytes())
		return err
	}
}

func whole(data []byte) error {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "end ") {
		return fmt.Errorf("no end line: file cut short (%d bytes)", len(data))
	}
	v := strings.TrimPrefix(last, "end ")
	for _, l := range lines[:len(lines)-1] {
		if !strings.Contains(l, `{v="`+v+`"}`) {
			return fmt.Errorf("line %q is not of version %s", l, v)
		}
	}
	return nil
}

// TestWriteAtomicUnderConcurrentReader rewrites a file many times while a reader reads it in a
// loop: the reader must only ever see whole files, and no temporary file may be left behind.
func TestWriteAtomicUnderConcurrentReader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodeping.prom")
	if err := Write(path, body(0, 2000)); err != nil {
		t.Fatal(err)
	}
	var (
		stop  atomic.Bool
		reads atomic.Int64
		bad   atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			data, err := os.ReadFile(path)
			if err == nil {
				err = whole(data)
			}
			if err != nil {
				bad.Store(&err)
				return
			}
			reads.Add(1)
		}
	}()
	const writes = 300
	for v := 1; v <= writes && bad.Load() == nil; v++ {
		if err := Write(path, body(v, 1000+v%7*500)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := bad.Load(); err != nil {
		t.Fatalf("reader saw a broken file: %v", *err)
	}
	if reads.Load() == 0 {
		t.Fatal("reader never read the file")
	}
	t.Logf("%d writes, %d whole reads", writes, reads.Load())
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only nodeping.prom", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v (%v), want 0644 so that node-exporter can read it", st.Mode(), err)
	}
}

func TestWriteFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodeping.prom")
	if err := Write(path, body(1, 10)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write error = %v, want boom", err)
	}
	data, _ := os.ReadFile(path)
	if err := whole(data); err != nil || !strings.Contains(string(data), "end 1") {
		t.Errorf("old file damaged: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary file left behind: %v", entries)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	cases := []struct {
		dir, want string
	}{
		{dir, ""},
		{filepath.Join(dir, "missing"), "textfile directory: stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{file, "textfile directory " + file + ": not a directory"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct{ dir, want string }{ro, "textfile directory " + ro + " is not writable"})
	}
	for _, tc := range cases {
		err := CheckDir(tc.dir)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("CheckDir(%s) = %v, want %q", tc.dir, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("CheckDir left files behind: %v", entries)
	}
}

func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "nodeping.prom")
	if err := Write(path, body(1, 1)); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Write into a missing directory = %v, want a no-such-directory error", err)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodeping.prom")
	if err := Write(path, body(1, 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second time the file is already gone: not an error
		if err := Remove(path); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
}
