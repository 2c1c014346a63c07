// Package resolve looks up external targets' host names at a cost that does not grow with the
// cluster: every name is asked fully qualified (a final dot, so that a pod's search list, with
// its ndots:5, is not walked), every answer is kept for its TTL (within a floor and a ceiling), a
// failure is kept for the floor, and only a few look-ups run at a time.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrBusy is wrapped by the error of a look-up whose context ended while it waited for one of
// the Concurrency slots: no query was sent, so the failure is not kept.
var ErrBusy = errors.New("every look-up slot busy")

// Answer is what a look-up found.
type Answer struct {
	Addrs []netip.Addr
	// TTL is how long the answer, or the failure, may be kept; 0 when the backend cannot tell
	// (the cache's floor applies).
	TTL time.Duration
}

// Backend looks up one fully qualified name (it ends in a dot).
type Backend interface {
	Lookup(ctx context.Context, fqdn string) (Answer, error)
}

// Net is a Backend on a *net.Resolver (nil: net.DefaultResolver), which reads /etc/hosts too but
// tells no TTL.
type Net struct{ Resolver *net.Resolver }

// Lookup asks the resolver for the name's IPv4 and IPv6 addresses.
func (n Net) Lookup(ctx context.Context, fqdn string) (Answer, error) {
	r := n.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", fqdn)
	return Answer{Addrs: addrs}, err
}

// Defaults of Config.
const (
	DefaultMinTTL      = 30 * time.Second
	DefaultMaxTTL      = 10 * time.Minute
	DefaultConcurrency = 4
)

// Config sets a Cache.
type Config struct {
	// MinTTL and MaxTTL clamp how long an answer is kept (DefaultMinTTL, DefaultMaxTTL when 0); a
	// failure is kept for MinTTL, or for the negative TTL the answer gave, within the same clamp.
	MinTTL, MaxTTL time.Duration
	// Concurrency is how many look-ups may run at once (DefaultConcurrency when 0). A look-up
	// whose context ends while it waits for its turn fails with ErrBusy, which is not kept.
	Concurrency int
	// Now is the time (nil: time.Now).
	Now func() time.Time
}

// Cache keeps a Backend's answers for their TTL. It is safe for concurrent use; concurrent
// look-ups of one name share one backend look-up.
type Cache struct {
	backend Backend
	cfg     Config
	sem     chan struct{}

	mu      sync.Mutex
	entries map[string]*entry
	lookups uint64
}

type entry struct {
	done    chan struct{} // closed when the look-up ended; the fields below are set then
	addrs   []netip.Addr
	err     error
	expires time.Time
}

// New returns a cache over b.
func New(b Backend, cfg Config) *Cache {
	if cfg.MinTTL <= 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	cfg.MaxTTL = max(cfg.MaxTTL, cfg.MinTTL)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{backend: b, cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), entries: map[string]*entry{}}
}

// FQDN is host, fully qualified: with a final dot.
func FQDN(host string) string {
	host = strings.TrimSpace(host)
	if strings.HasSuffix(host, ".") {
		return host
	}
	return host + "."
}

// Lookup returns host's addresses: the kept answer (or failure) while it is fresh, else those of
// a new look-up of FQDN(host).
func (c *Cache) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	name := FQDN(host)
	c.mu.Lock()
	if e := c.entries[name]; e != nil {
		select {
		case <-e.done:
			if c.cfg.Now().Before(e.expires) {
				c.mu.Unlock()
				return e.addrs, e.err
			}
		default: // another caller is looking it up: wait for its answer
			c.mu.Unlock()
			select {
			case <-e.done:
				return e.addrs, e.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	e := &entry{done: make(chan struct{})}
	c.entries[name] = e
	c.mu.Unlock()

	var (
		ans  Answer
		err  error
		busy bool
	)
	select {
	case c.sem <- struct{}{}:
		c.mu.Lock()
		c.lookups++
		c.mu.Unlock()
		ans, err = c.backend.Lookup(ctx, name)
		<-c.sem
	case <-ctx.Done():
		busy = true
		err = fmt.Errorf("lookup %s: %w: %w", name, ErrBusy, ctx.Err())
	}
	ttl := min(max(ans.TTL, c.cfg.MinTTL), c.cfg.MaxTTL)
	if err != nil {
		ans.Addrs = nil
	}
	c.mu.Lock()
	e.addrs, e.err, e.expires = ans.Addrs, err, c.cfg.Now().Add(ttl)
	switch {
	case busy:
		delete(c.entries, name) // no query was sent: nothing was learnt
	case errors.Is(err, context.Canceled):
		delete(c.entries, name) // the caller gave up (shutdown): nothing was learnt
	}
	close(e.done)
	c.mu.Unlock()
	return ans.Addrs, err
}

// Prune forgets the answers that are no longer fresh, so that names that left the list do not
// stay.
func (c *Cache) Prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	for name, e := range c.entries {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				delete(c.entries, name)
			}
		default:
		}
	}
}

// Lookups is how many look-ups reached the backend.
func (c *Cache) Lookups() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups
}
