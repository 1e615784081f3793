// Package baseline holds the bare servers every figure of the load
// generator is compared with: a Fiber app with presenced's server settings
// that answers a fixed body to everything (the HTTP baseline), and a
// minimal WebSocket broadcast hub on the same app (the fan-out baseline).
// presencectl bench --serve-baseline serves them.
package baseline

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Body is what the baseline app answers to everything: a fixed
// JSON body the size of the heartbeat answer.
var Body = []byte(`{"message":"Heartbeat received"}`)

// NewApp is the bare Fiber app every HTTP figure is compared with:
// the server settings presenced uses (buffer sizes, limits, timeouts), no
// middleware, no authentication, no actor; every method and path gets the
// same small JSON body, so the same wrk script drives it and presenced.
// routes (the WebSocket baseline's) are registered before that catch-all.
func NewApp(routes ...func(*fiber.App)) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "baseline",
		DisableStartupMessage: true,
		BodyLimit:             16 << 10,
		ReadBufferSize:        8 << 10,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	for _, r := range routes {
		r(app)
	}
	app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(Body)
	})
	return app
}

// Serve serves the baseline app, with the WebSocket fan-out baseline
// (hub.go) fanning out as f says, on addr until ctx ends or for at most d.
func Serve(ctx context.Context, addr string, f Fanout, d time.Duration, log io.Writer) error {
	srv, err := Listen(addr, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "bench: baseline Fiber app on http://%s (for at most %s): fixed body for everything but "+
		"GET /ws/presence, PUT /users/me/status (WebSocket fan-out baseline, %s writes), /metrics and /debug/pprof/\n", srv.Addr, d, f)
	select {
	case err := <-srv.served:
		srv.hub.Close(5 * time.Second)
		return err
	case <-ctx.Done():
	case <-time.After(d):
	}
	err = srv.Stop()
	fmt.Fprintf(log, "bench: baseline stopped: %s\n", srv.hub)
	return err
}

// Server is a running baseline app (REST and WebSocket parts).
type Server struct {
	// Addr is the address it listens on.
	Addr   string
	app    *fiber.App
	hub    *Hub
	served chan error
}

// Listen serves the baseline app, its hub fanning out as f says, on addr
// until Stop.
func Listen(addr string, f Fanout) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("baseline listen on %s: %w", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), hub: newHub(f), served: make(chan error, 1)}
	s.app = NewApp(s.hub.Routes)
	go func() { s.served <- s.app.Listener(ln) }()
	return s, nil
}

// Stop closes the WebSocket sessions and shuts the app down.
func (s *Server) Stop() error {
	s.hub.Close(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.app.ShutdownWithContext(ctx)
}
