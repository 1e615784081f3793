package api

import (
	"errors"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/api/auth"
)

// Close codes a session ends with (RFC 6455 section 7.4).
const (
	// CloseSlowConsumer: the client did not read fast enough and its
	// outbound queue filled up.
	CloseSlowConsumer = websocket.ClosePolicyViolation
	// CloseTooManySessions: the user already has the most sessions allowed.
	CloseTooManySessions = websocket.ClosePolicyViolation
	// CloseDraining: the node is shutting down; reconnect (to another node).
	CloseDraining = websocket.CloseServiceRestart
	// CloseFrameTooLarge: a frame exceeded the size limit.
	CloseFrameTooLarge = websocket.CloseMessageTooBig
	// ClosePolicyViolation: the client kept sending over its frame rate
	// limit.
	ClosePolicyViolation = websocket.ClosePolicyViolation
)

var errDraining = errors.New("node is draining")

// closeGrace bounds the writes of a session being closed.
const closeGrace = time.Second

// subscription is one user a session watches. Until the subscribe answer
// is sent (ready), pushes are held in pending so the client always gets the
// "subscribed" acknowledgement first and then the newest state once.
type subscription struct {
	version uint64
	ready   bool
	pending []byte
	pendVer uint64
}

// session is one WebSocket connection of an authenticated user.
//
// An idle session costs as little as we can make it, because a node holds
// tens of thousands: its outbound queue is a slice that exists only while
// frames wait, and its writer goroutine runs only while there is something
// to write (frames, a ping from the hub's pinger, or the close frame). The
// reader goroutine is the only one an idle session keeps.
type session struct {
	hub          *Hub
	conn         *websocket.Conn
	user         auth.Identity
	maxQueue     int
	writeTimeout time.Duration

	done chan struct{}
	// writers counts the writer goroutine; the handler waits for it
	// before the library recycles the connection.
	writers sync.WaitGroup

	mu          sync.Mutex
	queue       [][]byte // frames waiting for the writer, at most maxQueue
	pingDue     bool     // the pinger asked for a ping
	writing     bool     // a writer goroutine is running
	closeSent   bool     // the writer is done with the connection
	subs        map[int64]*subscription
	closing     bool
	closeCode   int
	closeReason string
	abrupt      bool
	closeOnce   sync.Once

	// lastPing is when the hub's pinger last pinged the session; only the
	// pinger's goroutine touches it.
	lastPing time.Time
}

func newSession(h *Hub, conn *websocket.Conn, user auth.Identity, queue int, writeTimeout time.Duration) *session {
	return &session{
		hub:          h,
		conn:         conn,
		user:         user,
		maxQueue:     queue,
		writeTimeout: writeTimeout,
		done:         make(chan struct{}),
		subs:         make(map[int64]*subscription),
	}
}

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
		s.hub.stats.StaleDropped.Add(1)
		return
	}
	sub.version = v
	full := !s.enqueueLocked(frame)
	s.mu.Unlock()
	if full {
		s.hub.stats.SlowDisconnects.Add(1)
		s.abort(CloseSlowConsumer, "slow consumer: outbound queue full")
	}
}

// enqueueLocked queues a frame without blocking and makes sure a writer
// runs; false means the queue is full. s.mu must be held.
func (s *session) enqueueLocked(frame []byte) bool {
	if len(s.queue) >= s.maxQueue {
		return false
	}
	s.queue = append(s.queue, frame)
	s.hub.stats.FramesQueued.Add(1)
	s.wakeWriterLocked()
	return true
}

// wakeWriterLocked starts the writer goroutine unless it runs already.
// s.mu must be held.
func (s *session) wakeWriterLocked() {
	if s.writing || s.closeSent {
		return
	}
	s.writing = true
	s.writers.Add(1)
	go s.writeLoop()
}

