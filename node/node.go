// Package cluster turns presence actors into a service: it assembles a
// node (store, actor system, user actors, HTTP front) and routes each
// user's messages to the node that owns the user.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/store"
)

// resyncEvery is how often the hub retries re-subscriptions that failed.
const resyncEvery = 5 * time.Second

// BoltFileName is the embedded store's file inside the data directory.
const BoltFileName = "presence.db"

// Node is one running presence node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	lastSeen *store.LastSeenWriter
	system   *actor.ActorSystem
	remote   *remote.Remote
	members  *membership
	host     *actors.Host
	router   *Router
	api      *api.Server
	ln       net.Listener
	served   chan error
	metrics  *nodeMetrics
	verifier *auth.Verifier
	pprof    *http.Server
	resync   chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

// Start opens the store, starts the actors, joins the cluster (unless
// Standalone) and serves HTTP on cfg.HTTPAddr. It returns once the node is
// listening; seeds that do not answer yet are retried in the background.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("node", cfg.NodeName)),
		served:  make(chan error, 1),
		resync:  make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	if cfg.SharedStore != nil {
		cfg.Store = "shared"
		n.cfg.Store = "shared"
	}
	if !cfg.Standalone && len(cfg.Seeds) > 0 && storeKind(cfg.Store) == "bolt" {
		return nil, errors.New("PRESENCE_STORE=bolt keeps state in a file of this node only, so a cluster (PRESENCE_SEEDS set) would lose users that move between nodes: use a postgres:// URL shared by every node, or PRESENCE_STORE=memory for an ephemeral cluster")
	}

	verifier, err := n.openVerifier()
	if err != nil {
		return nil, err
	}
	n.verifier = verifier
	if cfg.SharedStore != nil {
		n.store = nopCloser{cfg.SharedStore}
	} else if n.store, err = openStore(cfg); err != nil {
		return nil, err
	}
	n.metrics = newNodeMetrics()
	backend := n.store
	n.store = instrumentedStore{Store: n.store, m: n.metrics}
	n.lastSeen = store.NewLastSeenWriter(n.store, cfg.LastSeenFlush, n.log)

	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return n.log.With(slog.String("lib", "protoactor"))
	}))
	advertiseHost := defaultAdvertiseHost(cfg.GossipAdvertise, cfg.GossipAddr)
	var remoteAddr string
	if !cfg.Standalone {
		// Remoting must run before any actor is spawned: a PID takes the
		// system's address at spawn time, and hubs hand theirs to other
		// nodes.
		if n.remote, remoteAddr, err = startRemote(n.system, cfg.RemoteAddr, cfg.RemoteAdvertise, advertiseHost, cfg.RemoteTLS); err != nil {
			return nil, err
		}
	}

	var router *Router
	n.host, err = actors.NewHost(n.system, actors.Config{
		Store:           n.store,
		LastSeen:        n.lastSeen,
		OfflineAfter:    cfg.OfflineAfter,
		DisconnectGrace: cfg.DisconnectGrace,
		PassivateAfter:  cfg.PassivateAfter,
		Clock:           cfg.Clock,
		Logger:          n.log,
		Observer:        n.metrics,
		Handoff:         func(id int64) { router.handoff(id) },
	}, func(id int64) bool { return router.Owns(id) })
	if err != nil {
		return nil, err
	}
	router = newRouter(n.host, "", nil, n.log)
	router.latency = n.metrics.requestLatency
	n.router = router
	n.metrics.registerNode(n)

	n.api, err = api.New(api.Config{
		Router:         router,
		Verifier:       verifier,
		BodyLimit:      cfg.BodyLimit,
		HeaderLimit:    cfg.HeaderLimit,
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		RequestTimeout: cfg.RequestTimeout,
		Logger:         n.log,
		System:         n.system,
		ClusterStatus:  n.clusterStatus,
		Ready: func() error {
			if p, ok := backend.(pinger); ok {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := p.Ping(ctx); err != nil {
					return fmt.Errorf("store: %w", err)
				}
			}
			return nil
		},
		Metrics:        n.metrics.reg,
		MetricsHandler: promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}),

		WSMaxFrame:           cfg.WSMaxFrame,
		WSMaxSubscriptions:   cfg.WSMaxSubscriptions,
		WSMaxSessionsPerUser: cfg.WSMaxSessionsPerUser,
		WSSendQueue:          cfg.WSSendQueue,
		WSPingInterval:       cfg.WSPingInterval,
		WriteRate:            cfg.WriteRate,
		WriteBurst:           cfg.WriteBurst,
		WSFrameRate:          cfg.WSFrameRate,
		WSFrameBurst:         cfg.WSFrameBurst,
	})
	if err != nil {
		return nil, err
	}
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}

	if !cfg.Standalone {
		httpPort := strconv.Itoa(n.ln.Addr().(*net.TCPAddr).Port)
		n.members, err = newMembership(membershipConfig{
			name:      cfg.NodeName + "-" + randomSuffix(),
			bindAddr:  cfg.GossipAddr,
			advertise: cfg.GossipAdvertise,
			seeds:     cfg.Seeds,
			key:       cfg.GossipKey,
			rejoin:    cfg.RejoinInterval,
			tune:      cfg.TuneGossip,
			logger:    n.log,
			meta: nodeMeta{
				NodeName:   cfg.NodeName,
				RemoteAddr: remoteAddr,
				HTTPAddr:   net.JoinHostPort(advertiseHost, httpPort),
				Store:      storeKind(cfg.Store),
				Proto:      protoVersion,
			},
		})
		if err != nil {
			return nil, err
		}
		router.self, router.view = n.members.LocalName(), n.members.View
		n.members.onView(n.onView)
	}
	// Standalone too: a Watch or session count that did not reach its
	// actor (the store down, say) is sent again from here.
	go n.resyncLoop()
	go func() { n.served <- n.api.Serve(n.ln) }()
	if cfg.JWTReloadInterval > 0 && cfg.JWTPublicKeys != "" {
		go n.reloadKeysEvery(cfg.JWTReloadInterval)
	}
	if cfg.PprofAddr != "" {
		if err = n.startPprof(cfg.PprofAddr); err != nil {
			return nil, err
		}
	}

	// Records left online or busy by a previous run have no actor to expire
	// them: activate them now so their timers run again.
	go n.rearm()
	n.log.Info("node started", slog.String("http", n.ln.Addr().String()), slog.String("store", storeKind(cfg.Store)),
		slog.String("remote", remoteAddr), slog.Bool("standalone", cfg.Standalone))
	return n, nil
}

