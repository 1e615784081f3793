package loadgen

import (
	"testing"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/testkit"
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
	return testNode{testkit.StartStandalone(t, node.Config{Name: name, API: api.Config{WriteRate: 1e6}}, secret).Node}
}

// addr is the node's HTTP address (host:port).
func (tn testNode) addr() string { return tn.n.HTTPAddr() }

// drainAndCloseSessions makes the node refuse new sessions and closes the
// open ones with code, as a draining node does.
func (tn testNode) drainAndCloseSessions(code int, reason string) {
	tn.n.API().Drain()
	tn.n.API().Hub().CloseAll(code, reason)
}
