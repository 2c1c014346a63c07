package resolve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nodeping/nodeping/internal/testutil/dnstest"
	"github.com/nodeping/nodeping/internal/testutil/poll"
)

// zone is what the test server knows: records by name, in zone-file syntax.
var zone = map[string][]string{
	"gw.example.org.":    {"gw.example.org. 60 IN A 198.18.9.1", "gw.example.org. 120 IN AAAA fd00::1"},
	"short.example.org.": {"short.example.org. 1 IN A 198.18.9.2"},
	"long.example.org.":  {"long.example.org. 86400 IN A 198.18.9.3", "long.example.org. 86400 IN AAAA fd00::3"},
	"alias.example.org.": {"alias.example.org. 45 IN CNAME gw.example.org.", "gw.example.org. 60 IN A 198.18.9.1"},
}

// soa is the zone's SOA, given with negative answers: minimum 300s.
const soa = "example.org. 3600 IN SOA ns.example.org. admin.example.org. 1 7200 900 1209600 300"

// server is a DNS server on loopback that answers from zone and counts every question.
type server struct {
	addr string
	mu   sync.Mutex
	seen map[string]int // "name type" -> queries
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{seen: map[string]int{}}
	s.addr = dnstest.Serve(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		s.mu.Lock()
		s.seen[q.Name+" "+dns.TypeToString[q.Qtype]]++
		s.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		recs, ok := zone[q.Name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		typed := false
		for _, txt := range recs {
			rr, err := dns.NewRR(txt)
			if err != nil {
				panic(err)
			}
			if h := rr.Header(); h.Rrtype == dns.TypeCNAME || h.Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
				typed = typed || h.Rrtype == q.Qtype
			}
		}
		if !typed { // NXDOMAIN or no record of that type: the SOA gives the negative TTL
			rr, _ := dns.NewRR(soa)
			m.Ns = append(m.Ns, rr)
		}
		w.WriteMsg(m)
	}))
	return s
}

func (s *server) queries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}

func render(m map[string]int) string {
	var out strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&out, "%s %d\n", k, m[k])
	}
	return out.String()
}

// clock is a time that the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestCacheQueriesPerTTL: 40 cycles of 15s (10 minutes) ask each name once per TTL (clamped to
// 30s..10m), fully qualified, and never under a search-list suffix.
func TestCacheQueriesPerTTL(t *testing.T) {
	s := startServer(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	c := New(DNS{Servers: []string{s.addr}, Timeout: time.Second}, Config{Now: clk.Now})
	hosts := []string{"gw.example.org", "short.example.org", "long.example.org.", "alias.example.org", "missing.example.org"}
	const cycles = 40
	for range cycles {
		c.Prune()
		for _, h := range hosts {
			addrs, err := c.Lookup(context.Background(), h)
			if h == "missing.example.org" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: %v, %v; want ErrNotFound", h, addrs, err)
				}
				continue
			}
			if err != nil || len(addrs) == 0 {
				t.Fatalf("%s: %v, %v", h, addrs, err)
			}
		}
		clk.advance(15 * time.Second)
	}
	// Over 600s (look-ups at 0s, 15s, ... 585s): gw keeps the shorter of its TTLs (A 60s) -> 10
	// look-ups; short's 1s is raised to 30s -> 20; long's day is cut to 10m -> 1; alias keeps its
	// CNAME's 45s -> 14 (at 0s, 45s, ... 585s); missing keeps its SOA minimum, 300s -> 2.
	want := map[string]int{
		"gw.example.org. A": 10, "gw.example.org. AAAA": 10,
		"short.example.org. A": 20, "short.example.org. AAAA": 20,
		"long.example.org. A": 1, "long.example.org. AAAA": 1,
		"alias.example.org. A": 14, "alias.example.org. AAAA": 14,
		"missing.example.org. A": 2, "missing.example.org. AAAA": 2,
	}
	if got := s.queries(); render(got) != render(want) {
		t.Errorf("queries over %d cycles:\n%s\nwant:\n%s", cycles, render(got), render(want))
	}
	if got := c.Lookups(); got != 10+20+1+14+2 {
		t.Errorf("backend look-ups %d, want %d", got, 10+20+1+14+2)
	}
}

func TestDNSAnswer(t *testing.T) {
	s := startServer(t)
	d := DNS{Servers: []string{"127.0.0.1:1", s.addr}, Timeout: time.Second} // the first refuses: the next answers
	ans, err := d.Lookup(context.Background(), "gw.example.org.")
	if err != nil || fmt.Sprint(ans.Addrs) != "[198.18.9.1 fd00::1]" || ans.TTL != 60*time.Second {
		t.Errorf("gw: %v, %v; want [198.18.9.1 fd00::1] for 60s", ans, err)
	}
	ans, err = d.Lookup(context.Background(), "short.example.org.")
	if err != nil || fmt.Sprint(ans.Addrs) != "[198.18.9.2]" || ans.TTL != time.Second {
		t.Errorf("short: %v, %v; want [198.18.9.2] for 1s (the AAAA's negative TTL is 300s)", ans, err)
	}
	ans, err = d.Lookup(context.Background(), "missing.example.org.")
	if !errors.Is(err, ErrNotFound) || ans.TTL != 300*time.Second || err.Error() != "lookup missing.example.org.: no such host (NXDOMAIN)" {
		t.Errorf("missing: %v, %q; want ErrNotFound for 300s", ans, err)
	}
}

