package ws

import "sync"

// writerBacklog bounds the sessions waiting for a writer worker. A
// fan-out to more idle sessions than this at once sends the rest to
// goroutines of their own: slower, never blocking the hub.
const writerBacklog = 16 << 10

// maxWorkerBuffer is the largest write buffer a worker keeps between
// sessions.
const maxWorkerBuffer = 256 << 10

// writerPool is a node's fixed set of writer workers. A session with
// frames to send and no writer (an idle session getting a fan-out frame)
// is handed to a worker, which frames what waits and tries it in one
// non-blocking write. Only a socket that does not take the whole batch at
// once (a slow client, a full send buffer) gets a goroutine of its own to
// finish the write under the write timeout. One change to N idle sessions
// thus costs N channel sends and N write(2) calls on as many goroutines as
// there are workers, instead of N goroutines started, scheduled and ended,
// each setting its own write deadline.
type writerPool struct {
	work chan *session
	quit chan struct{}
	// mu makes submit and stop exclusive: nothing is handed to a worker
	// that may have stopped.
	mu      sync.RWMutex
	stopped bool
	done    sync.WaitGroup
}

// newWriterPool starts workers writer workers.
func newWriterPool(workers int) *writerPool {
	p := &writerPool{work: make(chan *session, writerBacklog), quit: make(chan struct{})}
	p.done.Add(workers)
	for range workers {
		go p.run()
	}
	return p
}

// submit hands s, which has something to write and no writer, to a worker
// without waiting; false (backlog full, or the pool stopped) means the
// caller must start a goroutine for s instead.
func (p *writerPool) submit(s *session) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped {
		return false
	}
	select {
	case p.work <- s:
		return true
	default:
		return false
	}
}

// stop ends the workers once they have written what was handed to them;
// later sessions write from goroutines of their own. Safe to call more
// than once.
func (p *writerPool) stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.done.Wait()
}

func (p *writerPool) run() {
	defer p.done.Done()
	var buf []byte
	for {
		select {
		case s := <-p.work:
			buf = p.serve(s, buf)
		case <-p.quit:
			// Nothing is submitted any more: write what is left.
			for {
				select {
				case s := <-p.work:
					buf = p.serve(s, buf)
				default:
					return
				}
			}
		}
	}
}

// serve gives s its turn and keeps the write buffer for the next session,
// unless a large batch grew it past what a worker should hold.
func (p *writerPool) serve(s *session, buf []byte) []byte {
	buf = s.writeOnWorker(buf)
	if cap(buf) > maxWorkerBuffer {
		return nil
	}
	return buf[:0]
}
