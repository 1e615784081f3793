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
type session struct {
	hub  *Hub
	conn *websocket.Conn
	user auth.Identity

	out  chan []byte
	done chan struct{}

	mu          sync.Mutex
	subs        map[int64]*subscription
	closing     bool
	closeCode   int
	closeReason string
	abrupt      bool
	closeOnce   sync.Once
}

func newSession(h *Hub, conn *websocket.Conn, user auth.Identity, queue int) *session {
	return &session{
		hub:  h,
		conn: conn,
		user: user,
		out:  make(chan []byte, queue),
		done: make(chan struct{}),
		subs: make(map[int64]*subscription),
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

// enqueueLocked queues a frame without blocking; false means the queue is
// full. s.mu must be held.
func (s *session) enqueueLocked(frame []byte) bool {
	select {
	case s.out <- frame:
		s.hub.stats.FramesQueued.Add(1)
		return true
	default:
		return false
	}
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
		if len(s.out) < cap(s.out)/2 {
			select {
			case s.out <- frame:
				s.hub.stats.FramesQueued.Add(1)
				return true
			case <-s.done:
				return false
			}
		}
		select {
		case <-s.done:
			return false
		case <-time.After(time.Millisecond):
		}
	}
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

// writeLoop writes queued frames and pings until the session closes.
func (s *session) writeLoop(pingEvery, writeTimeout time.Duration) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case frame := <-s.out:
			select {
			case <-s.done:
				s.sendClose()
				return
			default:
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				s.close(websocket.CloseGoingAway, "write failed")
				return
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				s.close(websocket.CloseGoingAway, "ping failed")
				return
			}
		case <-s.done:
			s.sendClose()
			return
		}
	}
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
