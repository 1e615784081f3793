package baseline

import (
	"fmt"
	"net/http"
	"net/http/pprof"
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
// With DirectWrites (direct.go) it is the write floor instead: a loop of
// send(2) calls, the least any server can spend on a frame.
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
	sendQueue     = 256 // api.DefaultWSSendQueue
	maxSubs       = 1000
	maxFrame      = 64 << 10
	pingInterval  = 30 * time.Second
	writeTimeout  = 10 * time.Second
	closeGrace    = time.Second
	localsSession = "baseline.session"
)

// Hub maps user ids to the connections subscribed to them. One
// mutex guards everything: registration and a change's fan-out are
// serialized, as in a single-goroutine hub, and the "subscribed" answer
// is queued in the same critical section as the registration, so every
// change whose PUT arrives after a client read its answer reaches it, and
// no update ever goes out before the answer.
type Hub struct {
	fanout Fanout
	mu     sync.Mutex
	users  map[int64]*userEntry
	conns  map[*wsConn]struct{}
	closed bool

	handlers sync.WaitGroup
	open     atomic.Int64
	changes  atomic.Int64
	queued   atomic.Int64
	slow     atomic.Int64
	reg      *prometheus.Registry
}

type userEntry struct {
	state *messages.UserState
	conns map[*wsConn]struct{}
}

// wsConn is one WebSocket connection: its reader is the handler
// goroutine, its writer a goroutine draining out.
type wsConn struct {
	ws      *fws.Conn
	ids     []int64 // registered under these (the URL's and the caller's own)
	fd      int     // the socket's descriptor, for DirectWrites
	out     chan []byte
	done    chan struct{}
	once    sync.Once
	aborted atomic.Bool
}

// session is what the upgrade check hands to the WebSocket handler.
type session struct {
	own int64 // the token's sub, 0 without a readable token
	ids []int64
}

// newHub returns an empty hub that fans out as f says, with its own
// Prometheus registry (Go and process collectors,
// presence_ws_sessions_open), served on GET /metrics.
func newHub(f Fanout) *Hub {
	h := &Hub{fanout: f, users: map[int64]*userEntry{}, conns: map[*wsConn]struct{}{}, reg: prometheus.NewRegistry()}
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

// Routes adds the WebSocket baseline's routes to app; the fixed-body
// catch-all must be registered after them.
func (h *Hub) Routes(app *fiber.App) {
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

// register files conn under its ids and its own user, and queues the
// "subscribed" answer, in one critical section (see Hub).
func (h *Hub) register(conn *wsConn, s session) bool {
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
	if len(s.ids) == 0 {
		return true
	}
	answer := wire.AppendIDsFrame(nil, "subscribed", s.ids)
	if h.fanout == DirectWrites {
		return sendAll(conn.fd, directFrame(answer))
	}
	conn.out <- answer // the queue is empty
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

func (h *Hub) unregister(conn *wsConn) {
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
func (h *Hub) user(id int64) *userEntry {
	u := h.users[id]
	if u == nil {
		u = &userEntry{state: &messages.UserState{UserId: id}, conns: map[*wsConn]struct{}{}}
		h.users[id] = u
	}
	return u
}

// Close ends every connection (their readers return, their writers send a
// close frame) and refuses new ones; it waits at most d for the handlers.
func (h *Hub) Close(d time.Duration) {
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

// String sums up what the hub did, for the log line at the end.
func (h *Hub) String() string {
	return fmt.Sprintf("%d changes, %d frames queued, %d slow disconnects", h.changes.Load(), h.queued.Load(), h.slow.Load())
}
