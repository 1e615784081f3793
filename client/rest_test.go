package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/wire"
)

func newClient(t *testing.T, base, token string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.BaseURL, cfg.Token = base, token
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRESTMethods(t *testing.T) {
	n := startNode(t, "rest")
	ctx := ctxT(t)
	alice := newClient(t, n.URL, mint(t, 123, "alice", false))
	bob := newClient(t, n.URL, mint(t, 456, "bob", false))
	admin := newClient(t, n.URL, mint(t, 1, "ops", true))

	if err := alice.Heartbeat(ctx); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	st, err := alice.GetMyStatus(ctx)
	if err != nil || st.UserID != 123 || !st.IsOnline || st.Version == 0 || st.CreatedAt == nil || st.LastSeen == nil {
		t.Fatalf("GetMyStatus = %+v, %v", st, err)
	}

	yes := true
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	st2, err := alice.UpdateMyStatus(ctx, wire.StatusUpdate{IsBusy: &yes, BusyUntil: &until})
	if err != nil || !st2.IsBusy || st2.BusyUntil == nil || !st2.BusyUntil.Equal(until) || st2.Version <= st.Version {
		t.Fatalf("UpdateMyStatus(busy until) = %+v, %v", st2, err)
	}
	// An explicit null drops the expiry and keeps the busy flag.
	st3, err := alice.UpdateMyStatus(ctx, wire.StatusUpdate{ClearBusyUntil: true})
	if err != nil || !st3.IsBusy || st3.BusyUntil != nil {
		t.Fatalf("UpdateMyStatus(busy_until null) = %+v, %v", st3, err)
	}

	p, err := bob.Presence(ctx, 123)
	if err != nil || p.UserID != 123 || p.Username != "alice" || !p.IsBusy || p.Version != st3.Version {
		t.Fatalf("Presence(123) = %+v, %v", p, err)
	}
	if err := bob.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := bob.PresenceBatch(ctx, []int64{123, 456, 789})
	if err != nil || len(ps) != 2 {
		t.Fatalf("PresenceBatch = %+v, %v; want alice and bob", ps, err)
	}

	cl, err := admin.Cleanup(ctx)
	if err != nil || cl.Message != wire.CleanupMessage {
		t.Fatalf("Cleanup = %+v, %v", cl, err)
	}
	cs, err := admin.Cluster(ctx)
	if err != nil || !cs.Standalone || cs.Node != "rest" || len(cs.Members) != 1 || !cs.Members[0].Self || cs.Members[0].ActorsHosted == nil {
		t.Fatalf("Cluster = %+v, %v", cs, err)
	}
	var raw json.RawMessage
	if err := admin.GetJSON(ctx, "/admin/cluster", &raw); err != nil || !strings.Contains(string(raw), `"standalone":true`) {
		t.Fatalf("GetJSON = %s, %v", raw, err)
	}
	if err := alice.Healthz(ctx); err != nil {
		t.Fatalf("Healthz: %v", err)
	}
	if err := alice.Readyz(ctx); err != nil {
		t.Fatalf("Readyz: %v", err)
	}
}

func TestRESTErrors(t *testing.T) {
	n := startNode(t, "errors")
	ctx := ctxT(t)
	alice := newClient(t, n.URL, mint(t, 123, "alice", false))
	if err := alice.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	tooMany := make([]int64, 51)
	for i := range tooMany {
		tooMany[i] = int64(i + 1)
	}
	tests := []struct {
		name   string
		call   func() error
		code   int
		detail string // "" : any non-empty
		is     func(error) bool
	}{
		{"401 bad token", func() error { _, err := newClient(t, n.URL, "not-a-token").GetMyStatus(ctx); return err },
			401, "Invalid or expired token", client.IsUnauthorized},
		{"401 no token", func() error { return newClient(t, n.URL, "").Heartbeat(ctx) },
			401, "Invalid or expired token", client.IsUnauthorized},
		{"404 unknown user", func() error { _, err := alice.Presence(ctx, 999); return err },
			404, "User status not found", client.IsNotFound},
		{"400 no fields", func() error { _, err := alice.UpdateMyStatus(ctx, wire.StatusUpdate{}); return err },
			400, "No status fields to update", client.IsBadRequest},
		{"400 too many ids", func() error { _, err := alice.PresenceBatch(ctx, tooMany); return err },
			400, "Too many user IDs requested", client.IsBadRequest},
		{"422 busy_until in the past", func() error { _, err := alice.UpdateMyStatus(ctx, wire.StatusUpdate{BusyUntil: &past}); return err },
			422, "", client.IsBadRequest},
		{"422 bad path id", func() error { _, err := alice.Presence(ctx, -4); return err },
			422, "", client.IsBadRequest},
		{"403 not admin", func() error { _, err := alice.Cleanup(ctx); return err },
			403, "Admin privileges required", client.IsForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want a *client.Error", err)
			}
			if e.StatusCode != tc.code || client.StatusCode(err) != tc.code || !tc.is(err) {
				t.Fatalf("err = %v (status %d), want %d", err, e.StatusCode, tc.code)
			}
			if tc.detail != "" && e.Detail != tc.detail || e.Detail == "" {
				t.Fatalf("detail %q, want %q", e.Detail, tc.detail)
			}
			if !strings.Contains(err.Error(), e.Detail) {
				t.Fatalf("message %q lacks the detail", err)
			}
		})
	}
	if _, err := alice.PresenceBatch(ctx, nil); err == nil || client.StatusCode(err) != 0 {
		t.Fatalf("PresenceBatch(nil) = %v, want a local error", err)
	}
}

func TestErrorMapping(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/users/me/heartbeat":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"detail":"Too many requests, retry later"}`))
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"detail":"Draining"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("  <html>proxy error</html>\n"))
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "t")
	ctx := ctxT(t)

	err := c.Heartbeat(ctx)
	var e *client.Error
	if !errors.As(err, &e) || !client.IsRateLimited(err) || e.RetryAfter != 3*time.Second || e.Detail != "Too many requests, retry later" {
		t.Fatalf("429: %#v", err)
	}
	if err := c.Readyz(ctx); !client.IsUnavailable(err) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "Draining") {
		t.Fatalf("503: %v", err)
	}
	if _, err := c.GetMyStatus(ctx); !errors.As(err, &e) || e.StatusCode != 502 || e.Detail != "<html>proxy error</html>" {
		t.Fatalf("502 from a proxy: %#v", err)
	}
}

func TestTokenSourceIsAskedPerRequest(t *testing.T) {
	n := startNode(t, "tokens")
	var calls atomic.Int32
	cfg := client.DefaultConfig()
	cfg.BaseURL = n.URL
	cfg.TokenSource = func(ctx context.Context) (string, error) {
		calls.Add(1)
		return mintE(77, "seventy-seven", false)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for range 2 {
		if err := c.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("TokenSource asked %d times, want 2", calls.Load())
	}
	cfg.TokenSource = func(context.Context) (string, error) { return "", errors.New("vault sealed") }
	c, _ = client.New(cfg)
	if err := c.Heartbeat(ctx); err == nil || !strings.Contains(err.Error(), "vault sealed") {
		t.Fatalf("failing TokenSource: %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8000", "ftp://x", "http://"} {
		cfg := client.DefaultConfig()
		cfg.BaseURL = u
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	cfg := client.DefaultConfig()
	cfg.BaseURL = "http://a:1"
	cfg.Subscriber.URLs = []string{"ws://b:2", "mailto:x"}
	if _, err := client.New(cfg); err == nil {
		t.Error("New accepted a bad subscriber URL")
	}
}
