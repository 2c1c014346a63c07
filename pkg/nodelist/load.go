package nodelist

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sum is the SHA-256 of a nodes file's content: it tells whether the file changed.
type Sum [sha256.Size]byte

// ErrUnchanged is returned by LoadChanged when the file's content has the sum it was given.
var ErrUnchanged = errors.New("nodes file unchanged")

// Load reads a nodes file within MaxBytes, decodes it in any format Decode reads, and refuses it
// above MaxNodes. Its errors name the file; they wrap ErrTooLarge, ErrEmpty or the read's error.
func Load(path string) (List, []Skip, error) {
	l, skips, _, err := LoadChanged(path, Sum{})
	return l, skips, err
}

// LoadChanged is Load that decodes only when the content's sum is not last: for an unchanged
// file it returns ErrUnchanged. It returns the sum of what it read, also with an error (the sum
// of nothing when the read failed), so that a caller can tell a new error from a repeated one.
func LoadChanged(path string, last Sum) (List, []Skip, Sum, error) {
	data, err := ReadFile(path, 0)
	sum := Sum(sha256.Sum256(data))
	if err != nil {
		return List{}, nil, sum, fmt.Errorf("read nodes file: %w", err)
	}
	if sum == last {
		return List{}, nil, sum, ErrUnchanged
	}
	l, skips, err := Decode(data)
	switch {
	case errors.Is(err, ErrEmpty):
		return List{}, nil, sum, fmt.Errorf("nodes file %s: %w", path, err)
	case err != nil:
		return List{}, nil, sum, fmt.Errorf("nodes file %s: malformed: %w", path, err)
	}
	if err := CheckSize(l, 0); err != nil {
		return List{}, nil, sum, fmt.Errorf("nodes file %s: %w", path, err)
	}
	return l, skips, sum, nil
}
