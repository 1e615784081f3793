package contract_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/node"
)

// testSecret is the HS256 secret of the test node.
const testSecret = "contract-test-secret-0123456789abcdef"

// node is a running standalone node and an HTTP client for it.
type testNode struct {
	*node.Node
	base string
	http *http.Client
}

// startNode starts a standalone node on the memory store; the one place
// that knows how a node is started.
func startNode(t *testing.T) *testNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Config{
		Standalone: true, Store: "memory", HTTPAddr: "127.0.0.1:0",
		Auth: node.AuthConfig{Secret: testSecret}, DataDir: t.TempDir(), Name: "contract",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	return &testNode{Node: n, base: "http://" + n.HTTPAddr(), http: &http.Client{Timeout: 10 * time.Second}}
}

// token mints a token for userID, valid for an hour.
func token(t *testing.T, userID int64, username string, admin bool) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), auth.MintClaims{UserID: userID, Username: username, Admin: admin, TTL: time.Hour})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// call sends one request and returns the response with its body read.
func (n *testNode) call(t *testing.T, method, path, tok, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, path, err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}
