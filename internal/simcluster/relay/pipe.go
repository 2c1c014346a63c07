package relay

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// QueueLimit is how many packets a pipe holds at most; more are dropped, as a full queue on a
// real link does.
const QueueLimit = 4096

// maxFrame is the largest packet read: a 64 KiB GSO frame plus a virtio-net header.
const maxFrame = 65536 + 64

// Pipe forwards packets from one reader to one writer on a schedule.
type Pipe struct {
	sched              *Schedule
	forwarded, dropped atomic.Uint64
	done               chan struct{}
	err                error
}

type held struct {
	due time.Time
	pkt []byte
}

// StartPipe reads packets from src (each Read returns one packet, as TUN, TAP and packet
// sockets do) and writes each to dst once sched says it is due. It runs until src's Read fails:
// close src to stop it, then Wait.
func StartPipe(src io.Reader, dst io.Writer, sched *Schedule) *Pipe {
	p := &Pipe{sched: sched, done: make(chan struct{})}
	queue := make(chan held, QueueLimit)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for h := range queue {
			if d := time.Until(h.due); d > 0 {
				timer.Reset(d)
				<-timer.C
			}
			if _, err := dst.Write(h.pkt); err != nil {
				p.dropped.Add(1)
				continue
			}
			p.forwarded.Add(1)
		}
	}()
	go func() { // reader
		buf := make([]byte, maxFrame)
		for {
			n, err := src.Read(buf)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
					p.err = err
				}
				break
			}
			h := held{due: sched.Due(time.Now()), pkt: append([]byte(nil), buf[:n]...)}
			select {
			case queue <- h:
			default:
				p.dropped.Add(1)
			}
		}
		close(queue)
		wg.Wait()
		close(p.done)
	}()
	return p
}

// Wait waits until the pipe has stopped (its source closed) and has written what it held, and
// returns the error that stopped it, if it was not the source being closed.
func (p *Pipe) Wait() error {
	<-p.done
	return p.err
}

// Forwarded and Dropped count packets written and packets lost to a full queue or a failed write.
func (p *Pipe) Forwarded() uint64 { return p.forwarded.Load() }
func (p *Pipe) Dropped() uint64   { return p.dropped.Load() }
