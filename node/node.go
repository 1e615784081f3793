// Package node assembles a presence node from its parts: the store, the
// user actors, the membership, the router and the HTTP front, from one
// nested Config. It is the only place that knows them all.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/routing"
	"github.com/presence-cluster/presence/store"
	"github.com/presence-cluster/presence/webhook"
)

// Node is one running presence node.
type Node struct {
	cfg Config
	log *slog.Logger
	// backend is the store as opened; store wraps it with metrics.
	backend    store.Store
	store      store.Store
	lastSeen   *store.LastSeenWriter
	system     *actor.ActorSystem
	remote     *remote.Remote
	remoteAddr string
	members    cluster.Membership
	host       *actors.Host
	feed       *webhook.Feed
	router     *routing.Router
	api        *api.Server
	// advisor is api, for the actors, which start before it.
	advisor  atomic.Pointer[api.Server]
	ln       net.Listener
	served   chan error
	metrics  *nodeMetrics
	verifier *auth.Verifier
	pprof    *http.Server
	resync   chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	// started is when Start began, for the uptime in /admin/stats.
	started time.Time
}

// Start opens the store, starts the actors, joins the cluster (unless
// Standalone) and serves HTTP on cfg.HTTPAddr. It returns once the node is
// listening; seeds that do not answer yet are retried in the background.
// On error, everything it had started is released.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("node", cfg.Name)),
		served:  make(chan error, 1),
		resync:  make(chan struct{}, 1),
		stopped: make(chan struct{}),
		metrics: newNodeMetrics(),
		started: time.Now(),
	}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	steps := []func() error{
		n.openVerifier,
		n.openStore,
		n.startActorSystem,
		n.listen,
		n.joinMembership,
		n.startActors,
		n.startAPI,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := n.startBackground(); err != nil {
		return nil, err
	}
	n.log.Info("node started", slog.String("http", n.ln.Addr().String()), slog.String("store", storeKind(cfg.Store)),
		slog.String("remote", n.remoteAddr), slog.Bool("standalone", cfg.Standalone))
	return n, nil
}

// openStore opens the store, with its metrics and the write-behind writer
// of last_seen.
func (n *Node) openStore() error {
	s, err := openStore(n.cfg)
	if err != nil {
		return err
	}
	n.backend = s
	n.store = instrumentedStore{Store: s, m: n.metrics}
	n.lastSeen = store.NewLastSeenWriter(n.store, n.cfg.LastSeenFlush, n.log)
	return nil
}

// startActorSystem starts the actor system and, on a clustered node, its
// remoting. Remoting must run before any actor is spawned: a PID takes the
// system's address at spawn time, and hubs hand theirs to other nodes.
func (n *Node) startActorSystem() error {
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return n.log.With(slog.String("lib", "protoactor"))
	}))
	if n.cfg.Standalone {
		return nil
	}
	n.warnInsecure()
	rc := n.cfg.Routing
	rc.ClusterKey = n.cfg.clusterKey()
	rc.OnRefused = n.remoteRefused
	var err error
	n.remote, n.remoteAddr, err = routing.StartRemote(n.system, rc, n.advertiseHost())
	return err
}

func (n *Node) advertiseHost() string {
	return cluster.AdvertiseHost(n.cfg.Membership.Advertise, n.cfg.Membership.BindAddr)
}

func (n *Node) listen() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", n.cfg.HTTPAddr, err)
	}
	n.ln = ln
	return nil
}

