package e2e

// PRESENCE_ALLOWED_ORIGINS over plain HTTP (the browser test in
// e2e/browser shows what a real browser makes of it): preflights, the
// allow header only for listed origins, Vary: Origin, and 403 for a
// WebSocket handshake from an unlisted origin.

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/node"
)

const (
	corsAllowed = "https://app.example.com"
	corsOther   = "https://evil.example.net"
)

func corsDo(t *testing.T, n *testNode, method, path, origin string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, n.Base+path, nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestCORSListedOrigins(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{API: api.Config{AllowedOrigins: []string{corsAllowed, "http://127.0.0.1:3000"}}})
	tok := mint(t, 1401, "cors", false)
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}

	res := corsDo(t, n, http.MethodOptions, "/users/me/heartbeat", corsAllowed, preflight)
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != corsAllowed ||
		res.Header.Get("Access-Control-Allow-Methods") != "GET, PUT, POST, OPTIONS" ||
		res.Header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" || res.Header.Get("Vary") == "" {
		t.Fatalf("preflight from a listed origin: %d %v", res.StatusCode, res.Header)
	}
	res = corsDo(t, n, http.MethodOptions, "/users/me/heartbeat", corsOther, preflight)
	if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("preflight from an unlisted origin got CORS headers: %v", res.Header)
	}

	auth := map[string]string{"Authorization": "Bearer " + tok}
	res = corsDo(t, n, http.MethodGet, "/users/me/status", corsAllowed, auth)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != corsAllowed || res.Header.Get("Vary") != "Origin" {
		t.Fatalf("GET from a listed origin: %d %v", res.StatusCode, res.Header)
	}
	res = corsDo(t, n, http.MethodGet, "/users/me/status", corsOther, auth)
	if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Vary") != "Origin" {
		t.Fatalf("GET from an unlisted origin: %v", res.Header)
	}
	res = corsDo(t, n, http.MethodGet, "/users/me/status", "", auth)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("GET without Origin: %d %v", res.StatusCode, res.Header)
	}

	q := wsQuery(tok, "")
	_, r, err := wsTryDial(n, q, http.Header{"Origin": {corsOther}})
	if err == nil || r == nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("WebSocket from an unlisted origin: %v %v", r, err)
	}
	var body struct{ Detail string }
	if json.NewDecoder(r.Body).Decode(&body) != nil || body.Detail == "" {
		t.Fatalf("403 without a detail")
	}
	for _, h := range []http.Header{{"Origin": {corsAllowed}}, {"Origin": {"HTTP://127.0.0.1:3000"}}, nil} {
		c, _, err := wsTryDial(n, q, h)
		if err != nil {
			t.Fatalf("WebSocket with Origin %v refused: %v", h, err)
		}
		c.Close()
	}
}

// Unset: no CORS headers (preflights are not answered), and WebSocket
// handshakes from any origin are accepted.
func TestCORSUnset(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	tok := mint(t, 1402, "cors", false)
	res := corsDo(t, n, http.MethodOptions, "/users/me/heartbeat", corsAllowed, map[string]string{"Access-Control-Request-Method": "POST"})
	if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("preflight answered with CORS headers: %v", res.Header)
	}
	res = corsDo(t, n, http.MethodGet, "/users/me/status", corsAllowed, map[string]string{"Authorization": "Bearer " + tok})
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Vary") != "" {
		t.Fatalf("GET: %d %v", res.StatusCode, res.Header)
	}
	c, _, err := wsTryDial(n, wsQuery(tok, ""), http.Header{"Origin": {corsOther}})
	if err != nil {
		t.Fatalf("WebSocket from any origin refused with no list: %v", err)
	}
	c.Close()
}

// "*": any origin, answered with "*".
func TestCORSAnyOrigin(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{API: api.Config{AllowedOrigins: []string{"*"}}})
	res := corsDo(t, n, http.MethodOptions, "/users/presence", corsOther, map[string]string{"Access-Control-Request-Method": "GET"})
	if res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight with *: %v", res.Header)
	}
	c, _, err := wsTryDial(n, wsQuery(mint(t, 1403, "cors", false), ""), http.Header{"Origin": {corsOther}})
	if err != nil {
		t.Fatalf("WebSocket with * refused: %v", err)
	}
	c.Close()
}
