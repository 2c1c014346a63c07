//go:build !linux

package netns

import (
	"errors"
	"runtime"
)

// Do returns an error: network namespaces are Linux's.
func Do(name string, fn func()) error {
	return errors.New("network namespace " + name + ": not supported on " + runtime.GOOS)
}
