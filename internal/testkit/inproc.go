package testkit

// Every in-process node start of the e2e tests is here: the one place that
// builds a node configuration and calls the composition root.

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/presence-cluster/presence/internal/loadgen/baseline"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/store"
)

// Start starts a node from cfg exactly as given. It is the single call of
// the composition root in the e2e tests (start-failure tests call it with
// configurations that must fail).
func Start(ctx context.Context, cfg node.Config) (*node.Node, error) {
	return node.Start(ctx, cfg)
}

// InProc is a node started in this process.
type InProc struct {
	*node.Node
	name string
	// Logs keeps the node's log records.
	Logs *LogSink
	// Base is http://<HTTP address>.
	Base string
	// HTTP is a client for the node (closed on Stop).
	HTTP *http.Client
	once sync.Once
}

// Name is the node name.
func (n *InProc) Name() string { return n.name }

// Addr is the node's HTTP address.
func (n *InProc) Addr() string { return n.HTTPAddr() }

// Stop shuts the node down gracefully; later calls do nothing.
func (n *InProc) Stop(t testing.TB) {
	t.Helper()
	n.once.Do(func() {
		n.HTTP.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
}

// StartStandalone starts a standalone node (no gossip, no remoting: one
// node owning every user) on a loopback port. Zero fields of cfg get test
// defaults: the memory store, a fresh data dir, secret as the HS256 secret
// (unless public keys are set), no write rate limit, a high WebSocket
// frame rate. Its logs go to a sink printed if the test fails; it stops
// when the test ends.
func StartStandalone(t testing.TB, cfg node.Config, secret string) *InProc {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	// Single-node tests run under -race: no gossip, no remoting (two
	// protoactor-go remotes in one process race inside the library).
	cfg.Standalone = true
	if cfg.API.WriteRate == 0 {
		// Tests write in bursts; the rate limit has its own tests.
		cfg.API.WriteRate = -1
	}
	if cfg.API.WS.FrameRate == 0 {
		cfg.API.WS.FrameRate = 1e6
		cfg.API.WS.FrameBurst = 1e6
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Store == "" {
		cfg.Store = "memory"
	}
	if cfg.Auth.Secret == "" && cfg.Auth.PublicKeys == "" {
		// A node configured with public keys only trusts RS256/ES256/EdDSA,
		// as production nodes behind an identity provider do.
		cfg.Auth.Secret = secret
	}
	if cfg.Name == "" {
		cfg.Name = "e2e"
	}
	sink := NewLogSink()
	cfg.Logger = sink.Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of node %s (%s):\n%s", cfg.Name, cfg.DataDir, sink.Dump())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	in := &InProc{Node: n, name: cfg.Name, Logs: sink, Base: "http://" + n.HTTPAddr(),
		HTTP: NewHTTPClient(15 * time.Second)}
	t.Cleanup(func() { in.Stop(t) })
	return in
}

// Member are the settings of one member of an in-process cluster.
type Member struct {
	Name       string // node name
	Seeds      []string
	Store      store.Store // shared by the members, as processes share a database
	Secret     string
	Logger     *slog.Logger
	TuneGossip func(*memberlist.Config)
	// RemoteBind and RemoteAdvertise, when set, replace the loopback
	// remoting address on a free port (a test that restarts a node at
	// the same address, or reaches it through a proxy).
	RemoteBind, RemoteAdvertise string
}

// StartMember starts a member of an in-process cluster on loopback ports
// with a fresh data dir; base supplies per-test settings (OfflineAfter,
// Clock, ...), and a zero RejoinInterval becomes one second.
func StartMember(t testing.TB, base node.Config, m Member) (*node.Node, error) {
	cfg := base
	cfg.Name = m.Name
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Membership.BindAddr = "127.0.0.1:0"
	cfg.Routing.BindAddr = "127.0.0.1:0"
	if m.RemoteBind != "" {
		cfg.Routing.BindAddr = m.RemoteBind
	}
	cfg.Routing.Advertise = m.RemoteAdvertise
	cfg.DataDir = t.TempDir()
	cfg.SharedStore = m.Store
	cfg.Auth.Secret = m.Secret
	if cfg.Membership.RejoinInterval == 0 {
		cfg.Membership.RejoinInterval = time.Second
	}
	cfg.Membership.Seeds = append(cfg.Membership.Seeds, m.Seeds...)
	cfg.Logger = m.Logger
	cfg.Membership.Tune = m.TuneGossip
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Start(ctx, cfg)
}

// MarkStopped records that the test stopped the node itself, so Stop (and
// the cleanup) does nothing.
func (n *InProc) MarkStopped() { n.once.Do(func() {}) }

// StartBaseline serves the load generator's bare baseline app (REST and
// WebSocket parts, fanning out as f says) on a loopback port, as
// `presencectl bench --serve-baseline` does, until the test ends; it
// returns its address.
func StartBaseline(t testing.TB, f baseline.Fanout) string {
	t.Helper()
	srv, err := baseline.Listen("127.0.0.1:0", f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Addr
}
