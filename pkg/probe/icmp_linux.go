package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// minBatch is how many echoes the scheduler aims to send per wake-up: one full sendmmsg batch.
// Each wake-up of a Go process costs thread and scheduler wake-ups that fping's single-threaded
// loop does not pay; at 1,000 targets a tick of 16 echoes made the engine 1.4x fping's CPU per
// echo, and one of 64 brings it under fping's. A burst of 64 small echoes is a few kilobytes.
const minBatch = batchSize

// ICMP is an echo engine in the manner of fping: one socket per address family for all targets,
// a kernel BPF filter on the engine's ICMP ID, a sequence-indexed table of echoes in flight, one
// scheduler that spreads sends over the interval in small sendmmsg batches, replies drained with
// recvmmsg (by the scheduler itself, right after each batch, while a run sends; by one receiver
// goroutine per socket otherwise), RTT from kernel receive timestamps, and no allocation per echo.
//
// One Run at a time; Run may be called again and again on one engine.
type ICMP struct {
	cfg    ICMPConfig
	log    *slog.Logger
	cookie [cookieLen]byte
	socks  [2]*icmpSocket // ipv4, ipv6; nil where the family is unavailable
	tmpl   [2][]byte
	wg     sync.WaitGroup

	drainBuf *mmsgBatch   // used by Run's goroutine only
	sb       *sendBatches // Run's send batches, kept from run to run

	// The runner's table holds the echoes in flight (slot index = ICMP sequence number); its
	// mutex also guards paused and closing.
	runner
	// paused is non-nil while a run sends: the run's goroutine then reads the sockets itself,
	// after each batch it sends, and the receivers wait for paused to close (see receive).
	paused  chan struct{}
	closing chan struct{} // closed by Close

	counters
}

// icmpRun is a run with each target's socket address.
type icmpRun struct {
	run
	addrs []sockaddr
}

// NewICMP opens one ICMP socket per address family. A family whose socket cannot be opened is
// logged and left out (its targets then fail to send); the error is for when neither opens.
func NewICMP(cfg ICMPConfig, log *slog.Logger) (*ICMP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &ICMP{cfg: cfg, log: log, closing: make(chan struct{})}
	e.init(cfg.Timeout)
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("icmp id: %w", err)
	}
	if _, err := rand.Read(e.cookie[:]); err != nil {
		return nil, fmt.Errorf("icmp cookie: %w", err)
	}
	id := binary.BigEndian.Uint16(idb[:])
	var errs []error
	for i, v6 := range []bool{false, true} {
		s, err := openICMPSocket(v6, id, cfg.DontFragment)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", familyName(v6), err))
			continue
		}
		e.socks[i] = s
		e.tmpl[i] = echoTemplate(v6, cfg.Size, e.cookie)
	}
	if e.socks[0] == nil && e.socks[1] == nil {
		return nil, errors.Join(errs...)
	}
	for _, err := range errs {
		log.Warn("icmp address family unavailable; its targets will count as send errors", "err", err)
	}
	for _, s := range e.socks {
		if s != nil {
			e.wg.Add(1)
			go e.receive(s)
		}
	}
	return e, nil
}

// Modes reports how each address family's socket was opened ("" where it is unavailable).
func (e *ICMP) Modes() (ipv4, ipv6 SocketMode) {
	if e.socks[0] != nil {
		ipv4 = e.socks[0].mode
	}
	if e.socks[1] != nil {
		ipv6 = e.socks[1].mode
	}
	return ipv4, ipv6
}

// Counters returns the engine's running totals.
func (e *ICMP) Counters() EngineCounters { return e.load() }

// Close closes the sockets and waits for the receivers to stop.
func (e *ICMP) Close() error {
	e.mu.Lock()
	select {
	case <-e.closing:
	default:
		close(e.closing)
	}
	e.mu.Unlock()
	var errs []error
	for _, s := range e.socks {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	e.wg.Wait()
	return errors.Join(errs...)
}

// Run sends Count echoes to every target, spread over the interval with a random phase per target,
// and returns when every echo is answered or past its deadline. Stats are indexed like targets.
// When ctx ends first, Run returns ctx's error and the echoes still in flight are counted nowhere.
func (e *ICMP) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	return e.runEchoes(ctx, targets, e.cfg.Count, e.cfg.Interval, e.tmpl, &e.sb)
}

