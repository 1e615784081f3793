package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// The WebSocket half of the baseline: the floor of "one change to many
// subscribers" on this machine. It is what a bare, idiomatic broadcast
// server does with the same library and buffer sizes as presenced, and
// nothing more: no authentication (the bearer token's sub is read, not
// verified), no actors, no store, one mutex-guarded map from user id to
// connections, one writer goroutine per connection fed by a bounded
// channel. The generator's fan-out command runs against it unchanged.
//
// Routes (registered before the fixed-body catch-all, in other Fiber
// method/prefix buckets than the wrk scripts' requests, so the HTTP
// baseline answers those exactly as before):
//
//	GET /ws/presence?user_ids=1,2  upgrade; {"type":"subscribed",...}; then pushes
//	PUT /users/me/status           bump the caller's version, push one presence_update
//	GET /metrics                   Go and process collectors, presence_ws_sessions_open
//	GET /debug/pprof/...           net/http/pprof (heap?gc=1 for --pprof-url, profile)
const (
	baselineQueue         = 256 // ws.DefaultConfig().SendQueue
	baselineMaxSubs       = 1000
	baselineMaxFrame      = 64 << 10
	baselinePingInterval  = 30 * time.Second
	baselineWriteTimeout  = 10 * time.Second
	baselineCloseGrace    = time.Second
	localsBaselineSession = "baseline.session"
)

// baselineHub maps user ids to the connections subscribed to them. One
// mutex guards everything: registration and a change's fan-out are
// serialized, as in a single-goroutine hub, and the "subscribed" answer
// is queued in the same critical section as the registration, so every
// change whose PUT arrives after a client read its answer reaches it, and
// no update ever goes out before the answer.
type baselineHub struct {
	mu     sync.Mutex
	users  map[int64]*baselineUser
	conns  map[*baselineConn]struct{}
	closed bool

	handlers sync.WaitGroup
	open     atomic.Int64
	changes  atomic.Int64
	queued   atomic.Int64
	slow     atomic.Int64
	reg      *prometheus.Registry
}

type baselineUser struct {
	state *messages.UserState
	conns map[*baselineConn]struct{}
}

// baselineConn is one WebSocket connection: its reader is the handler
// goroutine, its writer a goroutine draining out.
type baselineConn struct {
	ws      *fws.Conn
	ids     []int64 // registered under these (the URL's and the caller's own)
	out     chan []byte
	done    chan struct{}
	once    sync.Once
	aborted atomic.Bool
}

// baselineSession is what the upgrade check hands to the WebSocket handler.
type baselineSession struct {
	own int64 // the token's sub, 0 without a readable token
	ids []int64
}

func newBaselineHub() *baselineHub {
	h := &baselineHub{users: map[int64]*baselineUser{}, conns: map[*baselineConn]struct{}{}, reg: prometheus.NewRegistry()}
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presence_ws_sessions_open", Help: "WebSocket sessions open on the baseline."},
			func() float64 { return float64(h.open.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presence_baseline_changes_total", Help: "PUT /users/me/status answered."},
			func() float64 { return float64(h.changes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presence_baseline_frames_queued_total", Help: "presence_update frames queued to connections."},
			func() float64 { return float64(h.queued.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presence_baseline_slow_disconnects_total", Help: "Connections cut because their queue was full."},
			func() float64 { return float64(h.slow.Load()) }),
	)
	return h
}

// routes adds the WebSocket baseline's routes to app; the fixed-body
// catch-all must be registered after them.
func (h *baselineHub) routes(app *fiber.App) {
	app.Get("/ws/presence", h.upgrade, websocket.New(h.serve, websocket.Config{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  func(*websocket.Conn) { _ = recover() },
	}))
	app.Put("/users/me/status", h.putStatus)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{})))
	app.Get("/debug/pprof/*", adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
		case "profile":
			pprof.Profile(w, r)
		case "trace":
			pprof.Trace(w, r)
		default:
			pprof.Index(w, r)
		}
	}))
}

func baselineDetail(c *fiber.Ctx, code int, detail string) error {
	c.Status(code)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendDetail(nil, detail))
}

// upgrade reads the subscriptions before the upgrade, as presenced does
// (which also verifies the token there; the baseline does not).
func (h *baselineHub) upgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return baselineDetail(c, fiber.StatusUpgradeRequired, "WebSocket upgrade required")
	}
	var s baselineSession
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
				return baselineDetail(c, fiber.StatusUnprocessableEntity, "user_ids must be a comma-separated list of positive integers")
			}
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				s.ids = append(s.ids, id)
			}
		}
		if len(s.ids) > baselineMaxSubs {
			return baselineDetail(c, fiber.StatusUnprocessableEntity, "user_ids exceeds the subscription limit of "+strconv.Itoa(baselineMaxSubs))
		}
	}
	c.Locals(localsBaselineSession, s)
	return c.Next()
}

