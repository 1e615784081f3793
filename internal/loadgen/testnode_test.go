package loadgen

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/node"
)

// The only place the generator's tests start a real node: when the node's
// constructor moves or changes, adapt this file.

// testNode is a running node as the tests use it.
type testNode struct{ n *node.Node }

// startTestNode starts a standalone node on loopback with the memory store
// and HS256 secret, stopped when the test ends.
func startTestNode(t *testing.T, name, secret string) testNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Config{HTTPAddr: "127.0.0.1:0", Standalone: true, Store: "memory", DataDir: t.TempDir(), Auth: node.AuthConfig{Secret: secret}, Name: name, API: api.Config{WriteRate: 1e6}, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = n.Shutdown(sctx)
	})
	return testNode{n}
}

// addr is the node's HTTP address (host:port).
func (tn testNode) addr() string { return tn.n.HTTPAddr() }

// drainAndCloseSessions makes the node refuse new sessions and closes the
// open ones with code, as a draining node does.
func (tn testNode) drainAndCloseSessions(code int, reason string) {
	tn.n.API().Drain()
	tn.n.API().Hub().CloseAll(code, reason)
}
