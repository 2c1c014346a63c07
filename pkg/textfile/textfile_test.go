package textfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// TestRemoveLeftovers: our temporary files go, everything else in the directory stays.
func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	ours := []string{".nodeping.tmp-123", ".nodeping.tmp-", ".nodeping-check-9"}
	theirs := []string{"nodeping.prom", "other.prom", ".other.tmp-1", "nodeping.tmp-1", ".nodeping.lock", "x.nodeping.tmp-1", ".nodeping-checkX"}
	for _, n := range append(append([]string{}, ours...), theirs...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with our pattern is not ours to remove.
	os.Mkdir(filepath.Join(dir, ".nodeping.tmp-dir"), 0o755)
	removed, err := RemoveLeftovers(filepath.Join(dir, "nodeping.prom"))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(ours) {
		t.Errorf("removed %q, want %q", removed, ours)
	}
	for _, n := range ours {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", n, err)
		}
	}
	for _, n := range append(theirs, ".nodeping.tmp-dir") {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
}

// TestLock: a second holder is refused with an error naming the first; after Release (or the
// holder's death) the lock is free again.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	l1, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(dir)
	want := fmt.Sprintf("textfile directory is in use by another nodeping agent: pid %d on host ", os.Getpid())
	if !errors.Is(err, ErrLocked) || !strings.HasPrefix(fmt.Sprint(err), want) || !strings.HasSuffix(fmt.Sprint(err), " holds "+filepath.Join(dir, LockName)) {
		t.Fatalf("second lock: %v\nwant %q...", err, want)
	}
	if err := l1.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

// TestLockAcrossProcesses: a real second process (flock(1) from util-linux) holds the lock;
// AcquireLock fails, and succeeds once that process is killed.
func TestLockAcrossProcesses(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("skipping: flock(1) not installed (util-linux)")
	}
	dir := t.TempDir()
	lockPath := filepath.Join(dir, LockName)
	cmd := exec.Command(flock, "--exclusive", "--no-fork", lockPath, "sh", "-c", `echo "pid 4242 on host other" > "$0"; exec sleep 60`, lockPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var l *Lock
		l, err = AcquireLock(dir)
		if err == nil {
			l.Release()
		}
		b, _ := os.ReadFile(lockPath)
		if err != nil && strings.Contains(string(b), "4242") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // flock(1) has not taken it yet
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid 4242 on host other holds") {
		t.Fatalf("lock held by another process: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	l.Release()
}
