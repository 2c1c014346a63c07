// Package textfile writes metrics for node-exporter's textfile collector, atomically: a reader
// sees the old file or the new one, never a part of either.
package textfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Write renders metrics with render and writes them to path: into a temporary file in the same directory (named with a
// leading dot and no .prom suffix, so the textfile collector never reads it), synced to disk, made
// world-readable, then renamed over path, and the directory synced. On any error the temporary
// file is removed and path is left as it was.
func Write(path string, render func(io.Writer) error) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimSuffix(name, ".prom")+".tmp-*")
	if err != nil {
		return fmt.Errorf("write textfile: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := render(f); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", f.Name(), path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// CheckDir reports whether a file can be written into dir, by creating and removing a temporary
// file there: a missing or read-only directory is found at start-up, not after the first cycle.
func CheckDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("textfile directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("textfile directory %s: not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".nodeping-check-*")
	if err != nil {
		return fmt.Errorf("textfile directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Remove deletes path; a file that is already gone is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove textfile: %w", err)
	}
	return nil
}
