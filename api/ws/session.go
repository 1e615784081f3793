package ws

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// closeGrace bounds the writes of a session being closed.
const closeGrace = time.Second

// conn is the write side of a WebSocket connection, and its deadlines
// (*websocket.Conn; a fake in tests).
type conn interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	WriteMessage(messageType int, data []byte) error
	NetConn() net.Conn
}

// subscription is one user a session watches. Until the subscribe answer
// is sent (ready), pushes are held in pending so the client always gets the
// "subscribed" acknowledgement first and then the newest state once.
type subscription struct {
	version uint64
	ready   bool
	pending []byte
	pendVer uint64
}

// sessionOptions are what a session needs besides its connection and user:
// the node's settings, shared by all its sessions (one pointer each).
type sessionOptions struct {
	queue        int           // outbound queue bound, in frames
	writeTimeout time.Duration // bounds writing one batch
	stats        *HubStats
	// reset, when set, makes the close of the connection to remote a TCP
	// reset (for a client that does not read).
	reset func(remote net.Addr)
	// pool, when set, writes the session's frames; without it (or when
	// its backlog is full) a goroutine of the session's own does.
	pool *writerPool
}

// session is one WebSocket connection of an authenticated user.
//
// An idle session costs as little as we can make it, because a node holds
// tens of thousands: its outbound queue holds a slice only while frames
// wait, and it has a writer only while there is something to write
// (frames, a ping from the hub's pinger, a pong, or the close frame): a
// turn on one of the node's writer workers (writers.go), or a goroutine of
// its own for what cannot be written at once and for the close frame. The
// reader goroutine (the handler's) is the only one an idle session keeps.
//
// Invariants, all kept by the session's own methods (nothing outside this
// type touches its fields or its mutex):
//   - mu guards queue, subs and the closing state; every frame is queued
//     under mu together with the subscription version that admits it, so
//     frames of one user leave in version order and a version already
//     sent is never sent again.
//   - At most one writer has the session (queue.writing): a worker's turn
//     or a goroutine, which may pass the session on to a goroutine but
//     never runs beside it. It is the only code that writes to the
//     connection (the reader's pongs and close echo go through the queue
//     too), and writers counts it so the handler can wait for it before
//     the library recycles the connection.
//   - Until a subscription is ready (its snapshot queued), pushes for that
//     user are held in pending, newest wins, and queued right after it.
//   - Once closing, nothing more is queued; the writer sends the close
//     frame (unless the session was aborted) and stops for good. close and
//     abort do no network I/O themselves, so they may run under the hub's
//     lock, from any goroutine, any number of times.
//   - A full queue ends the session as a slow consumer (abort): pushes
//     never block the hub.
//   - lastPing belongs to the hub's pinger goroutine (pingIfDue).
type session struct {
	conn conn
	// sock is the byte stream under conn, which the writers put frames on.
	sock socket
	user auth.Identity
	opts *sessionOptions

	done chan struct{}
	// writers counts the writer that has the session (a worker's turn or
	// a goroutine).
	writers sync.WaitGroup

	mu          sync.Mutex
	queue       outQueue
	subs        map[int64]*subscription
	closing     bool
	closeCode   int
	closeReason string
	abrupt      bool
	closeOnce   sync.Once

	lastPing time.Time
	// deadline is when the session's credentials lapse (its token's exp
	// plus the leeway), in Unix nanoseconds; 0: never. A refresh moves
	// it, the hub's pinger closes the session once it passes
	// (lifetime.go).
	deadline atomic.Int64
}

// newSession makes the session of user on c, whose frames go to sock (nil:
// c itself if it is a socket, else its net.Conn, written from goroutines
// only).
func newSession(c conn, user auth.Identity, sock socket, opts *sessionOptions) *session {
	if sock == nil {
		if cs, ok := c.(socket); ok {
			sock = cs
		} else {
			sock = streamSocket{c.NetConn()}
		}
	}
	return &session{
		conn:  c,
		sock:  sock,
		user:  user,
		opts:  opts,
		done:  make(chan struct{}),
		queue: newOutQueue(opts.queue),
		subs:  make(map[int64]*subscription),
	}
}

