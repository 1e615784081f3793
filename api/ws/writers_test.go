package ws

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// partialConn is a client whose socket buffer takes only a few bytes at
// once: a worker's write stops part-way into a frame and the session's
// goroutine must finish it.
type partialConn struct {
	*fakeConn
	room int
}

func (c *partialConn) tryWrite(b []byte) (int, error) {
	return c.Write(b[:min(len(b), c.room)])
}

// gateConn holds the worker that writes to it until the gate opens: a
// worker kept busy, so that what is handed to the pool meanwhile waits.
type gateConn struct {
	*fakeConn
	entered chan struct{}
	gate    chan struct{}
}

func (c *gateConn) tryWrite(b []byte) (int, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	<-c.gate
	return c.Write(b)
}

// readySession is a session of its own user subscribed to user 42, its
// writes going to c, handed to pool.
func readySession(c conn, pool *writerPool, queue int, stats *HubStats) *session {
	s := newSession(c, auth.Identity{UserID: 1}, nil, &sessionOptions{
		queue: queue, writeTimeout: time.Second, stats: stats, pool: pool,
	})
	s.reserve([]int64{42}, 0)
	s.markReady(42, 0)
	return s
}

func TestWriterWorkersKeepOrder(t *testing.T) {
	pool := newWriterPool(2)
	defer pool.stop()
	stats := &HubStats{}
	const sessions, frames = 20, 100
	conns := make([]*fakeConn, sessions)
	all := make([]*session, sessions)
	for i := range all {
		conns[i] = newFakeConn(t)
		all[i] = readySession(conns[i], pool, 256, stats)
	}
	for v := 1; v <= frames; v++ {
		for _, s := range all {
			s.push(42, uint64(v), []byte(fmt.Sprint(v)))
		}
	}
	for i, c := range conns {
		for v := 1; v <= frames; v++ {
			if got := c.next(t); got != fmt.Sprint(v) {
				t.Fatalf("session %d: frame %q, want %d", i, got, v)
			}
		}
	}
	if n := stats.WriterGoroutines.Load(); n != 0 {
		t.Fatalf("%d writer goroutines for sockets that take every write", n)
	}
	for _, s := range all {
		s.close(1000, "")
		s.wait()
	}
}

// TestWriterWorkerPassesOnPartialWrite: a batch the socket takes only part
// of is finished by the session's goroutine, bytes and order intact, and
// the frames after it follow.
func TestWriterWorkerPassesOnPartialWrite(t *testing.T) {
	pool := newWriterPool(1)
	defer pool.stop()
	stats := &HubStats{}
	c := &partialConn{fakeConn: newFakeConn(t), room: 3}
	s := readySession(c, pool, 256, stats)
	defer s.wait()
	defer s.close(1000, "")
	for v := 1; v <= 50; v++ {
		s.push(42, uint64(v), []byte(fmt.Sprintf("frame %d", v)))
	}
	for v := 1; v <= 50; v++ {
		if got, want := c.next(t), fmt.Sprintf("frame %d", v); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if stats.WriterGoroutines.Load() == 0 {
		t.Fatal("no goroutine took over the partial write")
	}
}

// TestWriterWorkerNotHeldBySlowClient: with a single worker, a client that
// does not read gets a goroutine of its own and is cut off as a slow
// consumer, while another session's frames keep flowing.
func TestWriterWorkerNotHeldBySlowClient(t *testing.T) {
	pool := newWriterPool(1)
	defer pool.stop()
	stats := &HubStats{}
	blocked := &blockedConn{fakeConn: newFakeConn(t), unblock: make(chan struct{})}
	var reset atomic.Bool
	slow := newSession(blocked, auth.Identity{UserID: 1}, nil, &sessionOptions{
		queue: 4, writeTimeout: time.Minute, stats: stats, pool: pool,
		reset: func(net.Addr) { reset.Store(true) },
	})
	slow.reserve([]int64{42}, 0)
	slow.markReady(42, 0)
	fast := newFakeConn(t)
	other := readySession(fast, pool, 4, stats)
	defer other.wait()
	defer other.close(1000, "")

	for v := uint64(1); v <= 20 && !slow.isClosing(); v++ {
		slow.push(42, v, []byte("x"))
		other.push(42, v, []byte(fmt.Sprint(v)))
		if got := fast.next(t); got != fmt.Sprint(v) {
			t.Fatalf("other session: frame %q, want %d", got, v)
		}
		time.Sleep(time.Millisecond) // the slow session's goroutine takes its batch
	}
	if !slow.isClosing() || stats.SlowDisconnects.Load() != 1 || !reset.Load() {
		t.Fatalf("slow client: closing %v, SlowDisconnects %d, reset %v; want cut off", slow.isClosing(), stats.SlowDisconnects.Load(), reset.Load())
	}
	close(blocked.unblock)
	slow.wait()
	other.push(42, 100, []byte("after"))
	if got := fast.next(t); got != "after" {
		t.Fatalf("other session after the cut: %q", got)
	}
}

// TestWriterWorkerShutdownWhileQueued: a session closed while it waits for
// a worker writes its close frame (nothing after it), and the pool's stop
// writes what was handed to it before the workers end.
func TestWriterWorkerShutdownWhileQueued(t *testing.T) {
	pool := newWriterPool(1)
	stats := &HubStats{}
	gate := &gateConn{fakeConn: newFakeConn(t), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	busy := readySession(gate, pool, 16, stats)
	busy.push(42, 1, []byte("holds the worker"))
	<-gate.entered

	c1, c2 := newFakeConn(t), newFakeConn(t)
	closed := readySession(c1, pool, 16, stats)
	queued := readySession(c2, pool, 16, stats)
	closed.push(42, 1, []byte("dropped"))
	queued.push(42, 1, []byte("written"))
	closed.close(CloseDraining, "server draining")

	stopped := make(chan struct{})
	go func() { pool.stop(); close(stopped) }()
	close(gate.gate)
	<-stopped

	closed.wait()
	select {
	case code := <-c1.closes:
		if code != CloseDraining {
			t.Fatalf("close code %d, want %d", code, CloseDraining)
		}
	default:
		t.Fatal("no close frame")
	}
	c1.none(t)
	if got := c2.next(t); got != "written" {
		t.Fatalf("queued session got %q", got)
	}
	// After the stop, frames are written by the session's goroutine.
	queued.push(42, 2, []byte("later"))
	if got := c2.next(t); got != "later" {
		t.Fatalf("after the stop: %q", got)
	}
	for _, s := range []*session{busy, queued} {
		s.close(1000, "")
		s.wait()
	}
}

// TestWriterWorkerControlFrames: the hub's ping and the pong owed to a
// client's ping go out through the worker, before the frames queued with
// them.
func TestWriterWorkerControlFrames(t *testing.T) {
	pool := newWriterPool(1)
	defer pool.stop()
	c := newFakeConn(t)
	s := readySession(c, pool, 16, &HubStats{})
	defer s.wait()
	defer s.close(1000, "")
	s.ping()
	s.pong([]byte("are you there"))
	select {
	case p := <-c.pongs:
		if p != "are you there" {
			t.Fatalf("pong %q", p)
		}
	case <-time.After(time.Second):
		t.Fatal("no pong")
	}
	if c.pings.Load() != 1 {
		t.Fatalf("%d pings, want 1", c.pings.Load())
	}
}
