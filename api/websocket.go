package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
)

// Defaults of the WebSocket settings in Config.
const (
	DefaultWSMaxFrame           = 64 << 10
	DefaultWSMaxSubscriptions   = 1000
	DefaultWSMaxSessionsPerUser = 10
	DefaultWSSendQueue          = 256
	DefaultWSPingInterval       = 30 * time.Second
	DefaultWSWriteTimeout       = 10 * time.Second
)

// maxDroppedFrames is how many frames in a row a session may send over its
// rate limit before it is closed.
const maxDroppedFrames = 100

const (
	localsIdentity = "presence.identity"
	localsIDs      = "presence.user_ids"
)

// wsFrame is a client frame: {"type": ..., "user_ids": [...]}.
type wsFrame struct {
	Type    string          `json:"type"`
	UserIDs json.RawMessage `json:"user_ids"`
}

// wsUpgrade authenticates a WebSocket handshake before upgrading it, so a
// bad token gets a plain HTTP 401 with the REST error body.
func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return writeDetail(c, fiber.StatusUpgradeRequired, "WebSocket upgrade required")
	}
	token := c.Query("token")
	if token == "" {
		var ok bool
		if token, ok = bearerToken(c.Get(fiber.HeaderAuthorization)); !ok {
			return unauthorized(c)
		}
	}
	id, err := s.deps.Verifier.Verify(token)
	if err != nil {
		return unauthorized(c)
	}
	var ids []int64
	if q := c.Query("user_ids"); q != "" {
		if ids, err = parseUserIDList(q, s.cfg.WSMaxSubscriptions); err != nil {
			return err
		}
	}
	if s.hub.SessionCount(id.UserID) >= s.cfg.WSMaxSessionsPerUser {
		return writeDetail(c, fiber.StatusTooManyRequests, "Too many sessions for this user")
	}
	if s.draining.Load() {
		return writeDetail(c, fiber.StatusServiceUnavailable, "Draining")
	}
	c.Locals(localsIdentity, id)
	c.Locals(localsIDs, ids)
	// gofiber/contrib/websocket copies every query argument, header and
	// cookie of the handshake into the connection, for the connection's
	// whole life. What the session needs is parsed above; dropping the
	// rest first keeps credentials out of long-lived memory and a long
	// user_ids list (up to ~8 KiB) out of every session's footprint.
	args := c.Context().QueryArgs()
	args.Del("token")
	args.Del("user_ids")
	c.Request().Header.Del(fiber.HeaderAuthorization)
	c.Request().Header.Del(fiber.HeaderCookie)
	c.Request().Header.DelAllCookies()
	return c.Next()
}

