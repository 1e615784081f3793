// Package api is the HTTP and WebSocket front of a presence node: Fiber
// handlers that authenticate the caller and talk to user actors only by
// message, through a Router.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	fiberrecover "github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// Defaults for Config.
const (
	DefaultBodyLimit      = 16 << 10
	DefaultHeaderLimit    = 8 << 10
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// Router delivers messages to user actors wherever they live; the
// WebSocket hub talks to actors through it. routing.Router implements it.
type Router interface {
	// ws.Router is what the WebSocket hub needs: Request, RequestAll,
	// ReadPresence and Owner.
	ws.Router
}

// Presence is what the REST handlers ask of user actors, answers decoded.
// Errors are routing's domain errors (routing.ErrNotFound,
// routing.ErrUnavailable, *routing.Refusal, ...), which errors.go maps to
// HTTP statuses. routing.Router implements it.
type Presence interface {
	// Status returns the user's state, creating the record if needed.
	Status(ctx context.Context, userID int64, username string) (*messages.UserState, error)
	// UpdateStatus applies u and returns the new state.
	UpdateStatus(ctx context.Context, u *messages.UpdateStatus) (*messages.UserState, error)
	// Heartbeat records a sign of life and returns the new state; advised
	// is the heartbeat interval the answer advises the client.
	Heartbeat(ctx context.Context, userID int64, username string, advised time.Duration) (*messages.UserState, error)
	// ReadPresence is Router.ReadPresence.
	ReadPresence(ctx context.Context, ids []int64) ([]*messages.UserState, error)
	// Cleanup makes every user actor of the cluster re-check its timers and
	// returns the summed counts and the users changed; with dryRun it
	// changes nothing and reports what it would do.
	Cleanup(ctx context.Context, dryRun bool) (*messages.CleanupCount, error)
	// DisconnectUser closes the WebSocket sessions of userID on every node
	// (close code 4003) and returns how many it closed.
	DisconnectUser(ctx context.Context, userID int64) (int64, error)
	// Visibility and SetVisibility read and change a user's visibility
	// setting (visibility.go).
	visibilitySetter
}

// Config holds the HTTP front's own settings. A zero field means its
// default (see DefaultConfig).
type Config struct {
	// BodyLimit is the largest request body accepted (413 beyond).
	BodyLimit int
	// HeaderLimit is the largest request head accepted (431 beyond).
	HeaderLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request,
	// writing a response and an idle keep-alive connection.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// RequestTimeout bounds one request to a user actor.
	RequestTimeout time.Duration

	// WS holds the WebSocket settings (zero fields: ws.DefaultConfig).
	WS ws.Config

	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed to call REST (CORS) and open WebSockets; "*" allows any.
	// Empty: no CORS headers, and WebSocket handshakes from any origin
	// (tokens are not ambient credentials).
	AllowedOrigins []string

	// WriteRate and WriteBurst limit each user's writes (PUT status,
	// heartbeat) on this node; beyond them the answer is 429 with
	// Retry-After. A negative WriteRate disables the limit.
	WriteRate  float64
	WriteBurst int

	// OfflineAfter is the user actors' offline_after: the heartbeat
	// interval advised is a third of it (zero: actors.DefaultOfflineAfter).
	OfflineAfter time.Duration
	// HeartbeatBudget is the REST heartbeats per second this node aims to
	// receive: above it, the advised interval grows (and users' offline
	// deadlines with it) until clients following it bring the rate down.
	// 0: no budget, the advice is always a third of OfflineAfter.
	HeartbeatBudget int
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		BodyLimit:      DefaultBodyLimit,
		HeaderLimit:    DefaultHeaderLimit,
		ReadTimeout:    DefaultReadTimeout,
		WriteTimeout:   DefaultWriteTimeout,
		IdleTimeout:    DefaultIdleTimeout,
		RequestTimeout: DefaultRequestTimeout,
		WriteRate:      DefaultWriteRate,
		WriteBurst:     DefaultWriteBurst,
		WS:             ws.DefaultConfig(),
	}
}

// withDefaults fills the zero (or negative) fields of c from
// DefaultConfig; a negative WriteRate stays: it disables the limit.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.BodyLimit, d.BodyLimit)
	setDefault(&c.HeaderLimit, d.HeaderLimit)
	setDefault(&c.ReadTimeout, d.ReadTimeout)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.IdleTimeout, d.IdleTimeout)
	setDefault(&c.RequestTimeout, d.RequestTimeout)
	if c.WriteRate == 0 {
		c.WriteRate = d.WriteRate
	}
	setDefault(&c.WriteBurst, d.WriteBurst)
	return c
}

// Deps are what the HTTP front is given rather than configured with.
type Deps struct {
	// Presence serves the REST handlers; Router the WebSocket hub. A
	// routing.Router is both. Required.
	Presence Presence
	Router   Router
	// Verifier checks bearer tokens. Required.
	Verifier *auth.Verifier
	// System is the node's actor system; the WebSocket hub spawns its
	// actor there. Required.
	System *actor.ActorSystem
	// Ready reports whether the node can serve (store reachable, joined);
	// nil means always ready.
	Ready func() error
	// ClusterStatus answers GET /admin/cluster with a JSON-encodable value;
	// nil leaves the route out.
	ClusterStatus func(ctx context.Context) (any, error)
	// Metrics, when set, receives the API's Prometheus collectors, and
	// MetricsHandler serves GET /metrics.
	Metrics        prometheus.Registerer
	MetricsHandler http.Handler
	// Logger receives the API's logs; nil is slog.Default().
	Logger *slog.Logger
	// Now is the clock used to judge busy_until; nil is time.Now.
	Now func() time.Time
	// HeartbeatNow is the clock the heartbeat rate is measured by (the
	// user actors' clock); nil is time.Now.
	HeartbeatNow func() time.Time
}