// joinMembership joins the gossip, or makes a standalone node the only
// member of a view that never changes.
func (n *Node) joinMembership() error {
	if n.cfg.Standalone {
		n.members = cluster.NewStatic(cluster.Member{
			Name: n.cfg.Name, NodeName: n.cfg.Name, HTTPAddr: n.HTTPAddr(), State: "alive", Proto: cluster.ProtoVersion,
		})
		return nil
	}
	httpPort := strconv.Itoa(n.ln.Addr().(*net.TCPAddr).Port)
	g, err := cluster.Join(n.cfg.Membership, n.cfg.Name+"-"+randomSuffix(), cluster.Meta{
		NodeName:   n.cfg.Name,
		RemoteAddr: n.remoteAddr,
		HTTPAddr:   net.JoinHostPort(n.advertiseHost(), httpPort),
		Store:      storeKind(n.cfg.Store),
		Proto:      cluster.ProtoVersion,
	}, n.log)
	if err != nil {
		return err
	}
	n.members = g
	return nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startActors starts the router and the user actors' host, which asks the
// router which users it owns and where to hand off the others.
func (n *Node) startActors() error {
	n.router = routing.New(n.system, n.members, n.metrics, n.log)
	ac := n.cfg.Actors
	ac.Store, ac.LastSeen, ac.Logger, ac.Observer, ac.Handoff = n.store, n.lastSeen, n.log, n.metrics, n.router.Handoff
	ac.NodeName, ac.NodeCounters = n.cfg.Name, n.fillCounters
	ac.HeartbeatAdvice = n.heartbeatAdvice
	if n.cfg.Clock != nil {
		ac.Clock = n.cfg.Clock
	}
	if err := n.startFeed(); err != nil {
		return err
	}
	if n.feed != nil {
		ac.Feed = n.feed
	}
	host, err := actors.NewHost(n.system, ac, n.router.Owns)
	if err != nil {
		return err
	}
	n.host = host
	n.metrics.registerNode(n)
	n.members.OnView(n.onView)
	return nil
}

// startAPI builds the HTTP front over the router.
func (n *Node) startAPI() error {
	apiCfg := n.cfg.API
	// The heartbeat advice is a third of the actors' offline_after, and
	// the heartbeat rate is measured by their clock.
	apiCfg.OfflineAfter = n.cfg.Actors.OfflineAfter
	var heartbeatNow func() time.Time
	if n.cfg.Clock != nil {
		heartbeatNow = n.cfg.Clock.Now
	}
	s, err := api.New(apiCfg, api.Deps{
		HeartbeatNow:   heartbeatNow,
		Presence:       n.router,
		Router:         n.router,
		Verifier:       n.verifier,
		System:         n.system,
		Ready:          n.ready,
		ClusterStatus:  n.clusterStatus,
		Metrics:        n.metrics.reg,
		MetricsHandler: promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}),
		Logger:         n.log,
	})
	if err != nil {
		return err
	}
	n.api = s
	n.advisor.Store(s)
	return nil
}

// heartbeatAdvice is the interval the node's HTTP front advises now (0
// before it exists: activations at start get the plain rule).
func (n *Node) heartbeatAdvice() time.Duration {
	if s := n.advisor.Load(); s != nil {
		return s.HeartbeatAdvice()
	}
	return 0
}

// startBackground serves HTTP and starts the node's loops.
func (n *Node) startBackground() error {
	// Standalone too: a Watch or session count that did not reach its
	// actor (the store down, say) is sent again from here.
	go n.resyncLoop()
	go func() { n.served <- n.api.Serve(n.ln) }()
	if n.cfg.Auth.ReloadInterval > 0 && n.cfg.Auth.PublicKeys != "" {
		go n.reloadKeysEvery(n.cfg.Auth.ReloadInterval)
	}
	if n.cfg.PprofAddr != "" {
		if err := n.startPprof(n.cfg.PprofAddr); err != nil {
			return err
		}
	}
	// Records left online or busy by a previous run have no actor to expire
	// them: activate them (once the membership settled) so their timers run
	// again.
	go n.rearmAtStart()
	return nil
}

// HTTPAddr returns the address the node serves HTTP on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// API returns the node's HTTP front.
func (n *Node) API() *api.Server { return n.api }

// Router returns the node's router.
func (n *Node) Router() *routing.Router { return n.router }

// Served is closed with the HTTP server's exit error.
func (n *Node) Served() <-chan error { return n.served }
