package client

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestVersionFilter(t *testing.T) {
	f := versionFilter{}
	steps := []struct {
		id      int64
		version uint64
		want    bool
	}{
		{1, 3, true},
		{1, 3, false}, // the same again (a reconnect's snapshot)
		{1, 2, false}, // older
		{2, 1, true},  // users are independent
		{1, 4, true},
		{1, 0, false},
		{2, 1, false},
		{2, 7, true},
	}
	for i, s := range steps {
		if got := f.accept(s.id, s.version); got != s.want {
			t.Fatalf("step %d: accept(%d, %d) = %v, want %v", i, s.id, s.version, got, s.want)
		}
	}
	f.forget(1)
	if !f.accept(1, 4) {
		t.Fatal("a forgotten user's version is news again")
	}
	if !(versionFilter{}).accept(5, 0) {
		t.Fatal("the first version 0 of a user is news")
	}
}

func TestPlanReconnect(t *testing.T) {
	cfg := DefaultConfig().withDefaults().Subscriber
	cfg.MinBackoff, cfg.MaxBackoff, cfg.RestartJitter, cfg.StableAfter = time.Second, 8*time.Second, 250*time.Millisecond, 10*time.Second
	top := func(n time.Duration) time.Duration { return n - 1 } // the largest the jitter allows
	closed := func(code int) error { return &websocket.CloseError{Code: code} }
	tests := []struct {
		name    string
		out     outcome
		attempt int
		want    plan
	}{
		{"1012 draining: next node at once", outcome{dialed: true, closeCode: 1012, err: closed(1012)}, 3,
			plan{nextURL: true, attempt: 0, delay: 250*time.Millisecond - 1}},
		{"unreachable: next node, backoff", outcome{err: errors.New("refused")}, 0,
			plan{nextURL: true, attempt: 1, delay: time.Second}},
		{"1013: same node, backoff grows", outcome{dialed: true, closeCode: 1013, lived: time.Minute}, 2,
			plan{attempt: 3, delay: 4 * time.Second}},
		{"1008: same node, backoff", outcome{dialed: true, closeCode: 1008}, 0,
			plan{attempt: 1, delay: time.Second}},
		{"backoff is capped", outcome{dialed: true, closeCode: 1013}, 10,
			plan{attempt: 11, delay: 8 * time.Second}},
		{"stable connection lost: backoff restarts", outcome{dialed: true, lived: time.Minute}, 5,
			plan{attempt: 1, delay: time.Second}},
		{"short connection lost: backoff grows", outcome{dialed: true, lived: time.Second}, 1,
			plan{attempt: 2, delay: 2 * time.Second}},
		{"4001 token expired: same node soon, with a fresh token", outcome{dialed: true, closeCode: 4001}, 2,
			plan{attempt: 2, delay: 250*time.Millisecond - 1}},
		{"4003 disconnected: stop", outcome{dialed: true, closeCode: 4003}, 0,
			plan{stop: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := planReconnect(&cfg, tc.out, tc.attempt, top); got != tc.want {
				t.Fatalf("plan %+v, want %+v", got, tc.want)
			}
		})
	}
	// 4003 with an application that wants to reconnect: backoff.
	allow := cfg
	allow.ReconnectAfterDisconnect = func(ev StateEvent) bool { return ev.CloseCode == 4003 }
	if got := planReconnect(&allow, outcome{dialed: true, closeCode: 4003}, 0, top); got != (plan{attempt: 1, delay: time.Second}) {
		t.Fatalf("4003 with ReconnectAfterDisconnect: plan %+v", got)
	}
	// The jitter's low end is half the delay.
	if got := cfg.Backoff(2, func(time.Duration) time.Duration { return 0 }); got != 2*time.Second {
		t.Fatalf("backoff low end %v, want 2s", got)
	}
}

func TestWSEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8000":           "ws://localhost:8000/ws/presence",
		"https://p.example.com/":          "wss://p.example.com/ws/presence",
		"https://gw.example.com/presence": "wss://gw.example.com/presence/ws/presence",
		"ws://10.0.0.1:8001?x=1":          "ws://10.0.0.1:8001/ws/presence",
	} {
		if got, err := wsEndpoint(in); err != nil || got != want {
			t.Errorf("wsEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"localhost:8000", "ftp://x", "ws://", "::"} {
		if _, err := wsEndpoint(bad); err == nil {
			t.Errorf("wsEndpoint(%q) accepted", bad)
		}
	}
}

func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct{ left, before, want time.Duration }{
		{time.Hour, 30 * time.Second, time.Hour - 30*time.Second},
		{time.Minute, 30 * time.Second, 30 * time.Second},
		{40 * time.Second, 30 * time.Second, 20 * time.Second}, // less than twice: half-way
		{3 * time.Second, time.Second, 2 * time.Second},
		{0, time.Second, 0},
		{-time.Second, time.Second, 0},
	} {
		if got := refreshDelay(tc.left, tc.before); got != tc.want {
			t.Errorf("refreshDelay(%v, %v) = %v, want %v", tc.left, tc.before, got, tc.want)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	enc := func(payload string) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	for _, tc := range []struct {
		tok  string
		want time.Time
		ok   bool
	}{
		{enc(`{"sub":"1","exp":1900000000}`), time.Unix(1900000000, 0), true},
		{enc(`{"exp":1900000000.5}`), time.Unix(1900000000, 5e8), true},
		{enc(`{"sub":"1"}`), time.Time{}, false},
		{enc(`{"exp":"soon"}`), time.Time{}, false},
		{enc(`not json`), time.Time{}, false},
		{"a.b", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := tokenExpiry(tc.tok)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("tokenExpiry(%q) = %v, %v; want %v, %v", tc.tok, got, ok, tc.want, tc.ok)
		}
	}
}