// MTUProbe sends, through the engine's sockets, count echoes per target whose IPv4 packets are
// exactly mtu bytes long (payload mtu-28; IPv6 packets are as long, with 20 bytes less payload),
// with DF set, spread over spread. A path that passes the engine's small echoes but loses these is
// an MTU black hole. The engine must have been built with DontFragment and MTUSize >= mtu-28.
type MTUProbe struct {
	e      *ICMP
	count  int
	spread time.Duration
	tmpl   [2][]byte
	sb     *sendBatches
}

// NewMTUProbe returns an MTU probe on e's sockets.
func (e *ICMP) NewMTUProbe(mtu, count int, spread time.Duration) (*MTUProbe, error) {
	switch {
	case !e.cfg.DontFragment:
		return nil, errors.New("mtu probe: the engine's sockets do not set DF")
	case mtu-28 > e.cfg.MTUSize || mtu-48 < cookieLen:
		return nil, fmt.Errorf("mtu probe: %d bytes: the engine has room for %d-byte packets", mtu, e.cfg.MTUSize+28)
	case count < 1 || spread <= 0:
		return nil, fmt.Errorf("mtu probe: count %d, spread %s: both must be positive", count, spread)
	}
	p := &MTUProbe{e: e, count: count, spread: spread}
	for i, v6 := range []bool{false, true} {
		if e.tmpl[i] != nil {
			p.tmpl[i] = echoTemplate(v6, mtu-28-20*i, e.cookie)
		}
	}
	return p, nil
}

// Run sends the probe's echoes to every target; see ICMP.Run.
func (p *MTUProbe) Run(ctx context.Context, targets []netip.Addr) ([]Stats, error) {
	return p.e.runEchoes(ctx, targets, p.count, p.spread, p.tmpl, &p.sb)
}

// runEchoes runs one burst of echoes built from tmpl; *sb caches the send batches (their packets
// are tmpl's copies) from one call to the next.
func (e *ICMP) runEchoes(ctx context.Context, targets []netip.Addr, count int, interval time.Duration, tmpl [2][]byte, sb **sendBatches) ([]Stats, error) {
	n := len(targets)
	rs := &icmpRun{run: newRun(targets, count), addrs: make([]sockaddr, n)}
	rtts := make([]time.Duration, n*count) // one backing array for every target's RTTs
	for i, t := range targets {
		rs.addrs[i] = newSockaddr(t)
		rs.stats[i].RTTs = rtts[i*count : i*count : (i+1)*count]
	}
	if n == 0 {
		return rs.stats, nil
	}
	if err := e.begin(&rs.run, "icmp"); err != nil {
		return nil, err
	}
	defer e.resume() // deferred first: runs after end
	defer e.end()
	e.pause()

	sp := newSpread(n, count, interval, newRand())
	// The scheduler wakes once per tick and sends every echo that is due. A tick long enough for
	// about minBatch echoes (at least 5ms) amortizes each wake-up over a sendmmsg batch, so a
	// burst never holds more than about one batch; at most the interval, so that each target's
	// echoes keep their spacing. A shorter cap only adds wake-ups: at a quarter of the interval,
	// 100 targets cost 1.37x fping's CPU per echo (scripts/bench-icmp --loop, docs/icmp-engine.md).
	tick := max(time.Duration(int64(interval)*minBatch/int64(n)), 5*time.Millisecond)
	tick = min(tick, max(interval, time.Millisecond))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if *sb == nil {
		*sb = newSendBatches(tmpl)
	}
	batches := *sb
	for f := range batches.fam {
		batches.fam[f].n = 0 // a cancelled run may have left echoes queued
	}
	start := e.now()
	total := sp.total()
	lag := maxLag(interval)
	for next := 0; next < total; {
		now := e.now()
		if next < total {
			at, _, _ := sp.at(next)
			start = rebase(start, at, now, lag)
		}
		for ; next < total; next++ {
			at, t, _ := sp.at(next)
			if start+at > now+int64(tick)/2 {
				break
			}
			if batches.add(e, rs, t) {
				e.flush(batches, rs)
			}
		}
		e.flush(batches, rs)
		// The receivers are paused while the run sends: read the replies here, where one
		// recvmmsg takes a whole batch's worth. Kernel receive timestamps time them, so reading
		// them up to a tick late changes no RTT.
		e.drain()
		e.expire(e.settle)
		if next < total {
			at, _, _ := sp.at(next)
			if err := sleep(ctx, timer, max(time.Duration(start+at-e.now()), tick), nil); err != nil {
				return nil, err
			}
		}
	}
	// Everything is sent: wait for the replies or the deadlines, whichever comes first, with
	// the receivers back at work.
	e.resume()
	return e.await(ctx, timer, &rs.run, e.settle)
}

