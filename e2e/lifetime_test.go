package e2e

// Session lifetime: a WebSocket session ends when its token does (4001),
// a refresh frame moves that end, and an admin disconnect ends all of a
// user's sessions (4003).

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

// lifetimePing is the ping interval of the lifetime tests: the pinger
// looks at the sessions every eighth of it, so an expired session is
// closed within lifetimePing/8 of its deadline. A client that does not
// answer a ping within twice the interval is dropped (1000), so it is not
// shorter: on a loaded machine (the race pass) a 400 ms interval dropped
// sessions before their token expired.
const lifetimePing = 2 * time.Second

// lifetimeSlack is how late after exp (no leeway) the close may come:
// the contract's one second.
const lifetimeSlack = time.Second

// startLifetimeNode starts a node with no JWT leeway (PRESENCE_JWT_LEEWAY=0s)
// and a short ping interval.
func startLifetimeNode(t *testing.T) *testNode {
	return startNode(t, node.Config{
		Auth:   node.AuthConfig{Leeway: node.NoJWTLeeway},
		API:    api.Config{WS: ws.Config{PingInterval: lifetimePing}},
		Actors: actors.Config{DisconnectGrace: 300 * time.Millisecond},
	})
}

// tokenUntil mints a token of user id (testSecret) expiring at exp.
func tokenUntil(id int64, exp time.Time) string {
	return testkit.MintUntil([]byte(testSecret), id, "user"+strconv.FormatInt(id, 10), exp)
}

// soon is a whole second (JWT exp has second precision) 2 to 3 seconds
// ahead.
func soon() time.Time { return time.Now().Add(3 * time.Second).Truncate(time.Second) }

