package client_test

// The one place the client tests start a node: the rest of the tests know
// only its URL, how to stop it, and tokens. Adapt this file when the node's
// start moves.

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/node"
)

// testSecret is the HS256 secret of every node the tests start.
const testSecret = "client-test-secret-0123456789abcdef"

// testNode is a standalone node (no gossip, no remoting, memory store) on a
// loopback port.
type testNode struct {
	URL  string // http://127.0.0.1:port
	stop func() error
}

// startNodeE starts a node named name; examples use it directly.
func startNodeE(name string) (*testNode, error) { return startNodeTuned(name, nil) }

// startNodeTuned starts a node named name whose configuration tune (if
// not nil) adjusts.
func startNodeTuned(name string, tune func(*node.Config)) (*testNode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := node.Config{Standalone: true, Store: "memory", HTTPAddr: "127.0.0.1:0", Auth: node.AuthConfig{Secret: testSecret}, Name: name, API: api.Config{WriteRate: -1, WS: ws.Config{FrameRate: 1e6, FrameBurst: 1e6}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tune != nil {
		tune(&cfg)
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return n.Shutdown(ctx) // closes WebSocket sessions with 1012
	}
	return &testNode{URL: "http://" + n.HTTPAddr(), stop: stop}, nil
}

// startNode starts a node that stops (gracefully) when the test ends, or
// earlier with stopNow.
func startNode(t *testing.T, name string) *testNode {
	t.Helper()
	return startNodeT(t, name, nil)
}

// startNodeT is startNode with a configuration tune.
func startNodeT(t *testing.T, name string, tune func(*node.Config)) *testNode {
	t.Helper()
	n, err := startNodeTuned(name, tune)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	var stopped bool
	inner := n.stop
	n.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		return inner()
	}
	t.Cleanup(func() { _ = n.stop() })
	return n
}

// mintE is a token of user id for testSecret, valid for an hour.
func mintE(id int64, username string, admin bool) (string, error) {
	return auth.Mint([]byte(testSecret), auth.MintClaims{UserID: id, Username: username, Admin: admin, TTL: time.Hour})
}

func mint(t *testing.T, id int64, username string, admin bool) string {
	t.Helper()
	tok, err := mintE(id, username, admin)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