// settle matches every reply the kernel has queued, before expire judges deadlines: it drains
// the sockets and waits for the receivers to finish the batches they hold.
func (e *ICMP) settle() {
	e.drain()
	e.awaitReceivers()
}

// awaitReceivers waits (at most a second) until no receiver goroutine holds packets it has read
// from a socket but not yet matched.
func (e *ICMP) awaitReceivers() {
	deadline := time.Now().Add(time.Second)
	for _, s := range e.socks {
		for s != nil && s.inHand.Load() > 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
}

// sendBatches collects echoes per address family until a sendmmsg call's worth is ready.
type sendBatches struct {
	fam [2]struct {
		n       int
		hdrs    [batchSize]unix.Mmsghdr
		iovs    [batchSize]unix.Iovec
		pkts    [batchSize][]byte
		serials [batchSize]uint32
		targets [batchSize]int32
	}
}

func newSendBatches(tmpl [2][]byte) *sendBatches {
	sb := &sendBatches{}
	for f := range sb.fam {
		if tmpl[f] == nil {
			continue
		}
		b := &sb.fam[f]
		for i := range b.pkts {
			b.pkts[i] = append([]byte(nil), tmpl[f]...)
			b.iovs[i].Base = &b.pkts[i][0]
			b.iovs[i].SetLen(len(b.pkts[i]))
			b.hdrs[i].Hdr.Iov = &b.iovs[i]
			b.hdrs[i].Hdr.Iovlen = 1
		}
	}
	return sb
}

// add queues one echo to target t and reports whether a batch is full.
func (sb *sendBatches) add(e *ICMP, rs *icmpRun, t int) bool {
	f := 0
	if rs.targets[t].Is6() {
		f = 1
	}
	s := e.socks[f]
	if s == nil {
		e.mu.Lock()
		rs.failed(int32(t))
		e.mu.Unlock()
		return false
	}
	b := &sb.fam[f]
	b.targets[b.n] = int32(t)
	h := &b.hdrs[b.n].Hdr
	h.Name = (*byte)(unsafe.Pointer(&rs.addrs[t].raw))
	h.Namelen = rs.addrs[t].len
	b.n++
	return b.n == batchSize
}

// flush sends every queued echo: sequence numbers and send times are taken under the lock just
// before the sendmmsg call, so a reply can never arrive before its slot is filled.
func (e *ICMP) flush(sb *sendBatches, rs *icmpRun) {
	for f := range sb.fam {
		b := &sb.fam[f]
		if b.n == 0 {
			continue
		}
		s := e.socks[f]
		n := b.n
		b.n = 0
		e.mu.Lock()
		wall, mono := time.Now().UnixNano(), e.now()
		for i := 0; i < n; i++ {
			serial, ok := e.tab.add(b.targets[i], wall, mono)
			if !ok {
				// The table is full: resolve this echo as not sent, and count it.
				e.tableFull.Add(1)
				rs.failed(b.targets[i])
				b.targets[i] = -1
				continue
			}
			b.serials[i] = serial
			putEcho(b.pkts[i], s.id, serial, !s.v6 && s.mode == ModeRaw)
		}
		e.mu.Unlock()
		e.sendAll(s, b.hdrs[:n], b.serials[:n], b.targets[:n], rs)
	}
}

// sendAll sends a batch, skipping past each message the kernel refuses and resolving it as a
// send error.
func (e *ICMP) sendAll(s *icmpSocket, hdrs []unix.Mmsghdr, serials []uint32, targets []int32, rs *icmpRun) {
	for i := 0; i < len(hdrs); {
		if targets[i] < 0 {
			i++
			continue
		}
		j := i
		for j < len(hdrs) && targets[j] >= 0 {
			j++
		}
		sent, err := s.send(hdrs[i:j])
		i += sent
		if err == nil {
			continue
		}
		if errors.Is(err, errSocketClosed) {
			return
		}
		// The message at i failed: resolve it as lost, with a send error.
		e.mu.Lock()
		if f := e.tab.get(serials[i]); f != nil {
			e.tab.resolve(f)
			rs.failed(targets[i])
		}
		e.mu.Unlock()
		e.log.Debug("icmp send failed", "target", rs.targets[targets[i]], "err", err)
		i++
	}
}

// pause makes the receivers wait while a run sends (see receive).
func (e *ICMP) pause() {
	e.mu.Lock()
	e.paused = make(chan struct{})
	e.mu.Unlock()
}

// resume ends the pause of the receivers, if any.
func (e *ICMP) resume() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.paused != nil {
		close(e.paused)
		e.paused = nil
	}
}

