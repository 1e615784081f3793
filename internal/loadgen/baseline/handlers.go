package baseline

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/presence-cluster/presence/wire"
)

func detail(c *fiber.Ctx, code int, detail string) error {
	c.Status(code)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendDetail(nil, detail))
}

// upgrade reads the subscriptions before the upgrade, as presenced does
// (which also verifies the token there; the baseline does not).
func (h *Hub) upgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return detail(c, fiber.StatusUpgradeRequired, "WebSocket upgrade required")
	}
	var s session
	tok := c.Query("token")
	if tok == "" {
		tok, _ = strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	}
	s.own, _ = unverifiedSub(tok)
	if q := c.Query("user_ids"); q != "" {
		seen := map[int64]struct{}{}
		for part := range strings.SplitSeq(q, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
			if err != nil || id <= 0 {
				return detail(c, fiber.StatusUnprocessableEntity, "user_ids must be a comma-separated list of positive integers")
			}
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				s.ids = append(s.ids, id)
			}
		}
		if len(s.ids) > maxSubs {
			return detail(c, fiber.StatusUnprocessableEntity, "user_ids exceeds the subscription limit of "+strconv.Itoa(maxSubs))
		}
	}
	c.Locals(localsSession, s)
	return c.Next()
}

// serve runs one connection: register, then read and discard client
// frames until the connection ends.
func (h *Hub) serve(c *websocket.Conn) {
	s, _ := c.Locals(localsSession).(session)
	conn := &wsConn{ws: c.Conn, fd: -1, out: make(chan []byte, sendQueue), done: make(chan struct{})}
	if h.fanout == DirectWrites {
		conn.fd = socketFD(c.NetConn())
	}
	h.handlers.Add(1)
	defer h.handlers.Done()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		conn.writeLoop()
	}()
	// The library recycles the connection when this returns: the writer
	// must be gone by then.
	defer func() { <-writerDone }()
	defer conn.stop()
	ok := h.register(conn, s)
	// Unregistered before the library closes the socket: a direct write
	// never reaches a descriptor number reused by another connection.
	defer h.unregister(conn)
	if !ok {
		return
	}

	ws := c.Conn
	ws.SetReadLimit(maxFrame)
	extend := func() error { return ws.SetReadDeadline(time.Now().Add(2 * pingInterval)) }
	_ = extend()
	ws.SetPongHandler(func(string) error { return extend() })
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		select {
		case <-conn.done: // aborted: keep the deadline in the past
			return
		default:
			_ = extend()
		}
	}
}

// putStatus is PUT /users/me/status without authentication or actor: the
// caller is the bearer token's sub (not verified), its version rises by
// one, one presence_update frame is encoded and queued to every
// connection registered under the caller, and the answer is the status
// record (AppendStatus), whose "version" the generator matches frames on.
func (h *Hub) putStatus(c *fiber.Ctx) error {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	id, name := unverifiedSub(tok)
	if !ok || id <= 0 {
		return detail(c, fiber.StatusUnauthorized, "Could not validate credentials")
	}
	var body struct {
		IsOnline *bool `json:"is_online"`
		IsBusy   *bool `json:"is_busy"`
	}
	if err := json.Unmarshal(c.Body(), &body); err != nil {
		return detail(c, fiber.StatusUnprocessableEntity, "Request body is not valid JSON")
	}
	now := time.Now()
	var slow []*wsConn
	h.mu.Lock()
	u := h.user(id)
	st := u.state
	if st.CreatedAt == 0 {
		st.CreatedAt = now.UnixMicro()
	}
	if name != "" {
		st.Username = name
	}
	st.IsOnline = true
	if body.IsOnline != nil {
		st.IsOnline = *body.IsOnline
	}
	if body.IsBusy != nil {
		st.IsBusy = *body.IsBusy
	}
	st.LastSeen, st.UpdatedAt = now.UnixMicro(), now.UnixMicro()
	st.Version++
	resp := wire.AppendStatus(make([]byte, 0, 256), st)
	// One frame for all subscribers; nobody writes to it after this.
	frame := wire.AppendUpdateFrame(make([]byte, 0, 256), st, now)
	if h.fanout == DirectWrites {
		slow = h.writeDirect(u, directFrame(frame))
	} else {
		slow = h.queue(u, frame)
	}
	h.mu.Unlock()
	for _, conn := range slow {
		h.slow.Add(1)
		conn.abort()
	}
	h.changes.Add(1)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(resp)
}

// queue hands frame to the writer of every connection of u; it returns
// those whose queue is full. h.mu is held.
func (h *Hub) queue(u *userEntry, frame []byte) (slow []*wsConn) {
	for conn := range u.conns {
		select {
		case conn.out <- frame:
			h.queued.Add(1)
		default:
			slow = append(slow, conn)
		}
	}
	return slow
}

// writeDirect writes the framed update to every connection of u's socket
// itself; it returns those whose socket did not take all of it. h.mu is
// held.
func (h *Hub) writeDirect(u *userEntry, framed []byte) (slow []*wsConn) {
	for conn := range u.conns {
		if !sendAll(conn.fd, framed) {
			slow = append(slow, conn)
			continue
		}
		h.queued.Add(1)
	}
	return slow
}

// unverifiedSub reads sub (a positive integer) and username from a JWT's
// payload without checking its signature, expiry or anything else: the
// baseline has no authentication cost.
func unverifiedSub(tok string) (int64, string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return 0, ""
	}
	var cl struct {
		Sub      string `json:"sub"`
		Username string `json:"username"`
	}
	if json.Unmarshal(payload, &cl) != nil {
		return 0, ""
	}
	id, err := strconv.ParseInt(cl.Sub, 10, 64)
	if err != nil || id <= 0 {
		return 0, ""
	}
	return id, cl.Username
}
