// Package ws is the WebSocket side of a presence node: the Fiber upgrade
// and session handler, the frame protocol, the sessions with their
// outbound queues, and the hub that fans presence changes out to them.
package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/api/auth"
)

// defaultRequestTimeout bounds each actor request of a session when
// Deps.RequestTimeout is not set.
const defaultRequestTimeout = 5 * time.Second

// Deps are what the WebSocket endpoint works with besides its settings.
type Deps struct {
	// Router reaches the user actors.
	Router Router
	// Verifier authenticates the handshake.
	Verifier *auth.Verifier
	// System is the node's actor system; the hub spawns its actor there.
	System *actor.ActorSystem
	// Logger defaults to slog.Default.
	Logger *slog.Logger
	// RequestTimeout bounds each actor request a session makes (default
	// 5s).
	RequestTimeout time.Duration
}

// Server is the WebSocket endpoint of one node: it upgrades and
// authenticates connections and runs their sessions on its hub.
type Server struct {
	cfg      Config
	deps     Deps
	hub      *Hub
	log      *slog.Logger
	draining atomic.Bool
	// handlers counts session handlers still running.
	handlers atomic.Int64
	// listener, once Listener wrapped the node's listener, resets the
	// connections of slow consumers.
	listener atomic.Pointer[connListener]
	// origins restricts the handshake's Origin (nil: any).
	origins *Origins
	// writers write the sessions' frames (writers.go).
	writers *writerPool
	// sessionOpts are the settings every session shares.
	sessionOpts sessionOptions
}

// New spawns the hub in d.System and starts its pinger; zero fields of cfg
// take their DefaultConfig values.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Router == nil || d.Verifier == nil || d.System == nil {
		return nil, errors.New("ws: Router, Verifier and System are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = defaultRequestTimeout
	}
	cfg = cfg.withDefaults()
	origins, err := ParseOrigins(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("allowed origins: %w", err)
	}
	hub, err := NewHub(d.System, d.Router, cfg.MaxSessionsPerUser, d.Logger)
	if err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	go hub.runPinger(cfg.PingInterval)
	s := &Server{cfg: cfg, deps: d, hub: hub, log: d.Logger, origins: origins, writers: newWriterPool(cfg.Writers)}
	s.sessionOpts = sessionOptions{
		queue: cfg.SendQueue, writeTimeout: cfg.WriteTimeout,
		stats: hub.Stats(), reset: s.resetConn, pool: s.writers,
	}
	return s, nil
}

// Config returns the settings in force (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Hub returns the server's hub.
func (s *Server) Hub() *Hub { return s.hub }

// Listener wraps the node's listener: every accepted connection gets the
// configured socket send buffer, and a slow consumer's connection can be
// reset. Serve HTTP on what it returns.
func (s *Server) Listener(ln net.Listener) net.Listener {
	l := &connListener{Listener: ln, sendBuffer: s.cfg.SocketSendBuffer,
		drainBytes: DefaultDrainBytes, drainTime: DefaultDrainTime, lingering: make(chan struct{}, maxLingering)}
	s.listener.Store(l)
	return l
}

// resetConn makes the close of the client connection from remote a reset.
func (s *Server) resetConn(remote net.Addr) {
	if l := s.listener.Load(); l != nil {
		l.reset(remote)
	}
}

// Drain refuses new sessions (503 at the handshake).
func (s *Server) Drain() { s.draining.Store(true) }

// CloseAll closes every session with code and reason and refuses new ones.
// The writer workers stop once they have written what they were handed;
// the close frames, and anything after, are written by the sessions' own
// goroutines.
func (s *Server) CloseAll(code int, reason string) {
	s.hub.CloseAll(code, reason)
	s.writers.stop()
}

// Wait blocks until every session handler has finished (detached, told
// the actors, released its connection) or ctx ends.
func (s *Server) Wait(ctx context.Context) error {
	for s.handlers.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// requestCtx bounds one actor request of a session.
func (s *Server) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.deps.RequestTimeout)
}