// receive runs for the engine's life, draining one socket. While a run sends (see paused), it
// waits: the run reads the replies itself, right after each batch it sends, so that a burst of
// replies costs one recvmmsg call, not a poller wake-up and a call for every few of them.
func (e *ICMP) receive(s *icmpSocket) {
	defer e.wg.Done()
	b := newRecvBatch(e.recvBufSize())
	for {
		e.mu.Lock()
		paused := e.paused
		e.mu.Unlock()
		if paused != nil {
			select {
			case <-paused:
			case <-e.closing:
			}
		}
		n, err := s.recv(b, true)
		if errors.Is(err, errSocketClosed) {
			return
		}
		if err != nil {
			e.recvErrors.Add(1)
			e.log.Debug("icmp receive failed", "family", familyName(s.v6), "err", err)
			continue
		}
		e.handle(s, b, n, e.now())
		s.inHand.Add(-1)
	}
}

// recvBufSize fits an echo reply with the largest IPv4 header.
func (e *ICMP) recvBufSize() int { return 60 + icmpHeaderLen + max(e.cfg.Size, e.cfg.MTUSize) }

// drain reads whatever the sockets hold without waiting, so that replies the kernel received in
// time are counted before their deadlines are judged, even when the receivers are slow to run.
func (e *ICMP) drain() {
	for _, s := range e.socks {
		if s == nil {
			continue
		}
		for range 1024 {
			if e.drainBuf == nil {
				e.drainBuf = newRecvBatch(e.recvBufSize())
			}
			n, err := s.recv(e.drainBuf, false)
			if err != nil || n == 0 {
				break
			}
			e.handle(s, e.drainBuf, n, e.now())
		}
	}
}

// handle matches received replies to echoes in flight.
func (e *ICMP) handle(s *icmpSocket, b *mmsgBatch, n int, now int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 0; i < n; i++ {
		h := &b.hdrs[i]
		r, err := parseEchoReply(b.bufs[i][:h.Len], s.v6, s.mode == ModeRaw && !s.v6)
		if err != nil || r.ID != s.id || len(r.Data) < cookieLen || string(r.Data[:cookieLen]) != string(e.cookie[:]) {
			continue // not ours
		}
		f := e.tab.at(uint32(r.Seq))
		rs := e.run
		if f == nil || rs == nil || !echoSerialMatches(r.Data, f.serial) || rs.targets[f.target] != addrFrom(&b.names[i]) {
			e.late.Add(1)
			continue
		}
		rtt := replyRTT(f.sentMono, now, f.sentWall, kernelTimestamp(b.oobs[i][:h.Hdr.Controllen]))
		if rtt > e.cfg.Timeout {
			// Its deadline passed before it came: lost, as expire would have judged it.
			e.late.Add(1)
			continue
		}
		e.tab.resolve(f)
		rs.answered(f.target, rtt)
	}
}
