package nodelist

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxNodes is the largest nodes list an agent accepts. A ConfigMap (1 MiB) holds about 8,700
// dual-stack nodes in nodeping's format, so a list from the controller never reaches it; a
// hand-made list above it is refused, not trimmed, so that every agent keeps the same plan.
// docs/scale.md has the decode cost at this size.
const MaxNodes = 10000

// MaxBytes is the largest nodes file an agent reads: four times what a ConfigMap holds, and
// well above MaxNodes entries of any supported format. Larger files are refused before decoding,
// so that a runaway file cannot exhaust the agent's memory.
const MaxBytes = 4 << 20

// ErrTooLarge is wrapped by the errors of ReadFile and CheckSize.
var ErrTooLarge = errors.New("nodes list too large")

// ReadFile reads a nodes file of at most maxBytes bytes (MaxBytes when maxBytes <= 0).
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = MaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, maxBytes)
	}
	return data, nil
}

// CheckSize refuses a list of more than maxNodes nodes (MaxNodes when maxNodes <= 0).
func CheckSize(l List, maxNodes int) error {
	if maxNodes <= 0 {
		maxNodes = MaxNodes
	}
	if len(l.Nodes) > maxNodes {
		return fmt.Errorf("%w: %d nodes, at most %d are accepted", ErrTooLarge, len(l.Nodes), maxNodes)
	}
	return nil
}