// identity is the session's user; it never changes.
func (s *session) identity() auth.Identity { return s.user }

// push queues a presence frame for user id at version v, unless the session
// already sent that version or a newer one. It never blocks: a full queue
// disconnects the session as a slow consumer.
func (s *session) push(id int64, v uint64, frame []byte) {
	s.mu.Lock()
	sub, ok := s.subs[id]
	if !ok || s.closing {
		s.mu.Unlock()
		return
	}
	if !sub.ready {
		if v > sub.pendVer {
			sub.pending, sub.pendVer = frame, v
		}
		s.mu.Unlock()
		return
	}
	if v != 0 && v <= sub.version {
		s.mu.Unlock()
		s.opts.stats.StaleDropped.Add(1)
		return
	}
	sub.version = v
	full := !s.enqueueLocked(frame)
	s.mu.Unlock()
	if full {
		s.slowConsumer()
	}
}

// enqueueLocked queues a frame without blocking and makes sure a writer
// has the session; false means the queue is full. s.mu must be held.
func (s *session) enqueueLocked(frame []byte) bool {
	ok, wake := s.queue.push(frame)
	if !ok {
		return false
	}
	s.opts.stats.FramesQueued.Add(1)
	if wake {
		s.startWriter()
	}
	return true
}

// startWriter hands the session to the writer the queue asked for: a
// worker of the pool, or a goroutine of its own when there is no pool or
// its backlog is full. s.mu must be held.
func (s *session) startWriter() {
	s.writers.Add(1)
	if s.opts.pool != nil && s.opts.pool.submit(s) {
		return
	}
	s.opts.stats.WriterGoroutines.Add(1)
	go s.writeLoop(nil)
}

func (s *session) slowConsumer() {
	s.opts.stats.SlowDisconnects.Add(1)
	s.abort(CloseSlowConsumer, "slow consumer: outbound queue full")
}

// send queues a control frame of the protocol (ack, error).
func (s *session) send(frame []byte) {
	s.mu.Lock()
	full := !s.closing && !s.enqueueLocked(frame)
	s.mu.Unlock()
	if full {
		s.slowConsumer()
	}
}

// sendPaced queues a frame from the session's own reader goroutine (a
// subscribe answer), waiting while the queue is more than half full so
// that pushes from the hub, which never wait, keep room. It gives up when
// the session closes.
func (s *session) sendPaced(frame []byte) bool {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		if n := s.queue.len(); n < s.opts.queue/2 || n == 0 {
			s.enqueueLocked(frame)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
		select {
		case <-s.done:
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

// pingIfDue tells whether the session is due a ping at now, pinging once
// per interval from the first time the pinger sees it. Only the hub's
// pinger goroutine calls it.
func (s *session) pingIfDue(now time.Time, every time.Duration) bool {
	if s.lastPing.IsZero() {
		s.lastPing = now // first seen: its first ping is an interval away
		return false
	}
	if now.Sub(s.lastPing) < every {
		return false
	}
	s.lastPing = now
	return true
}

// ping asks the writer for a ping frame; the hub's pinger calls it.
func (s *session) ping() {
	s.mu.Lock()
	if !s.closing && s.queue.ping() {
		s.startWriter()
	}
	s.mu.Unlock()
}

// pong asks the writer to answer the client's ping with payload; the
// reader's ping handler calls it, so that only the writer writes.
func (s *session) pong(payload []byte) {
	s.mu.Lock()
	if !s.closing && s.queue.pongFor(payload) {
		s.startWriter()
	}
	s.mu.Unlock()
}

// closed is closed when the session starts closing.
func (s *session) closed() <-chan struct{} { return s.done }

func (s *session) isClosing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// extendRead pushes the read deadline out by d, unless the session is
// closing: shutdown ends the reader with a deadline in the past, which must
// not be overwritten (checking after setting closes the race).
func (s *session) extendRead(d time.Duration) error {
	err := s.conn.SetReadDeadline(time.Now().Add(d))
	if s.isClosing() {
		return s.conn.SetReadDeadline(time.Now())
	}
	return err
}

// wait blocks until no writer has the session any more; the handler calls it
// after close, before the library recycles the connection.
func (s *session) wait() { s.writers.Wait() }