// expectEndedAt asserts that the server closed c with code and reason, no
// earlier than notBefore and no later than notBefore + lifetimeSlack.
func (c *wsClient) expectEndedAt(code int, reason string, notBefore time.Time) {
	c.t.Helper()
	_, err, ended := c.waitEnd(time.Until(notBefore) + wsWait)
	at := time.Now()
	if !ended {
		c.t.Fatalf("%s: still open %v after %v", c.Name, at.Sub(notBefore), notBefore)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Text != reason {
		c.t.Fatalf("%s: ended with %v, want close %d %q", c.Name, err, code, reason)
	}
	if at.Before(notBefore) || at.After(notBefore.Add(lifetimeSlack)) {
		c.t.Fatalf("%s: closed at %v, want within %v after %v", c.Name, at.Format(time.StampMilli), lifetimeSlack, notBefore.Format(time.StampMilli))
	}
}

// expectRefreshed asserts that the next frame is exactly
// {"type":"refreshed","expires_at":exp}.
func (c *wsClient) expectRefreshed(exp time.Time) {
	c.t.Helper()
	m := c.expectType(wire.TypeRefreshed)
	if err := wsCheckKeys(m, "type", "expires_at"); err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	if want := exp.UTC().Format(time.RFC3339); m.ExpiresAt != want {
		c.t.Fatalf("%s: expires_at %q, want %q", c.Name, m.ExpiresAt, want)
	}
}

// sendRefresh sends a refresh frame with token.
func (c *wsClient) sendRefresh(token string) {
	c.t.Helper()
	if err := c.Send(wire.RefreshFrame(token)); err != nil {
		c.t.Fatalf("%s: send refresh: %v", c.Name, err)
	}
}

// TestSessionExpiresWithToken: with no leeway, a session is closed with
// 4001 "token expired" within a second of its token's exp, and not before.
func TestSessionExpiresWithToken(t *testing.T) {
	n := startLifetimeNode(t)
	exp := soon()
	c := wsDial(t, n, "short", wsQuery(tokenUntil(501, exp), ""), nil)
	c.sync()
	c.expectEndedAt(wire.CloseTokenExpired, wire.CloseTokenExpiredReason, exp)
	wsWaitSessions(t, n, 501, 0)
}

// TestRefreshExtendsSession: a refresh with a later token of the same user
// keeps the session open past the old exp; a refresh always replaces the
// expiry, so a later one with an earlier token brings the end forward.
func TestRefreshExtendsSession(t *testing.T) {
	n := startLifetimeNode(t)
	exp := soon()
	c := wsDial(t, n, "refreshing", wsQuery(tokenUntil(502, exp), ""), nil)
	c.sync()

	later := time.Now().Add(time.Hour).Truncate(time.Second)
	c.sendRefresh(tokenUntil(502, later))
	c.expectRefreshed(later)

	// Two of the pinger's looks past the old end: still open.
	time.Sleep(time.Until(exp.Add(lifetimeSlack + lifetimePing/4)))
	c.sync()
	if closed, err := c.Closed(); closed {
		t.Fatalf("session ended after a refresh: %v", err)
	}

	earlier := soon()
	c.sendRefresh(tokenUntil(502, earlier))
	c.expectRefreshed(earlier)
	c.expectEndedAt(wire.CloseTokenExpired, wire.CloseTokenExpiredReason, earlier)
}

// TestRefreshRefused: a refresh with another user's token, an expired
// token, a forged one, garbage or a token that is not a string gets an
// error frame, the session stays open, and it still ends at the old exp.
func TestRefreshRefused(t *testing.T) {
	n := startLifetimeNode(t)
	exp := soon()
	c := wsDial(t, n, "refused", wsQuery(tokenUntil(503, exp), ""), nil)
	c.sync()
	far := time.Now().Add(time.Hour)
	for _, tc := range []struct{ name, frame, detail string }{
		{"another user's token", refreshText(tokenUntil(504, far)), "refresh refused: the token is for another user"},
		{"expired token", refreshText(tokenUntil(503, time.Now().Add(-2*time.Second))), "refresh refused: invalid or expired token"},
		{"forged token", refreshText(testkit.MintUntil([]byte("another-secret-0123456789abcdefgh"), 503, "user503", far)), "refresh refused: invalid or expired token"},
		{"garbage", refreshText("not.a.jwt"), "refresh refused: invalid or expired token"},
		{"no token", `{"type":"refresh"}`, "token is required: a JWT string"},
		{"number token", `{"type":"refresh","token":12}`, "token is required: a JWT string"},
	} {
		c.sendText(tc.frame)
		if got := c.expectError(); got != tc.detail {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.detail)
		}
	}
	c.sync()
	c.expectEndedAt(wire.CloseTokenExpired, wire.CloseTokenExpiredReason, exp)
}

func refreshText(token string) string { return `{"type":"refresh","token":"` + token + `"}` }

// TestZeroLeewayIsHonoured: PRESENCE_JWT_LEEWAY=0s (NoJWTLeeway) refuses a
// token that expired a second ago, which the default leeway (30s) accepts.
func TestZeroLeewayIsHonoured(t *testing.T) {
	tok := tokenUntil(505, time.Now().Add(-time.Second))
	strict := startLifetimeNode(t)
	expectDetail(t, strict.withToken(t, tok).getStatusRaw(), http.StatusUnauthorized, "Invalid or expired token")
	lenient := startNode(t, node.Config{})
	expectOK(t, lenient.withToken(t, tok).getStatusRaw())
}