// onView reacts to a membership change: users that moved away are stopped
// (and handed to their new owner when their timers run), actors forget hubs
// of nodes that left, the hub re-subscribes users whose owner changed, and
// when a member left, this node activates the stored live users it now
// owns so their timers run again.
func (n *Node) onView(old, cur *View) {
	self := n.system.Address()
	joined := false
	for _, m := range cur.Owners {
		if _, ok := old.ownerNamed(m.Name); !ok && m.Name != n.members.LocalName() {
			joined = true
			break
		}
	}
	n.host.ViewChanged(func(addr string) bool { return addr == self || cur.hasRemote(addr) }, joined)
	select {
	case n.resync <- struct{}{}:
	default:
	}
	if len(old.Owners) > 0 && storeKind(n.cfg.Store) == "bolt" && len(cur.All) > 1 {
		n.log.Error("another member joined a node whose store is a local bolt file: users moving between nodes lose their state; use a shared postgres:// store")
	}
	for _, m := range old.Owners {
		if _, ok := cur.ownerNamed(m.Name); !ok {
			go n.rearm()
			break
		}
	}
}

// resyncLoop re-subscribes the hub after membership changes, one pass at a
// time, coalescing changes that arrive during a pass; a periodic pass
// retries what failed (a pass with nothing to do costs a hash per watched
// user).
func (n *Node) resyncLoop() {
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			n.api.Hub().Resync(ctx)
			cancel()
		case <-n.resync:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			n.api.Hub().Resync(ctx)
			cancel()
		}
	}
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	case "postgres":
		return openLazy(func(ctx context.Context) (store.Store, error) {
			return store.OpenPostgres(ctx, cfg.Store, store.PostgresOptions{Logger: cfg.Logger})
		}, cfg.Logger)
	default:
		return nil, fmt.Errorf("PRESENCE_STORE=%q: want bolt, memory or a postgres:// URL", cfg.Store)
	}
}

func storeKind(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return "postgres"
	}
	return s
}

