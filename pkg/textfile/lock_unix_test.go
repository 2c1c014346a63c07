//go:build unix

package textfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLockRefusesNonRegular: AcquireLock takes a missing or regular lock file, and refuses a
// symlink (dangling or not) without creating or writing its target, a directory and a FIFO, each
// with an error that says what it found. The FIFO case would hang on a blocking open.
func TestLockRefusesNonRegular(t *testing.T) {
	const targetBody = "the target's own content\n"
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir, lock string) (target string)
		wantErr string // "" for success
	}{
		{name: "missing", setup: func(*testing.T, string, string) string { return "" }},
		{name: "regular", setup: func(t *testing.T, _, lock string) string {
			mustWrite(t, lock, "pid 1 on host gone\n")
			return ""
		}},
		{name: "symlink to a file", setup: func(t *testing.T, dir, lock string) string {
			target := filepath.Join(dir, "target")
			mustWrite(t, target, targetBody)
			mustSymlink(t, target, lock)
			return target
		}, wantErr: "it is a symlink, refusing to follow it"},
		{name: "dangling symlink", setup: func(t *testing.T, dir, lock string) string {
			target := filepath.Join(dir, "absent")
			mustSymlink(t, target, lock)
			return target
		}, wantErr: "it is a symlink, refusing to follow it"},
		{name: "directory", setup: func(t *testing.T, _, lock string) string {
			if err := os.Mkdir(lock, 0o755); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantErr: "is a directory"},
		{name: "fifo", setup: func(t *testing.T, _, lock string) string {
			if err := syscall.Mkfifo(lock, 0o644); err != nil {
				t.Skipf("skipping: mkfifo: %v", err)
			}
			return ""
		}, wantErr: "is not a regular file (a FIFO), refusing it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lock := filepath.Join(dir, LockName)
			target := tc.setup(t, dir, lock)
			var before []byte
			var beforeErr error
			if target != "" {
				before, beforeErr = os.ReadFile(target)
			}
			l, err := AcquireLock(dir)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("AcquireLock: %v", err)
				}
				defer l.Release()
				b, err := os.ReadFile(lock)
				if err != nil || !strings.HasPrefix(string(b), "pid ") || strings.Count(string(b), "\n") != 1 {
					t.Fatalf("lock file holds %q (%v), want one line \"pid N on host H\"", b, err)
				}
				return
			}
			if err == nil {
				l.Release()
				t.Fatalf("AcquireLock took %s, want an error containing %q", lock, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), lock) {
				t.Fatalf("AcquireLock: %v\nwant an error naming %s and containing %q", err, lock, tc.wantErr)
			}
			if target == "" {
				return
			}
			b, err := os.ReadFile(target)
			switch {
			case os.IsNotExist(beforeErr) && !os.IsNotExist(err):
				t.Fatalf("dangling symlink's target: %q, %v; want it still absent", b, err)
			case beforeErr == nil && (err != nil || string(b) != string(before)):
				t.Fatalf("symlink's target now holds %q (%v), want it untouched: %q", b, err, before)
			}
		})
	}
}

// TestLockHolderBounded: a huge lock file held by someone else is read no further than
// maxHolderBytes to name the holder.
func TestLockHolderBounded(t *testing.T) {
	dir := t.TempDir()
	l1, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Release()
	long := strings.Repeat("x", 4*maxHolderBytes)
	mustWrite(t, filepath.Join(dir, LockName), long)
	_, err = AcquireLock(dir)
	if err == nil {
		t.Fatal("second AcquireLock succeeded")
	}
	if want := strings.Repeat("x", maxHolderBytes) + " holds "; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "x"+want) {
		t.Fatalf("second AcquireLock: %.80s... (%d bytes), want the holder cut at %d bytes", err, len(err.Error()), maxHolderBytes)
	}
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
