package contract_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/contract"
)

func load(t *testing.T) *contract.Validator {
	t.Helper()
	v, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRESTResponsesMatchOpenAPI drives every endpoint and error case of a
// real node and validates each answer against api/openapi.json.
func TestRESTResponsesMatchOpenAPI(t *testing.T) {
	v := load(t)
	n := startNode(t)
	alice, bob := token(t, 123, "alice", false), token(t, 456, "bob", false)
	admin := token(t, 1, "ops", true)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	many := make([]string, api.MaxBatchIDs+1)
	for i := range many {
		many[i] = fmt.Sprint(i + 1)
	}
	cases := []struct {
		name, method, path, token, body string
		header                          map[string]string
		want                            int
	}{
		{"healthz", "GET", "/healthz", "", "", nil, 200},
		{"readyz", "GET", "/readyz", "", "", nil, 200},
		{"metrics", "GET", "/metrics", "", "", nil, 200},
		{"openapi", "GET", "/openapi.json", "", "", nil, 200},
		{"status without token", "GET", "/users/me/status", "", "", nil, 401},
		{"status with a forged token", "GET", "/users/me/status", "x.y.z", "", nil, 401},
		{"first status creates the record", "GET", "/users/me/status", alice, "", nil, 200},
		{"heartbeat", "POST", "/users/me/heartbeat", alice, "", nil, 200},
		{"bob's heartbeat", "POST", "/users/me/heartbeat", bob, "", nil, 200},
		{"status", "GET", "/users/me/status", alice, "", nil, 200},
		{"put without fields", "PUT", "/users/me/status", alice, `{}`, nil, 400},
		{"put with a wrong type", "PUT", "/users/me/status", alice, `{"is_busy":"yes"}`, nil, 422},
		{"put with null is_online", "PUT", "/users/me/status", alice, `{"is_online":null}`, nil, 422},
		{"put busy_until in the past", "PUT", "/users/me/status", alice, `{"busy_until":"2001-01-01T00:00:00Z"}`, nil, 422},
		{"put not an object", "PUT", "/users/me/status", alice, `[1]`, nil, 422},
		{"put compressed", "PUT", "/users/me/status", alice, `{"is_busy":true}`, map[string]string{"Content-Encoding": "gzip"}, 415},
		{"put too large", "PUT", "/users/me/status", alice, `{"is_busy":true,"pad":"` + strings.Repeat("x", api.DefaultBodyLimit) + `"}`, nil, 413},
		{"put busy until", "PUT", "/users/me/status", alice, `{"busy_until":"` + future + `"}`, nil, 200},
		{"presence", "GET", "/users/123/presence", bob, "", nil, 200},
		{"put available", "PUT", "/users/me/status", alice, `{"is_busy":false}`, nil, 200},
		{"put offline", "PUT", "/users/me/status", alice, `{"is_online":false}`, nil, 200},
		{"presence of an unknown user", "GET", "/users/999999/presence", bob, "", nil, 404},
		{"presence of a bad id", "GET", "/users/abc/presence", bob, "", nil, 422},
		{"presence of id 0", "GET", "/users/0/presence", bob, "", nil, 422},
		{"batch", "GET", "/users/presence?user_ids=123,456,789", bob, "", nil, 200},
		{"batch of unknown users", "GET", "/users/presence?user_ids=789", bob, "", nil, 200},
		{"batch without ids", "GET", "/users/presence", bob, "", nil, 422},
		{"batch of bad ids", "GET", "/users/presence?user_ids=1,x", bob, "", nil, 422},
		{"batch of too many ids", "GET", "/users/presence?user_ids=" + strings.Join(many, ","), bob, "", nil, 400},
		{"cleanup without admin", "POST", "/admin/cleanup-presence", bob, "", nil, 403},
		{"cleanup", "POST", "/admin/cleanup-presence", admin, "", nil, 200},
		{"disconnect without admin", "POST", "/admin/users/456/disconnect", bob, "", nil, 403},
		{"disconnect of a bad id", "POST", "/admin/users/abc/disconnect", admin, "", nil, 422},
		{"disconnect", "POST", "/admin/users/456/disconnect", admin, "", nil, 200},
		{"cluster without admin", "GET", "/admin/cluster", bob, "", nil, 403},
		{"cluster without token", "GET", "/admin/cluster", "", "", nil, 401},
		{"cluster", "GET", "/admin/cluster", admin, "", nil, 200},
		{"stats without admin", "GET", "/admin/stats", bob, "", nil, 403},
		{"stats", "GET", "/admin/stats", admin, "", nil, 200},
		{"user inspection without admin", "GET", "/admin/users/123", bob, "", nil, 403},
		{"user inspection without token", "GET", "/admin/users/123", "", "", nil, 401},
		{"user inspection", "GET", "/admin/users/123", admin, "", nil, 200},
		{"user inspection of an unknown user", "GET", "/admin/users/999999", admin, "", nil, 404},
		{"user inspection of a bad id", "GET", "/admin/users/abc", admin, "", nil, 422},
		{"visibility default", "GET", "/users/me/visibility", alice, "", nil, 200},
		{"visibility without token", "GET", "/users/me/visibility", "", "", nil, 401},
		{"put visibility", "PUT", "/users/me/visibility", alice, `{"presence":"allowlist","last_seen":"nobody","allow":[456,9]}`, nil, 200},
		{"presence hidden from bob", "GET", "/users/123/presence", bob, "", nil, 200},
		{"batch with a hidden user", "GET", "/users/presence?user_ids=123,456", bob, "", nil, 200},
		{"put visibility without fields", "PUT", "/users/me/visibility", alice, `{}`, nil, 400},
		{"put visibility with an unknown mode", "PUT", "/users/me/visibility", alice, `{"presence":"friends"}`, nil, 422},
		{"put visibility with a bad id", "PUT", "/users/me/visibility", alice, `{"allow":[0]}`, nil, 422},
		{"put visibility not an object", "PUT", "/users/me/visibility", alice, `[1]`, nil, 422},
		{"put visibility compressed", "PUT", "/users/me/visibility", alice, `{"presence":"nobody"}`, map[string]string{"Content-Encoding": "gzip"}, 415},
		{"admin visibility without admin", "PUT", "/admin/users/123/visibility", bob, `{"presence":"nobody"}`, nil, 403},
		{"admin visibility of a bad id", "PUT", "/admin/users/abc/visibility", admin, `{"presence":"nobody"}`, nil, 422},
		{"admin visibility of an unknown user", "PUT", "/admin/users/999999/visibility", admin, `{"presence":"nobody"}`, nil, 404},
		{"admin visibility", "PUT", "/admin/users/123/visibility", admin, `{"presence":"everyone"}`, nil, 200},
		{"dashboard", "GET", "/admin/", "", "", nil, 200},
		{"client module", "GET", "/client/presence.js", "", "", nil, 200},
		{"websocket without upgrade", "GET", "/ws/presence?token=" + bob, "", "", nil, 426},
		{"unknown route", "GET", "/nope", bob, "", nil, 404},
		{"unknown method", "BREW", "/users/me/status", alice, "", nil, 501},
	}
	for _, tc := range cases {
		resp, body := n.call(t, tc.method, tc.path, tc.token, tc.body, tc.header)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s answered %d, want %d: %s", tc.name, tc.method, tc.path, resp.StatusCode, tc.want, body)
			continue
		}
		if err := v.CheckResponse(tc.method, tc.path, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.path == "/openapi.json" && !bytes.Equal(body, api.OpenAPI) {
			t.Errorf("GET /openapi.json is not the embedded document")
		}
	}

	t.Run("429 over the write rate", func(t *testing.T) {
		flood := token(t, 777, "flood", false)
		for range 200 {
			resp, body := n.call(t, "POST", "/users/me/heartbeat", flood, "", nil)
			if err := v.CheckResponse("POST", "/users/me/heartbeat", resp.StatusCode, resp.Header, body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusTooManyRequests {
				return
			}
		}
		t.Fatal("200 heartbeats in a row were never refused with 429")
	})

	t.Run("503 while draining", func(t *testing.T) {
		n.API().Drain()
		for _, path := range []string{"/readyz", "/ws/presence?token=" + bob} {
			resp, body := n.call(t, "GET", path, "", "", map[string]string{
				"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
				"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
			})
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("GET %s while draining answered %d: %s", path, resp.StatusCode, body)
			}
			if err := v.CheckResponse("GET", path, resp.StatusCode, resp.Header, body); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestTransportReportsViolations shows the harness hook at work: a
// response that breaks the document is reported, a good one is not.
func TestTransportReportsViolations(t *testing.T) {
	v := load(t)
	n := startNode(t)
	var reported []error
	c := &http.Client{Transport: v.Transport(nil, func(err error) { reported = append(reported, err) })}
	resp, err := c.Get(n.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(reported) != 0 {
		t.Fatalf("a good answer was reported: %v", reported)
	}
	if err := v.CheckResponse("GET", "/users/me/status", 200, http.Header{"Content-Type": {"application/json"}},
		[]byte(`{"user_id":1,"online":true,"is_busy":false,"busy_until":null,"last_seen":null,"created_at":null,"updated_at":null,"version":1}`)); err == nil {
		t.Fatal("a status with is_online renamed to online passed")
	}
	if err := v.CheckResponse("GET", "/nope", 200, http.Header{}, []byte(`{}`)); err == nil {
		t.Fatal("a success on an undocumented route passed")
	}
}