// blocking is a backend whose look-ups wait for release, and that records how many ran at once.
type blocking struct {
	mu            sync.Mutex
	inflight, top int
	calls         map[string]int
	release       chan struct{}
}

func (b *blocking) Lookup(ctx context.Context, fqdn string) (Answer, error) {
	b.mu.Lock()
	b.inflight++
	b.top = max(b.top, b.inflight)
	b.calls[fqdn]++
	b.mu.Unlock()
	<-b.release
	b.mu.Lock()
	b.inflight--
	b.mu.Unlock()
	return Answer{Addrs: []netip.Addr{netip.MustParseAddr("198.18.9.9")}, TTL: time.Minute}, nil
}

func (b *blocking) state() (inflight, top int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inflight, b.top
}

// TestCacheConcurrency: at most Concurrency look-ups run at once, and callers asking for one name
// at the same time share one look-up.
func TestCacheConcurrency(t *testing.T) {
	b := &blocking{calls: map[string]int{}, release: make(chan struct{})}
	c := New(b, Config{Concurrency: 2})
	var wg sync.WaitGroup
	for i := range 8 {
		for range 3 { // three callers per name
			wg.Go(func() {
				if _, err := c.Lookup(context.Background(), fmt.Sprintf("h%d.example.org", i)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for released := range 8 {
		want := min(2, 8-released)
		poll.Until(t, fmt.Sprintf("%d look-ups running", want), 10*time.Second, time.Millisecond, func() bool {
			n, _ := b.state()
			return n == want
		})
		b.release <- struct{}{}
	}
	wg.Wait()
	if _, top := b.state(); top != 2 {
		t.Errorf("%d look-ups ran at once, want at most (and here exactly) 2", top)
	}
	for name, n := range b.calls {
		if n != 1 {
			t.Errorf("%s looked up %d times by three callers at once, want 1", name, n)
		}
	}
	if _, ok := b.calls["h0.example.org."]; len(b.calls) != 8 || !ok {
		t.Errorf("look-ups %v, want h0. .. h7., fully qualified", b.calls)
	}
}

// failing is a backend that fails every look-up with err, and counts them.
type failing struct {
	err   error
	calls int
}

func (f *failing) Lookup(context.Context, string) (Answer, error) {
	f.calls++
	return Answer{}, f.err
}

// TestCacheKeepsFailures: a failure that tells no TTL (a timeout) is kept for MinTTL, so that an
// unreachable resolver is not asked every cycle; a caller that gave up (shutdown) leaves nothing.
func TestCacheKeepsFailures(t *testing.T) {
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	f := &failing{err: errors.New("127.0.0.1:53: timeout")}
	c := New(f, Config{Now: clk.Now, MinTTL: 30 * time.Second})
	for range 4 { // 0s, 15s, 30s, 45s
		if _, err := c.Lookup(context.Background(), "gw.example.org"); err == nil {
			t.Fatal("no error from a failing backend")
		}
		clk.advance(15 * time.Second)
	}
	if f.calls != 2 {
		t.Errorf("%d look-ups in 4 cycles of 15s, want 2 (a failure is kept 30s)", f.calls)
	}
	f.err = context.Canceled
	clk.advance(time.Minute)
	c.Lookup(context.Background(), "gw.example.org")
	c.Lookup(context.Background(), "gw.example.org")
	if f.calls != 4 {
		t.Errorf("%d look-ups, want 4: a cancelled look-up is not kept", f.calls)
	}
}

// TestCacheBusyIsNotKept: a look-up whose context ends while every slot is taken sent no query;
// its failure (ErrBusy) is not kept, so the name is asked as soon as a slot frees.
func TestCacheBusyIsNotKept(t *testing.T) {
	b := &blocking{calls: map[string]int{}, release: make(chan struct{})}
	c := New(b, Config{Concurrency: 1})
	held := make(chan error, 1)
	go func() {
		_, err := c.Lookup(context.Background(), "slow.example.org")
		held <- err
	}()
	poll.Until(t, "the only slot taken", 10*time.Second, time.Millisecond, func() bool {
		n, _ := b.state()
		return n == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Lookup(ctx, "gw.example.org"); !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("look-up while the slot is taken: %v, want ErrBusy and the deadline", err)
	}
	b.release <- struct{}{}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	go func() { b.release <- struct{}{} }()
	addrs, err := c.Lookup(context.Background(), "gw.example.org")
	if err != nil || len(addrs) != 1 {
		t.Errorf("look-up once the slot is free: %v, %v; want the backend's answer, not the kept failure", addrs, err)
	}
	if b.calls["gw.example.org."] != 1 || c.Lookups() != 2 {
		t.Errorf("backend calls %v, Lookups %d; want gw asked once, 2 in all", b.calls, c.Lookups())
	}
}