// serve runs one connection: register, then read and discard client
// frames until the connection ends.
func (h *baselineHub) serve(c *websocket.Conn) {
	s, _ := c.Locals(localsBaselineSession).(baselineSession)
	conn := &baselineConn{ws: c.Conn, out: make(chan []byte, baselineQueue), done: make(chan struct{})}
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
	if !h.register(conn, s) {
		return
	}
	defer h.unregister(conn)

	ws := c.Conn
	ws.SetReadLimit(baselineMaxFrame)
	extend := func() error { return ws.SetReadDeadline(time.Now().Add(2 * baselinePingInterval)) }
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

// register files conn under its ids and its own user, and queues the
// "subscribed" answer, in one critical section (see baselineHub).
func (h *baselineHub) register(conn *baselineConn, s baselineSession) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[conn] = struct{}{}
	h.open.Add(1)
	ids := s.ids
	if s.own > 0 && !containsID(ids, s.own) {
		// presenced sends a session its own user's changes too.
		ids = append(ids[:len(ids):len(ids)], s.own)
	}
	conn.ids = ids
	for _, id := range ids {
		h.user(id).conns[conn] = struct{}{}
	}
	if len(s.ids) > 0 {
		conn.out <- ws.AppendIDsFrame(nil, "subscribed", s.ids) // the queue is empty
	}
	return true
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (h *baselineHub) unregister(conn *baselineConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[conn]; !ok {
		return
	}
	delete(h.conns, conn)
	h.open.Add(-1)
	for _, id := range conn.ids {
		if u := h.users[id]; u != nil {
			delete(u.conns, conn)
		}
	}
}

// user returns id's entry, creating it; h.mu must be held.
func (h *baselineHub) user(id int64) *baselineUser {
	u := h.users[id]
	if u == nil {
		u = &baselineUser{state: &messages.UserState{UserId: id}, conns: map[*baselineConn]struct{}{}}
		h.users[id] = u
	}
	return u
}

// putStatus is PUT /users/me/status without authentication or actor: the
// caller is the bearer token's sub (not verified), its version rises by
// one, one presence_update frame is encoded and queued to every
// connection registered under the caller, and the answer is the status
// record (AppendStatus), whose "version" the generator matches frames on.
func (h *baselineHub) putStatus(c *fiber.Ctx) error {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	id, name := unverifiedSub(tok)
	if !ok || id <= 0 {
		return baselineDetail(c, fiber.StatusUnauthorized, "Could not validate credentials")
	}
	var body struct {
		IsOnline *bool `json:"is_online"`
		IsBusy   *bool `json:"is_busy"`
	}
	if err := json.Unmarshal(c.Body(), &body); err != nil {
		return baselineDetail(c, fiber.StatusUnprocessableEntity, "Request body is not valid JSON")
	}
	now := time.Now()
	var slow []*baselineConn
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
	frame := ws.AppendUpdateFrame(make([]byte, 0, 256), st, now)
	for conn := range u.conns {
		select {
		case conn.out <- frame:
			h.queued.Add(1)
		default:
			slow = append(slow, conn)
		}
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

// writeLoop writes queued frames (one write per frame, with a deadline)
// and a ping every 30 s, as presenced's session writer does, until the
// connection stops.
func (c *baselineConn) writeLoop() {
	ping := time.NewTicker(baselinePingInterval)
	defer ping.Stop()
	for {
		select {
		case frame := <-c.out:
			select {
			case <-c.done:
				c.sendClose()
				return
			default:
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(baselineWriteTimeout))
			if err := c.ws.WriteMessage(fws.TextMessage, frame); err != nil {
				c.abort()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(fws.PingMessage, nil, time.Now().Add(baselineWriteTimeout)); err != nil {
				c.abort()
				return
			}
		case <-c.done:
			c.sendClose()
			return
		}
	}
}

func (c *baselineConn) sendClose() {
	if !c.aborted.Load() {
		_ = c.ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseNormalClosure, ""), time.Now().Add(baselineCloseGrace))
	}
}

// stop ends the writer (after a close frame); the reader has returned.
func (c *baselineConn) stop() { c.once.Do(func() { close(c.done) }) }

// abort cuts both directions at once: the writer may be blocked on a
// client that does not read.
func (c *baselineConn) abort() {
	c.aborted.Store(true)
	c.stop()
	now := time.Now()
	_ = c.ws.NetConn().SetReadDeadline(now)
	_ = c.ws.NetConn().SetWriteDeadline(now)
}

// close ends every connection (their readers return, their writers send a
// close frame) and refuses new ones; it waits at most d for the handlers.
func (h *baselineHub) close(d time.Duration) {
	h.mu.Lock()
	h.closed = true
	for conn := range h.conns {
		conn.stop()
		_ = conn.ws.NetConn().SetReadDeadline(time.Now())
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func (h *baselineHub) String() string {
	return fmt.Sprintf("%d changes, %d frames queued, %d slow disconnects", h.changes.Load(), h.queued.Load(), h.slow.Load())
}
