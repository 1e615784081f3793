package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

// startStrictNode starts a node with no JWT leeway (a session ends at its
// token's exp) and a short ping interval (the expiry check runs every
// eighth of it). A client that does not answer a ping within two intervals
// is dropped, so it is not shorter: 400 ms dropped sessions on a loaded
// machine (the race pass).
func startStrictNode(t *testing.T) *testNode {
	return startNodeT(t, "strict", func(c *node.Config) {
		c.Auth.Leeway = node.NoJWTLeeway
		c.API.WS.PingInterval = 2 * time.Second
	})
}

// shortToken is a token of user id expiring 2 to 3 seconds from now.
func shortToken(t *testing.T, id int64) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), auth.MintClaims{UserID: id, Username: "short", TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// noCloseCode fails if any event so far is a Disconnected one.
func noDisconnect(t *testing.T, rec *recorder) {
	t.Helper()
	for {
		select {
		case ev := <-rec.events:
			if ev.State == client.StateDisconnected || ev.State == client.StateClosed {
				t.Fatalf("unexpected %s event (close %d): %v", ev.State, ev.CloseCode, ev.Err)
			}
		default:
			return
		}
	}
}

// TestSubscriberRefreshesAheadOfExpiry: with a TokenSource handing out
// 3-second tokens, the subscriber refreshes its session before each
// expires and stays connected on one connection well past the first
// token's exp. The control: the same static token is closed with 4001.
func TestSubscriberRefreshesAheadOfExpiry(t *testing.T) {
	n := startStrictNode(t)
	var minted atomic.Int32
	_, rec := subscriber(t, "", []string{n.URL}, nil, func(c *client.Config) {
		c.TokenSource = func(context.Context) (string, error) {
			minted.Add(1)
			return shortToken(t, 801), nil
		}
		c.Subscriber.RefreshBefore = time.Second
	})
	rec.waitFor(t, "connected", connectedTo(n.URL))
	time.Sleep(7 * time.Second) // two token lifetimes and more
	noDisconnect(t, rec)
	if got := minted.Load(); got < 3 {
		t.Fatalf("TokenSource called %d times in 7s of 3-second tokens; want a dial and refreshes", got)
	}

	_, static := subscriber(t, shortToken(t, 802), []string{n.URL}, nil, nil)
	static.waitFor(t, "connected", connectedTo(n.URL))
	ev := static.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	if ev.CloseCode != wire.CloseTokenExpired {
		t.Fatalf("static short token: disconnected with %d (%v), want %d", ev.CloseCode, ev.Err, wire.CloseTokenExpired)
	}
}

// TestSubscriberReconnectsAfterExpiry: a TokenSource that has nothing
// newer until the token expired lets the server close with 4001; the
// subscriber reconnects at once with the fresh token.
func TestSubscriberReconnectsAfterExpiry(t *testing.T) {
	n := startStrictNode(t)
	var cur atomic.Value // string
	cur.Store("")
	_, rec := subscriber(t, "", []string{n.URL}, nil, func(c *client.Config) {
		c.TokenSource = func(context.Context) (string, error) {
			tok := cur.Load().(string)
			if exp, ok := expiryOf(t, tok); !ok || !time.Now().Before(exp) {
				tok = shortToken(t, 803)
				cur.Store(tok)
			}
			return tok, nil
		}
		c.Subscriber.RefreshBefore = time.Second
	})
	rec.waitFor(t, "connected", connectedTo(n.URL))
	ev := rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	if ev.CloseCode != wire.CloseTokenExpired || ev.Retry > time.Second {
		t.Fatalf("disconnected with %d (%v), retry %v; want %d and a prompt retry", ev.CloseCode, ev.Err, ev.Retry, wire.CloseTokenExpired)
	}
	rec.waitFor(t, "reconnected", connectedTo(n.URL))
}

// expiryOf reads a token's exp with the verifier of testSecret.
func expiryOf(t *testing.T, tok string) (time.Time, bool) {
	if tok == "" {
		return time.Time{}, false
	}
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(testSecret), Leeway: auth.NoLeeway})
	if err != nil {
		t.Error(err)
		return time.Time{}, false
	}
	_, exp, err := v.VerifyExpiry(tok)
	return exp, err == nil
}

// TestSubscriberStopsOnAdminDisconnect: AdminDisconnect closes the
// subscriber's session (4003) and reports the count; the subscriber does
// not reconnect: its last event is Closed with ErrDisconnected, and its
// Updates channel closes. With ReconnectAfterDisconnect saying yes, it
// reconnects.
func TestSubscriberStopsOnAdminDisconnect(t *testing.T) {
	n := startStrictNode(t)
	admin, err := client.New(client.Config{BaseURL: n.URL, Token: mint(t, 9_000_000, "root", true)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	s, rec := subscriber(t, mint(t, 804, "dora", false), []string{n.URL}, nil, nil)
	rec.waitFor(t, "connected", connectedTo(n.URL))
	disconnectOneSession(ctx, t, admin, 804)
	ev := rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	if ev.CloseCode != wire.CloseDisconnected {
		t.Fatalf("disconnected with %d (%v), want %d", ev.CloseCode, ev.Err, wire.CloseDisconnected)
	}
	ev = rec.waitFor(t, "closed", func(ev client.StateEvent) bool { return ev.State != client.StateDisconnected })
	if ev.State != client.StateClosed || !errors.Is(ev.Err, client.ErrDisconnected) || ev.CloseCode != wire.CloseDisconnected {
		t.Fatalf("after 4003: %s event (close %d, %v), want closed with ErrDisconnected", ev.State, ev.CloseCode, ev.Err)
	}
	select {
	case _, ok := <-s.Updates():
		if ok {
			t.Fatal("an update after the disconnect")
		}
	case <-time.After(wait):
		t.Fatal("Updates not closed after the subscriber stopped")
	}
	if err := s.Subscribe(1); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after the stop: %v, want ErrClosed", err)
	}

	var asked atomic.Int32
	_, rec = subscriber(t, mint(t, 805, "eve", false), []string{n.URL}, nil, func(c *client.Config) {
		c.Subscriber.ReconnectAfterDisconnect = func(ev client.StateEvent) bool {
			asked.Add(1)
			return ev.CloseCode == wire.CloseDisconnected
		}
	})
	rec.waitFor(t, "connected", connectedTo(n.URL))
	disconnectOneSession(ctx, t, admin, 805)
	rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	rec.waitFor(t, "reconnected", connectedTo(n.URL))
	if asked.Load() != 1 {
		t.Fatalf("ReconnectAfterDisconnect asked %d times, want 1", asked.Load())
	}
	if got, err := admin.AdminDisconnect(ctx, 999_999); err != nil || got != 0 {
		t.Fatalf("AdminDisconnect of a user with no session = %d, %v; want 0", got, err)
	}
	if _, err := (mustClient(t, n.URL, mint(t, 805, "eve", false))).AdminDisconnect(ctx, 804); client.StatusCode(err) != 403 {
		t.Fatalf("AdminDisconnect as a non-admin: %v, want 403", err)
	}
}

// disconnectOneSession disconnects user id's one session as admin.
// "connected" is the handshake; the node registers the session just after
// it, so a disconnect right then may find none yet (and closes nothing):
// it asks again until it closes the one session.
func disconnectOneSession(ctx context.Context, t *testing.T, admin *client.Client, id int64) {
	t.Helper()
	var got int64
	var err error
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		if got, err = admin.AdminDisconnect(ctx, id); err != nil || got != 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || got != 1 {
		t.Fatalf("AdminDisconnect(%d) = %d, %v; want 1 session closed", id, got, err)
	}
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
