//go:build unix

package responder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(floodHelper(os.Getenv(helperEnv)))
	}
	os.Exit(m.Run())
}

// floodHelper serves TCP on 127.0.0.1 with a 1,024-descriptor limit, writes a file into dir every
// 10 ms, and prints "open=N max=N writes=N write_errors=N accept_errors=N not_a_node=N
// over_capacity=N answered=N" every 50 ms. With "burn" in mode it first takes all but 3 free descriptors,
// to force accept errors, and frees them when stdin says "free".
func floodHelper(arg string) int {
	mode, dir, _ := strings.Cut(arg, ":")
	lim := syscall.Rlimit{Cur: 1024, Max: 1024}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	r, err := ListenTCP("127.0.0.1:0", TCPConfig{ConnDeadline: time.Minute}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r.SetAllowed([]netip.Addr{lo1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Serve(ctx)
	var burned []*os.File
	if mode == "burn" {
		for {
			f, err := os.Open(os.DevNull)
			if err != nil {
				fmt.Fprintf(os.Stderr, "burned %d descriptors: %v\n", len(burned), err)
				break
			}
			burned = append(burned, f)
		}
		for _, f := range burned[len(burned)-3:] {
			f.Close()
		}
		burned = burned[:len(burned)-3]
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			for _, f := range burned {
				f.Close()
			}
		}()
	}
	fmt.Printf("addr=%s cap=%d\n", r.Addr(), r.MaxConns())
	var writes, writeErrs, maxOpen int
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		<-tick.C
		// What the agent does every cycle: a new file, written, synced, renamed; a list read.
		p := filepath.Join(dir, "out.prom")
		if err := os.WriteFile(p+".tmp", []byte("x 1\n"), 0o644); err != nil {
			writeErrs++
		} else if err := os.Rename(p+".tmp", p); err != nil {
			writeErrs++
		} else {
			writes++
		}
		maxOpen = max(maxOpen, r.Open())
		if i%5 == 0 {
			d := r.Dropped()
			fmt.Printf("open=%d max=%d writes=%d write_errors=%d accept_errors=%d not_a_node=%d over_capacity=%d answered=%d\n",
				r.Open(), maxOpen, writes, writeErrs, d[DropAcceptError], d[DropNotANode], d[DropOverCapacity], r.Answered())
		}
	}
}

// helperState is the child's last report.
type helperState struct {
	mu    sync.Mutex
	cap   int
	addr  string
	state map[string]int
	lines int
}

func (h *helperState) get(k string) int { h.mu.Lock(); defer h.mu.Unlock(); return h.state[k] }

func startHelper(t *testing.T, mode string) (*helperState, *exec.Cmd, io.WriteCloser, *os.File) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("flood helper's log:\n%s", b)
		}
	})
	h := &helperState{state: map[string]int{}}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.mu.Lock()
			for _, f := range strings.Fields(sc.Text()) {
				k, v, _ := strings.Cut(f, "=")
				if k == "addr" {
					h.addr = v
					continue
				}
				n, _ := strconv.Atoi(v)
				if k == "cap" {
					h.cap = n
					close(ready)
					continue
				}
				h.state[k] = n
			}
			h.lines++
			h.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("flood helper did not start")
	}
	return h, cmd, stdin, logf
}

// TestTCPFloodIsBounded opens 6,000 connections to a responder whose process may hold 1,024
// descriptors, 1,000 of them from an unlisted address: the responder never holds more than its
// cap, every one of its file writes succeeds meanwhile, and it logs nothing.
func TestTCPFloodIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 6,000-connection flood in -short mode")
	}
	h, _, _, logf := startHelper(t, "plain")
	if h.cap >= 1024-ReservedFDs {
		t.Fatalf("cap %d leaves fewer than %d of 1,024 descriptors", h.cap, ReservedFDs)
	}
	addr, _ := net.ResolveTCPAddr("tcp", h.addr)
	const total, unlisted = 6000, 1000
	var (
		mu      sync.Mutex
		conns   []net.Conn
		dialErr atomic.Int64
		wg      sync.WaitGroup
		next    atomic.Int64
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				src := lo1
				if i%(total/unlisted) == 0 {
					src = lo2
				}
				c, err := dialFrom(src, addr)
				if err != nil {
					dialErr.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	await(t, "the responder to see every connection", func() bool {
		return h.get("answered")+h.get("not_a_node")+h.get("over_capacity") >= total-int(dialErr.Load())
	})
	w0 := h.get("writes")
	await(t, "20 more file writes", func() bool { return h.get("writes") >= w0+20 })
	logged, _ := os.ReadFile(logf.Name())
	t.Logf("cap %d: accepted %d, over capacity %d, not a node %d, dial errors (reset before the dial returned) %d, max open %d, writes %d, write errors %d, log lines %d",
		h.cap, h.get("answered"), h.get("over_capacity"), h.get("not_a_node"), dialErr.Load(), h.get("max"), h.get("writes"), h.get("write_errors"), strings.Count(string(logged), "\n"))
	if h.get("max") > h.cap {
		t.Errorf("held %d connections at once, cap %d", h.get("max"), h.cap)
	}
	if h.get("answered") != h.cap {
		t.Errorf("answered %d (all held), want exactly the cap %d", h.get("answered"), h.cap)
	}
	if h.get("not_a_node") != unlisted {
		t.Errorf("refused %d unlisted, want %d", h.get("not_a_node"), unlisted)
	}
	if h.get("write_errors") != 0 {
		t.Errorf("%d file writes failed during the flood", h.get("write_errors"))
	}
	if len(logged) != 0 {
		t.Errorf("the responder logged during the flood:\n%s", logged)
	}
}

// TestTCPAcceptErrorsBackOff: with every descriptor taken, accept fails with EMFILE; the
// responder backs off (a few attempts a second, not a busy loop) and logs one line, and serves
// again once descriptors are free.
func TestTCPAcceptErrorsBackOff(t *testing.T) {
	h, _, stdin, logf := startHelper(t, "burn")
	addr, _ := net.ResolveTCPAddr("tcp", h.addr)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := dialFrom(lo1, addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	await(t, "accept errors", func() bool { return h.get("accept_errors") > 0 })
	time.Sleep(3 * time.Second) // the window over which the error rate is measured
	errs := h.get("accept_errors")
	logged, _ := os.ReadFile(logf.Name())
	lines := strings.Count(string(logged), "accept failed")
	t.Logf("in ~3 s with no free descriptor: %d accept errors, %d log lines", errs, lines)
	if errs > 30 {
		t.Errorf("%d accept errors in ~3 s: no backoff", errs)
	}
	if lines != 1 {
		t.Errorf("%d 'accept failed' lines, want 1 per %s:\n%s", lines, LogEvery, logged)
	}
	fmt.Fprintln(stdin, "free")
	await(t, "the held connections accepted once descriptors are free", func() bool { return h.get("answered") >= 20 })
}