// Server is the Fiber application of one node.
type Server struct {
	cfg     Config
	deps    Deps
	app     *fiber.App
	ws      *ws.Server
	metrics *httpMetrics
	advice  *heartbeatAdvisor
	writes  *userLimiter
	// stopSweep ends the limiter sweeper.
	stopSweep chan struct{}
	sweepOnce sync.Once
	log       *slog.Logger
	draining  atomic.Bool
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Presence == nil || deps.Router == nil || deps.Verifier == nil || deps.System == nil {
		return nil, errors.New("api: Presence, Router, Verifier and System are required")
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger}
	origins, err := ws.ParseOrigins(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("api: allowed origins: %w", err)
	}
	if len(cfg.WS.AllowedOrigins) == 0 {
		cfg.WS.AllowedOrigins = cfg.AllowedOrigins
	}
	wsrv, err := ws.New(cfg.WS, ws.Deps{
		Router: deps.Router, Verifier: deps.Verifier, System: deps.System,
		Logger: deps.Logger, RequestTimeout: cfg.RequestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.ws = wsrv
	heartbeatNow := deps.HeartbeatNow
	if heartbeatNow == nil {
		heartbeatNow = time.Now
	}
	s.advice = newHeartbeatAdvisor(heartbeatNow, cmp.Or(cfg.OfflineAfter, actors.DefaultOfflineAfter), cfg.HeartbeatBudget)
	if cfg.WriteRate > 0 {
		s.writes = newUserLimiter(cfg.WriteRate, cfg.WriteBurst)
		s.stopSweep = make(chan struct{})
		go s.sweepLimiters()
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "presenced",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		ReadBufferSize:        cfg.HeaderLimit,
		// Return each connection's read buffer to the pool when nothing is
		// buffered. Above all for WebSockets: fasthttp otherwise hands the
		// request's 8 KiB reader to the upgraded connection for its whole
		// life, the largest single cost of an idle session.
		ReduceMemoryUsage: true,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorHandler:      s.handleError,
	})
	// Fiber answers a method it does not know with plain text before any
	// middleware runs; answer it as the API answers everything else.
	inner := s.app.Server().Handler
	s.app.Server().Handler = func(ctx *fasthttp.RequestCtx) {
		if !knownMethod(ctx.Method()) {
			ctx.SetStatusCode(fiber.StatusNotImplemented)
			ctx.SetContentType(fiber.MIMEApplicationJSON)
			ctx.SetBody(wire.AppendDetail(nil, "Method not implemented"))
			return
		}
		inner(ctx)
	}
	if deps.Metrics != nil {
		s.registerMetrics(deps.Metrics)
		s.app.Use(s.observe)
	}
	s.app.Use(fiberrecover.New(fiberrecover.Config{EnableStackTrace: true, StackTraceHandler: s.logPanic}))
	if origins != nil {
		s.app.Use(corsMiddleware(origins))
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/openapi.json", s.getOpenAPI)
	if s.deps.MetricsHandler != nil {
		s.app.Get("/metrics", adaptor.HTTPHandler(s.deps.MetricsHandler))
	}

	authed := s.authenticate
	s.app.Get("/users/me/status", authed, s.getMyStatus)
	s.app.Put("/users/me/status", authed, s.limitWrites, s.putMyStatus)
	s.app.Post("/users/me/heartbeat", authed, s.limitWrites, s.postHeartbeat)
	s.app.Get("/users/presence", authed, s.getPresenceBatch)
	s.app.Get("/users/:user_id/presence", authed, s.getPresence)
	s.app.Post("/admin/cleanup-presence", authed, s.requireAdmin, s.postCleanup)
	s.app.Post("/admin/users/:user_id/disconnect", authed, s.requireAdmin, s.postDisconnect)
	s.app.Get("/users/me/visibility", authed, s.getMyVisibility)
	s.app.Put("/users/me/visibility", authed, s.limitWrites, s.putMyVisibility)
	s.app.Put("/admin/users/:user_id/visibility", authed, s.requireAdmin, s.putUserVisibility)
	if s.deps.ClusterStatus != nil {
		s.app.Get("/admin/cluster", authed, s.requireAdmin, s.getCluster)
	}
	s.ws.Mount(s.app, "/ws/presence")
	s.browserRoutes(authed)
}

// Hub returns the WebSocket hub.
func (s *Server) Hub() *ws.Hub { return s.ws.Hub() }

// WS returns the WebSocket endpoint.
func (s *Server) WS() *ws.Server { return s.ws }

func setDefault[T int | float64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// App exposes the Fiber app, for tests and for mounting more routes.
func (s *Server) App() *fiber.App { return s.app }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.app.Listener(s.ws.Listener(ln))
}

// Drain makes /readyz fail so load balancers stop sending new work, and
// refuses new WebSocket sessions.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.ws.Drain()
}

// Shutdown stops accepting connections, closes WebSocket sessions with
// 1012 so clients reconnect elsewhere, and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	if s.stopSweep != nil {
		s.sweepOnce.Do(func() { close(s.stopSweep) })
	}
	s.ws.CloseAll(ws.CloseDraining, "server draining")
	err := s.app.ShutdownWithContext(ctx)
	if werr := s.ws.Wait(ctx); werr != nil && err == nil {
		err = fmt.Errorf("sessions still open: %w", werr)
	}
	return err
}

// sweepLimiters forgets idle rate-limit buckets every minute.
func (s *Server) sweepLimiters() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stopSweep:
			return
		case now := <-t.C:
			s.writes.sweep(now)
		}
	}
}

func knownMethod(m []byte) bool {
	switch string(m) {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
		fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace:
		return true
	}
	return false
}
