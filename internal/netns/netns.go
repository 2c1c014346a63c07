// Package netns runs code inside a named network namespace (one made with `ip netns add`).
// Network namespaces are Linux's: elsewhere Do returns an error, so that the packages that use it
// still build.
package netns
