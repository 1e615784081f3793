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

	mu        sync.Mutex
	subs      map[int64]*subscription
	closing   bool
	closeOnce sync.Once
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
		s.close(CloseSlowConsumer, "slow consumer: outbound queue full")
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
		s.close(CloseSlowConsumer, "slow consumer: outbound queue full")
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

// close ends the session with a close frame; safe to call many times and
// from any goroutine. Closing the network connection unblocks the reader.
func (s *session) close(code int, reason string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.done)
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		_ = s.conn.NetConn().Close()
	})
}

// writeLoop writes queued frames and pings until the session closes.
func (s *session) writeLoop(pingEvery, writeTimeout time.Duration) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case frame := <-s.out:
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
			return
		}
	}
}
