// Package cluster turns presence actors into a service: it assembles a
// node (store, actor system, user actors, HTTP front) and routes each
// user's messages to the node that owns the user.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/store"
)

// BoltFileName is the embedded store's file inside the data directory.
const BoltFileName = "presence.db"

// Node is one running presence node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	lastSeen *store.LastSeenWriter
	system   *actor.ActorSystem
	host     *actors.Host
	router   *Router
	api      *api.Server
	ln       net.Listener
	served   chan error
}

// Start opens the store, starts the actors and serves HTTP on
// cfg.HTTPAddr. It returns once the node is listening.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	cfg = cfg.withDefaults()
	n = &Node{cfg: cfg, log: cfg.Logger.With(slog.String("node", cfg.NodeName)), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.closeStore()
		}
	}()

	verifier, err := n.openVerifier()
	if err != nil {
		return nil, err
	}
	if n.store, err = openStore(cfg); err != nil {
		return nil, err
	}
	n.lastSeen = store.NewLastSeenWriter(n.store, cfg.LastSeenFlush, n.log)

	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return n.log.With(slog.String("lib", "protoactor"))
	}))
	n.host, err = actors.NewHost(n.system, actors.Config{
		Store:           n.store,
		LastSeen:        n.lastSeen,
		OfflineAfter:    cfg.OfflineAfter,
		DisconnectGrace: cfg.DisconnectGrace,
		PassivateAfter:  cfg.PassivateAfter,
		Clock:           cfg.Clock,
		Logger:          n.log,
	}, nil)
	if err != nil {
		return nil, err
	}
	n.router = NewRouter(n.host)

	n.api, err = api.New(api.Config{
		Router:         n.router,
		Verifier:       verifier,
		BodyLimit:      cfg.BodyLimit,
		RequestTimeout: cfg.RequestTimeout,
		Logger:         n.log,
		System:         n.system,

		WSMaxFrame:           cfg.WSMaxFrame,
		WSMaxSubscriptions:   cfg.WSMaxSubscriptions,
		WSMaxSessionsPerUser: cfg.WSMaxSessionsPerUser,
		WSSendQueue:          cfg.WSSendQueue,
		WSPingInterval:       cfg.WSPingInterval,
	})
	if err != nil {
		return nil, err
	}
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	go func() { n.served <- n.api.Serve(n.ln) }()

	// Records left online or busy by a previous run have no actor to expire
	// them: activate them now so their timers run again.
	go n.rearm()
	n.log.Info("node started", slog.String("http", n.ln.Addr().String()), slog.String("store", storeKind(cfg.Store)))
	return n, nil
}

func (n *Node) openVerifier() (*auth.Verifier, error) {
	ac := auth.Config{
		PublicKeysFile: n.cfg.JWTPublicKeys,
		Issuer:         n.cfg.JWTIssuer,
		Audience:       n.cfg.JWTAudience,
		Leeway:         n.cfg.JWTLeeway,
	}
	switch {
	case n.cfg.JWTSecret != "":
		ac.Secret = []byte(n.cfg.JWTSecret)
	case n.cfg.JWTPublicKeys == "":
		secret, err := auth.LoadOrCreateSecret(n.cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("dev JWT secret: %w", err)
		}
		ac.Secret = secret
		n.log.Info("no JWT key configured: using the generated secret; mint tokens with presencectl token",
			slog.String("file", filepath.Join(n.cfg.DataDir, auth.SecretFileName)))
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return nil, fmt.Errorf("JWT verifier: %w", err)
	}
	return v, nil
}

func openStore(cfg Config) (store.Store, error) {
	switch kind := storeKind(cfg.Store); kind {
	case "memory":
		return store.NewMemory(), nil
	case "bolt":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		s, err := store.OpenBolt(filepath.Join(cfg.DataDir, BoltFileName), store.BoltOptions{MaxBatchDelay: 2 * time.Millisecond})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("PRESENCE_STORE=%q: want bolt, memory (postgres:// is not built yet)", cfg.Store)
	}
}

func storeKind(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return "postgres"
	}
	return s
}

func (n *Node) rearm() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	counts, err := n.host.Cleanup(ctx, nil)
	if err != nil {
		n.log.Warn("re-arming stored timers failed", slog.Any("err", err))
		return
	}
	n.log.Info("stored timers re-armed",
		slog.Int64("users_marked_offline", counts.GetUsersMarkedOffline()),
		slog.Int64("busy_status_cleared", counts.GetBusyStatusCleared()))
}

// HTTPAddr returns the address the node serves HTTP on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// API returns the node's HTTP front.
func (n *Node) API() *api.Server { return n.api }

// Router returns the node's router.
func (n *Node) Router() *Router { return n.router }

// Served is closed with the HTTP server's exit error.
func (n *Node) Served() <-chan error { return n.served }

// Shutdown stops taking new work, answers what is in flight, stops the
// actors, flushes pending writes and closes the store.
func (n *Node) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := n.api.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := n.host.Stop(); err != nil {
		errs = append(errs, err)
	}
	n.system.Shutdown()
	if err := n.lastSeen.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush last_seen: %w", err))
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

func (n *Node) closeStore() {
	if n.lastSeen != nil {
		_ = n.lastSeen.Close(context.Background())
	}
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.ln != nil {
		_ = n.ln.Close()
	}
}