// parseUserIDList parses ?user_ids= of the WebSocket URL: like the batch
// endpoint's, but capped by the subscription limit instead of 50.
func parseUserIDList(q string, limit int) ([]int64, error) {
	var ids []int64
	seen := map[int64]struct{}{}
	for _, part := range bytes.Split([]byte(q), []byte(",")) {
		id, err := parseUserID(string(bytes.TrimSpace(part)))
		if err != nil {
			return nil, errValidation("user_ids must be a comma-separated list of positive integers")
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	if len(ids) > limit {
		return nil, errValidation("user_ids exceeds the subscription limit of " + strconv.Itoa(limit))
	}
	return ids, nil
}

// serveSession runs one WebSocket session: it attaches to the hub (which
// holds the user online), answers the URL's subscriptions, then reads
// client frames until the connection ends.
func (s *Server) serveSession(c *websocket.Conn) {
	s.hub.handlers.Add(1)
	defer s.hub.handlers.Add(-1)
	user, _ := c.Locals(localsIdentity).(auth.Identity)
	ids, _ := c.Locals(localsIDs).([]int64)
	conn := c.Conn
	sess := newSession(s.hub, conn, user, s.cfg.WSSendQueue, s.cfg.WSWriteTimeout)
	// The library recycles the connection when this function returns, so
	// the writer must be gone by then (close, deferred below, runs first
	// and starts no writer after the close frame's).
	defer sess.writers.Wait()
	defer sess.close(fws.CloseNormalClosure, "")

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	err := s.hub.attach(ctx, sess)
	cancel()
	switch {
	case errors.Is(err, errTooManySessions):
		sess.close(CloseTooManySessions, "too many sessions for this user")
		return
	case errors.Is(err, errDraining):
		sess.close(CloseDraining, "server draining")
		return
	case err != nil:
		s.log.Warn("session attach failed", slog.Int64("user_id", user.UserID), slog.Any("err", err))
		sess.close(fws.CloseTryAgainLater, "presence unavailable, retry")
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
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

	pongWait := 2 * s.cfg.WSPingInterval
	conn.SetReadLimit(int64(s.cfg.WSMaxFrame))
	// extendRead pushes the read deadline out, unless the session is
	// closing: close() ends the reader with a deadline in the past, which
	// must not be overwritten (checking after setting closes the race).
	extendRead := func() error {
		err := conn.SetReadDeadline(time.Now().Add(pongWait))
		select {
		case <-sess.done:
			return conn.SetReadDeadline(time.Now())
		default:
			return err
		}
	}
	_ = extendRead()
	conn.SetPongHandler(func(string) error { return extendRead() })
	limiter := newFrameLimiter(s.cfg.WSFrameRate, s.cfg.WSFrameBurst)
	dropped := 0
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			if errors.Is(err, fws.ErrReadLimit) {
				sess.close(CloseFrameTooLarge, "frame too large")
			}
			return
		}
		_ = extendRead()
		if !limiter.Allow() {
			// A client that keeps flooding after being told is cut off.
			if dropped++; dropped > maxDroppedFrames {
				sess.close(ClosePolicyViolation, "frame rate limit exceeded")
				return
			}
			sess.send(appendErrorFrame(nil, "rate limit exceeded: frame dropped"))
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

func (s *Server) handleFrame(sess *session, mt int, data []byte) {
	if mt != fws.TextMessage {
		sess.send(appendErrorFrame(nil, "binary frames are not supported; send JSON text frames"))
		return
	}
	var f wsFrame
	if err := json.Unmarshal(data, &f); err != nil || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		sess.send(appendErrorFrame(nil, "frame is not a JSON object"))
		return
	}
	user := sess.user
	switch f.Type {
	case "heartbeat":
		s.signOfLife(user, &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{UserId: user.UserID, Username: user.Username}}})
	case "subscribe", "unsubscribe":
		ids, err := parseFrameIDs(f.UserIDs)
		if err != nil {
			sess.send(appendErrorFrame(nil, err.Error()))
			return
		}
		s.signOfLife(user, &messages.Envelope{Body: &messages.Envelope_Activity{Activity: &messages.Activity{UserId: user.UserID, Username: user.Username}}})
		if f.Type == "subscribe" {
			s.subscribe(sess, ids, true)
		} else {
			s.unsubscribe(sess, ids)
		}
	case "":
		sess.send(appendErrorFrame(nil, "frame has no type"))
	default:
		sess.send(appendErrorFrame(nil, "unknown frame type "+strconv.Quote(f.Type)+"; want subscribe, unsubscribe or heartbeat"))
	}
}

// parseFrameIDs parses a frame's user_ids: an array of bare JSON numbers
// that are positive integers.
func parseFrameIDs(raw json.RawMessage) ([]int64, error) {
	errBad := errors.New("user_ids must be an array of positive integers")
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		if len(trimmed) == 0 {
			return nil, errors.New("user_ids is required: an array of positive integers")
		}
		return nil, errBad
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(trimmed, &elems); err != nil {
		return nil, errBad
	}
	ids := make([]int64, 0, len(elems))
	seen := make(map[int64]struct{}, len(elems))
	for _, e := range elems {
		text := string(bytes.TrimSpace(e))
		if text == "" || text[0] < '0' || text[0] > '9' {
			return nil, errBad // a string, null, an object...
		}
		id, err := parseUserID(text)
		if err != nil {
			return nil, errBad
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// signOfLife tells the user's actor that the client is active.
func (s *Server) signOfLife(user auth.Identity, env *messages.Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if _, err := s.deps.Router.Request(ctx, user.UserID, env); err != nil {
		s.log.Warn("sign of life not delivered", slog.Int64("user_id", user.UserID), slog.Any("err", err))
	}
}

// subscribe adds ids to the session. With ack, the client gets
// {"type":"subscribed"} and then the current presence of each known user.
// Until a user's snapshot is queued, pushes for that user are held (newest
// wins) and queued right after it, so the client never sees an older
// version after a newer one. Answers are paced (sendPaced): a subscribe to
// a thousand users is not a reason to drop a slow reader.
func (s *Server) subscribe(sess *session, ids []int64, ack bool) {
	if ack && len(sess.newIDs(ids))+sess.subscriptionCount() > s.cfg.WSMaxSubscriptions+1 {
		sess.send(appendErrorFrame(nil, "subscription limit of "+strconv.Itoa(s.cfg.WSMaxSubscriptions)+" per connection reached"))
		return
	}
	sess.addPending(ids)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	states, err := s.hub.subscribe(ctx, sess, ids)
	cancel()
	if err != nil {
		s.log.Warn("subscribe incomplete", slog.Int64("user_id", sess.user.UserID), slog.Any("err", err))
	}
	if ack && !sess.sendPaced(AppendIDsFrame(nil, "subscribed", ids)) {
		return
	}
	now := time.Now()
	for i, id := range ids {
		var snap []byte
		var v uint64
		if st := states[i]; st != nil {
			snap, v = AppendUpdateFrame(nil, st, now), st.GetVersion()
		}
		sess.mu.Lock()
		sub := sess.subs[id]
		if sub == nil || sess.closing {
			sess.mu.Unlock()
			continue
		}
		if sub.ready && v < sub.version {
			snap = nil // a newer state was pushed meanwhile and already sent
		}
		if sub.ready {
			sub.version = max(sub.version, v)
		}
		wasReady := sub.ready
		sess.mu.Unlock()

		if ack && snap != nil && !sess.sendPaced(snap) {
			return
		}
		if !wasReady {
			sess.markReady(id, v)
		}
	}
}

func (s *Server) unsubscribe(sess *session, ids []int64) {
	own := sess.user.UserID
	drop := make([]int64, 0, len(ids))
	sess.mu.Lock()
	for _, id := range ids {
		if id == own {
			continue // a session always receives its own user's updates
		}
		if _, ok := sess.subs[id]; ok {
			delete(sess.subs, id)
			drop = append(drop, id)
		}
	}
	sess.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	s.hub.unsubscribe(ctx, sess, drop)
	cancel()
	sess.send(AppendIDsFrame(nil, "unsubscribed", ids))
}

// AppendUpdateFrame appends a presence_update frame of st, stamped now.
func AppendUpdateFrame(b []byte, st *messages.UserState, now time.Time) []byte {
	b = append(b, `{"type":"presence_update","data":`...)
	b = AppendPresence(b, st)
	b = append(b, `,"timestamp":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// AppendIDsFrame appends a {"type": typ, "user_ids": ids} frame (the
// subscribed and unsubscribed answers).
func AppendIDsFrame(b []byte, typ string, ids []int64) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","user_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, "]}"...)
}

func appendErrorFrame(b []byte, detail string) []byte {
	b = append(b, `{"type":"error","detail":`...)
	b = appendString(b, detail)
	return append(b, '}')
}
