package ws

import (
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"golang.org/x/time/rate"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// maxDroppedFrames is how many frames in a row a session may send over its
// rate limit before it is closed.
const maxDroppedFrames = 100

// serveSession runs one WebSocket session: it attaches to the hub (which
// holds the user online), answers the URL's subscriptions, then reads
// client frames until the connection ends.
func (s *Server) serveSession(c *websocket.Conn) {
	s.handlers.Add(1)
	defer s.handlers.Add(-1)
	user, exp, ids := identityOf(c)
	conn := c.Conn
	sess := newSession(conn, user, s.socketOf(conn.NetConn()), &s.sessionOpts)
	sess.setExpiry(exp, s.deps.Verifier.Leeway())
	// The library recycles the connection when this function returns, so
	// the writer must be gone by then (close, deferred below, runs first
	// and starts no writer after the close frame's).
	defer sess.wait()
	defer sess.close(fws.CloseNormalClosure, "")

	// Attaching asks the user's actor, possibly on another node: a deep
	// stack, kept off the reader's (see offStack).
	attached := false
	offStack(func() { attached = s.attach(sess) })
	if !attached {
		return
	}
	defer func() {
		ctx, cancel := s.requestCtx()
		s.hub.detach(ctx, sess)
		cancel()
	}()

	// A session always receives its own user's changes (other devices).
	offStack(func() {
		s.subscribe(sess, []int64{user.UserID}, false)
		if len(ids) > 0 {
			s.subscribe(sess, ids, true)
		}
	})
	s.readLoop(sess, conn)
}

// attachRetries are the waits before attaching again after a failure
// that may pass (the owner busy or briefly refusing, as in a reconnect
// storm after a drain): retrying on the open connection costs the node one
// message, where a 1013 close costs the client a backoff and the node a
// new handshake, token check and subscribe, which is load on a node that
// is already short of it.
var attachRetries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// attach registers the session with the hub, retrying a failure that may
// pass; when it fails for good the session is closed with the code that
// tells the client what to do.
func (s *Server) attach(sess *session) bool {
	ctx, cancel := s.requestCtx()
	err := s.hub.attach(ctx, sess)
	cancel()
	for _, wait := range attachRetries {
		if err == nil || errors.Is(err, errTooManySessions) || errors.Is(err, errDraining) {
			break
		}
		select {
		case <-sess.closed():
			return false
		case <-time.After(wait):
		}
		s.hub.stats.AttachRetries.Add(1)
		ctx, cancel := s.requestCtx()
		err = s.hub.attach(ctx, sess)
		cancel()
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, errTooManySessions):
		sess.close(CloseTooManySessions, "too many sessions for this user")
	case errors.Is(err, errDraining):
		sess.close(CloseDraining, "server draining")
	default:
		s.log.Warn("session attach failed", slog.Int64("user_id", sess.identity().UserID), slog.Any("err", err))
		sess.close(fws.CloseTryAgainLater, "presence unavailable, retry")
	}
	return false
}

// readLoop reads client frames until the connection ends: pongs and frames
// keep it alive, a frame over the size limit closes it with 1009, and a
// client that keeps sending over its frame rate is cut off with 1008.
func (s *Server) readLoop(sess *session, conn *fws.Conn) {
	pongWait := 2 * s.cfg.PingInterval
	conn.SetReadLimit(int64(s.cfg.MaxFrame))
	_ = sess.extendRead(pongWait)
	conn.SetPongHandler(func(string) error { return sess.extendRead(pongWait) })
	// The library's own handlers would write the pong and the close echo
	// from this goroutine, beside the session's writer, which puts frames
	// on the socket directly: they go through the session's queue instead.
	conn.SetPingHandler(func(data string) error {
		sess.pong([]byte(data)) // a copy: the library reuses its buffer
		return nil
	})
	conn.SetCloseHandler(func(code int, _ string) error {
		sess.close(code, "")
		return nil
	})
	limiter := rate.NewLimiter(rate.Limit(s.cfg.FrameRate), s.cfg.FrameBurst)
	dropped := 0
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			if errors.Is(err, fws.ErrReadLimit) {
				sess.close(CloseFrameTooLarge, "frame too large")
			}
			return
		}
		_ = sess.extendRead(pongWait)
		if !limiter.Allow() {
			// A client that keeps flooding after being told is cut off.
			if dropped++; dropped > maxDroppedFrames {
				sess.close(ClosePolicyViolation, "frame rate limit exceeded")
				return
			}
			sess.send(wire.AppendErrorFrame(nil, "rate limit exceeded: frame dropped"))
			continue
		}
		dropped = 0
		offStack(func() { s.handleFrame(sess, mt, data) })
	}
}

// offStack runs f on a goroutine of its own and waits for it. A session's
// reader goroutine lives as long as its connection, and Go gives back at
// most half of a grown stack per garbage collection: work that needs a
// deep stack (a subscribe's reads, an actor request) would leave each idle
// session holding 8-16 KiB of stack. Run elsewhere, it leaves the reader at
// the few KiB its blocking read needs. Frames are rare enough (a heartbeat
// every tens of seconds) for a goroutine each. A panic in f is raised
// again here, where the session's recover handler sees it.
func offStack(f func()) {
	var panicked any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		f()
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
}

// handleFrame answers one client frame.
func (s *Server) handleFrame(sess *session, mt int, data []byte) {
	if mt != fws.TextMessage {
		sess.send(wire.AppendErrorFrame(nil, "binary frames are not supported; send JSON text frames"))
		return
	}
	typ, ids, token, err := parseClientFrame(data)
	if err != nil {
		sess.send(wire.AppendErrorFrame(nil, err.Error()))
		return
	}
	user := sess.identity()
	switch typ {
	case frameHeartbeat:
		s.signOfLife(user.UserID, &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{UserId: user.UserID, Username: user.Username}}})
	case frameSubscribe, frameUnsubscribe:
		s.signOfLife(user.UserID, &messages.Envelope{Body: &messages.Envelope_Activity{Activity: &messages.Activity{UserId: user.UserID, Username: user.Username}}})
		if typ == frameSubscribe {
			s.subscribe(sess, ids, true)
		} else {
			s.unsubscribe(sess, ids)
		}
	case frameRefresh:
		s.signOfLife(user.UserID, &messages.Envelope{Body: &messages.Envelope_Activity{Activity: &messages.Activity{UserId: user.UserID, Username: user.Username}}})
		s.refresh(sess, token)
	}
}

// signOfLife tells the user's actor that the client is active.
func (s *Server) signOfLife(userID int64, env *messages.Envelope) {
	ctx, cancel := s.requestCtx()
	defer cancel()
	if _, err := s.deps.Router.Request(ctx, userID, env); err != nil {
		s.log.Warn("sign of life not delivered", slog.Int64("user_id", userID), slog.Any("err", err))
	}
}

func (s *Server) recoverSession(*websocket.Conn) {
	if e := recover(); e != nil {
		s.log.Error("websocket session panic", slog.Any("panic", e), slog.String("stack", string(debug.Stack())))
	}
}