// send queues a control frame of the protocol (ack, error).
func (s *session) send(frame []byte) {
	s.mu.Lock()
	full := !s.closing && !s.enqueueLocked(frame)
	s.mu.Unlock()
	if full {
		s.hub.stats.SlowDisconnects.Add(1)
		s.abort(CloseSlowConsumer, "slow consumer: outbound queue full")
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
		if len(s.queue) < s.maxQueue/2 || len(s.queue) == 0 {
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

// ping asks the writer for a ping frame; the hub's pinger calls it.
func (s *session) ping() {
	s.mu.Lock()
	if !s.closing {
		s.pingDue = true
		s.wakeWriterLocked()
	}
	s.mu.Unlock()
}

// addPending marks the ids new to the session as subscribed but not yet
// acknowledged: pushes for them are held until the answer is sent.
func (s *session) addPending(ids []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.subs[id]; !ok {
			s.subs[id] = &subscription{}
		}
	}
}

// newIDs returns the ids the session does not watch yet.
func (s *session) newIDs(ids []int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fresh []int64
	for _, id := range ids {
		if _, ok := s.subs[id]; !ok {
			fresh = append(fresh, id)
		}
	}
	return fresh
}

// subscribedIDs lists the users the session watches.
func (s *session) subscribedIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	return ids
}

func (s *session) subscriptionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// close ends the session: the writer sends a close frame with code and
// reason, and the reader is unblocked so the connection is released. It does
// no network I/O itself, so it is safe under the hub's lock, and it is safe
// to call many times and from any goroutine.
func (s *session) close(code int, reason string) { s.shutdown(code, reason, false) }

// abort ends the session of a client that does not read: the writer may be
// blocked on its full socket, so both directions are cut at once, no close
// frame is attempted, and the connection is reset (unsent data dropped)
// rather than closed.
func (s *session) abort(code int, reason string) { s.shutdown(code, reason, true) }

func (s *session) shutdown(code int, reason string, abrupt bool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.closeCode, s.closeReason, s.abrupt = code, reason, abrupt
		if !abrupt {
			s.wakeWriterLocked() // to write the close frame
		}
		s.mu.Unlock()
		close(s.done)
		// fasthttp ignores Close on a hijacked connection until the handler
		// returns, so deadlines are what unblock the reader (and, for an
		// abort, the writer).
		now := time.Now()
		_ = s.conn.NetConn().SetReadDeadline(now)
		if abrupt {
			if s.hub.resetConn != nil {
				s.hub.resetConn(s.conn.NetConn().RemoteAddr())
			}
			_ = s.conn.NetConn().SetWriteDeadline(now)
		} else {
			// A write blocked on a client that stopped reading gets a
			// short while to finish (and the close frame after it), not
			// the full write timeout.
			_ = s.conn.NetConn().SetWriteDeadline(now.Add(closeGrace))
		}
	})
}

// writeLoop writes what is queued (a ping, then frames in order) until
// nothing is left, and exits; the next frame starts a new one. Once the
// session closes it writes the close frame and stops for good.
func (s *session) writeLoop() {
	defer s.writers.Done()
	// spare is a written batch's emptied slice, handed back to the queue
	// so that a frame to an idle session (a fan-out) needs no allocation;
	// only small ones are kept, so an idle session holds a few words.
	var spare [][]byte
	for {
		s.mu.Lock()
		if s.closing {
			s.closeSent = true
			s.writing = false
			s.queue = nil
			s.mu.Unlock()
			s.sendClose()
			return
		}
		frames, ping := s.queue, s.pingDue
		if len(frames) == 0 && !ping {
			if frames == nil {
				s.queue = spare
			}
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.queue, s.pingDue, spare = spare, false, nil
		s.mu.Unlock()

		// One deadline for the whole batch: a client that cannot take
		// it within the write timeout is too slow anyway. (The library
		// applies it to the socket before every write, so it costs the
		// same per frame whichever way it is set.)
		deadline := time.Now().Add(s.writeTimeout)
		_ = s.conn.SetWriteDeadline(deadline)
		if ping {
			if err := s.conn.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
				s.writeFailed("ping failed")
				return
			}
		}
		for _, frame := range frames {
			if s.isClosing() {
				break // the loop's next turn writes the close frame
			}
			if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				s.writeFailed("write failed")
				return
			}
		}
		if cap(frames) <= spareQueue {
			clear(frames)
			spare = frames[:0]
		}
	}
}

// spareQueue is the largest emptied queue a session keeps for its next
// frames.
const spareQueue = 4

func (s *session) isClosing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// writeFailed ends a session whose connection broke under the writer: no
// close frame can follow.
func (s *session) writeFailed(reason string) {
	s.mu.Lock()
	s.closeSent = true
	s.writing = false
	s.queue = nil
	s.mu.Unlock()
	s.close(websocket.CloseGoingAway, reason)
}

// sendClose writes the close frame of a session closed with close (not
// abort), from the writer goroutine.
func (s *session) sendClose() {
	s.mu.Lock()
	code, reason, abrupt := s.closeCode, s.closeReason, s.abrupt
	s.mu.Unlock()
	if abrupt {
		return
	}
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
}

// markReady ends the hold on id's pushes after its snapshot (version v) was
// queued: a push that arrived meanwhile and is newer goes out now.
func (s *session) markReady(id int64, v uint64) {
	s.mu.Lock()
	sub := s.subs[id]
	if sub == nil || sub.ready {
		s.mu.Unlock()
		return
	}
	sub.ready = true
	sub.version = v
	var full bool
	if sub.pendVer > v && !s.closing {
		sub.version = sub.pendVer
		full = !s.enqueueLocked(sub.pending)
	}
	sub.pending, sub.pendVer = nil, 0
	s.mu.Unlock()
	if full {
		s.hub.stats.SlowDisconnects.Add(1)
		s.abort(CloseSlowConsumer, "slow consumer: outbound queue full")
	}
}