// TestAdminDisconnect: the admin endpoint closes every session of the
// user with 4003 and counts them; other users' sessions stay; the user
// goes offline after the disconnect grace. Bad input: 401, 403, 422, and
// 200 with 0 for a user with no session.
func TestAdminDisconnect(t *testing.T) {
	n := startLifetimeNode(t)
	a1 := wsDialUser(t, n, 511, "alice", "")
	a2 := wsDialUser(t, n, 511, "alice", "")
	bob := wsDialUser(t, n, 512, "bob", "511")
	for _, c := range []*wsClient{a1, a2} {
		c.sync()
	}
	bob.expectSubscribed(511)
	bob.expectUpdate(511, true, false)

	r := n.admin(t).do(http.MethodPost, "/admin/users/511/disconnect", nil)
	expectJSONEqual(t, expectOK(t, r).Body, `{"message":"User disconnected","sessions_closed":2}`)
	for _, c := range []*wsClient{a1, a2} {
		_, err, ended := c.waitEnd(wsWait)
		var ce *websocket.CloseError
		if !ended || !errors.As(err, &ce) || ce.Code != wire.CloseDisconnected || ce.Text != wire.CloseDisconnectedReason {
			t.Fatalf("%s: ended %v with %v, want close 4003 %q", c.Name, ended, err, wire.CloseDisconnectedReason)
		}
	}
	// Bob's session stays, and sees alice go offline after the grace.
	if !bob.WaitFor(wsWait, func() bool { p, ok := bob.Last(511); return ok && !p.IsOnline }) {
		t.Fatalf("bob did not see alice go offline: %s", bob.Dump(5))
	}
	if p := n.user(t, 512, "bob").presence(511); p.IsOnline {
		t.Fatalf("alice online after the disconnect and the grace: %+v", p)
	}

	// Nothing to do is not an error.
	r = n.admin(t).do(http.MethodPost, "/admin/users/511/disconnect", nil)
	expectJSONEqual(t, expectOK(t, r).Body, `{"message":"User disconnected","sessions_closed":0}`)
	r = n.admin(t).do(http.MethodPost, "/admin/users/987654/disconnect", nil)
	expectJSONEqual(t, expectOK(t, r).Body, `{"message":"User disconnected","sessions_closed":0}`)

	expectDetail(t, n.user(t, 512, "bob").do(http.MethodPost, "/admin/users/512/disconnect", nil), http.StatusForbidden, "Admin privileges required")
	expectDetail(t, n.withToken(t, "").do(http.MethodPost, "/admin/users/512/disconnect", nil), http.StatusUnauthorized, "Invalid or expired token")
	for _, bad := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
		r := n.admin(t).do(http.MethodPost, "/admin/users/"+bad+"/disconnect", nil)
		expectJSON(t, r, http.StatusUnprocessableEntity)
	}
	if closed, err := bob.Closed(); closed {
		t.Fatalf("bob's session ended: %v", err)
	}
}

// TestDaemonSessionLifetime: the presenced binary with
// PRESENCE_JWT_LEEWAY=0s refuses a token that expired a second ago and
// closes a session with 4001 within a second of its token's exp.
func TestDaemonSessionLifetime(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	addr := testkit.FreeAddr(t)
	testkit.StartProc(t, bin, "lifetime", map[string]string{
		"PRESENCE_HTTP_ADDR": addr, "PRESENCE_JWT_SECRET": testSecret, "PRESENCE_STORE": "memory",
		"PRESENCE_STANDALONE": "true", "PRESENCE_JWT_LEEWAY": "0s", "PRESENCE_WS_PING_INTERVAL": "400ms",
	}, nil)
	hc := testkit.NewHTTPClient(5 * time.Second)
	testkit.Eventually(t, 20*time.Second, "presenced healthy", func() error {
		_, err := testkit.Send(context.Background(), hc, http.MethodGet, "http://"+addr+"/healthz", "", nil)
		return err
	})
	expired := tokenUntil(521, time.Now().Add(-time.Second))
	res, err := testkit.Send(context.Background(), hc, http.MethodGet, "http://"+addr+"/users/me/status", expired, nil)
	if err != nil || res.Code != http.StatusUnauthorized {
		t.Fatalf("token expired 1s ago with PRESENCE_JWT_LEEWAY=0s: %v, %v; want 401", res, err)
	}
	exp := soon()
	conn, err := testkit.DialWS(addr, testkit.WSQuery(tokenUntil(522, exp), ""), testkit.WSOptions{Name: "daemon-ws"})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{WSConn: conn, t: t, last: map[int64]uint64{}}
	t.Cleanup(c.Close)
	c.sync()
	c.expectEndedAt(wire.CloseTokenExpired, wire.CloseTokenExpiredReason, exp)
}