// rearm activates the stored live users this node owns that no actor
// holds, so their timers run again. The store may be unreachable (a node
// starting while the database is down): it retries with backoff until it
// succeeds or the node stops.
func (n *Node) rearm() {
	backoff := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		counts, err := n.host.Cleanup(ctx, n.router.Owns)
		cancel()
		if err == nil {
			n.log.Info("stored timers re-armed",
				slog.Int64("users_marked_offline", counts.GetUsersMarkedOffline()),
				slog.Int64("busy_status_cleared", counts.GetBusyStatusCleared()))
			return
		}
		n.log.Warn("re-arming stored timers failed; will retry", slog.Any("err", err), slog.Duration("in", backoff))
		select {
		case <-n.stopped:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// ReloadKeys re-reads the JWT public key file (PRESENCE_JWT_PUBLIC_KEYS),
// so rotated keys take effect without a restart. On error the keys in use
// stay. presenced calls it on SIGHUP.
func (n *Node) ReloadKeys() error {
	if n.cfg.JWTPublicKeys == "" {
		return nil
	}
	if err := n.verifier.Reload(); err != nil {
		n.log.Warn("JWT keys not reloaded; the previous keys stay in use", slog.Any("err", err))
		return fmt.Errorf("reload JWT keys: %w", err)
	}
	n.log.Info("JWT keys reloaded", slog.String("file", n.cfg.JWTPublicKeys))
	return nil
}

func (n *Node) reloadKeysEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
			_ = n.ReloadKeys()
		}
	}
}

// HTTPAddr returns the address the node serves HTTP on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// API returns the node's HTTP front.
func (n *Node) API() *api.Server { return n.api }

// Router returns the node's router.
func (n *Node) Router() *Router { return n.router }

// Served is closed with the HTTP server's exit error.
func (n *Node) Served() <-chan error { return n.served }

// Shutdown leaves gracefully: it announces that this node drains (the
// others take over its users), keeps answering for DrainWait while the
// news spreads, closes WebSocket sessions with 1012, answers what is in
// flight, stops the actors, flushes pending writes, leaves the gossip and
// closes the store.
func (n *Node) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	n.api.Drain()
	if n.members != nil {
		if err := n.members.setDraining(n.cfg.DrainWait); err != nil {
			errs = append(errs, err)
		}
		select {
		case <-time.After(n.cfg.DrainWait):
		case <-ctx.Done():
		}
	}
	if err := n.api.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := n.host.Stop(); err != nil {
		errs = append(errs, err)
	}
	if err := n.lastSeen.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush last_seen: %w", err))
	}
	n.stopOnce.Do(func() { close(n.stopped) })
	if n.members != nil {
		// A leave nobody hears (the last members stopping together) times
		// out; the node still stopped cleanly, so this is only a warning.
		if err := n.members.leave(n.cfg.DrainWait); err != nil {
			n.log.Warn("gossip leave not acknowledged", slog.Any("err", err))
		}
	}
	if n.remote != nil {
		n.remote.Shutdown(true)
	}
	n.system.Shutdown()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	if n.pprof != nil {
		_ = n.pprof.Close()
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// Kill stops the node the way a crash would: no drain, no goodbye to the
// cluster, nothing flushed. The store is left open (it may be shared with
// other in-process nodes). For tests.
func (n *Node) Kill() {
	n.stopOnce.Do(func() { close(n.stopped) })
	_ = n.ln.Close()
	// A dead process runs no timers, writes nothing and pushes nothing:
	// stop the actors (stopping writes nothing) and cut the clients off.
	_ = n.host.Stop()
	n.api.Hub().CloseAll(api.CloseDraining, "node killed")
	_ = n.api.App().Shutdown()
	if n.members != nil {
		_ = n.members.kill()
	}
	if n.remote != nil {
		n.remote.Shutdown(false)
	}
	n.system.Shutdown()
}

// abort releases what a failed Start had acquired.
func (n *Node) abort() {
	if n.members != nil {
		_ = n.members.kill()
	}
	if n.remote != nil {
		n.remote.Shutdown(false)
	}
	if n.lastSeen != nil {
		_ = n.lastSeen.Close(context.Background())
	}
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.ln != nil {
		_ = n.ln.Close()
	}
	if n.pprof != nil {
		_ = n.pprof.Close()
	}
}

// startPprof serves net/http/pprof on its own listener, which operators
// keep local (the default address is empty: off).
func (n *Node) startPprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	n.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.pprof.Serve(ln) }()
	n.log.Info("pprof serving", slog.String("addr", ln.Addr().String()))
	return nil
}

// nopCloser keeps a node from closing a store it shares with others.
type nopCloser struct{ store.Store }

func (nopCloser) Close() error { return nil }
