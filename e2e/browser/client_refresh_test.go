package browsere2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestJSClientRefreshesItsToken: a session opened with a token that
// expires in three seconds (no leeway) outlives it, because the client
// asks its token function again before the expiry and refreshes the
// session in place: no 4001, no reconnect, and pushes keep coming.
func TestJSClientRefreshesItsToken(t *testing.T) {
	browser := testkit.Browser(t)
	secret := testkit.ProcSecret
	cfg := node.Config{}
	cfg.Auth.Leeway = node.NoJWTLeeway
	n := testkit.StartStandalone(t, cfg, secret)
	const viewer, watched = 801, 802
	mint := func(ttl time.Duration) string {
		tok, err := auth.Mint([]byte(secret), auth.MintClaims{UserID: viewer, Username: "viewer", TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rest := testkit.NewREST(n.Addr(), testkit.NewTokens([]byte(secret)))
	rest.Must(t).PutStatus(watched, `{"is_online": true}`)

	ctx := tab(t, browser)
	navigate(t, ctx, n.Base+"/healthz")
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(async () => {
		const { PresenceClient } = await import("/client/presence.js");
		const tokens = [%q, %q];
		window.log = { states: [], refreshed: [], errors: [] };
		window.client = new PresenceClient({ token: () => tokens.length > 1 ? tokens.shift() : tokens[0] });
		client.addEventListener("state", (e) => log.states.push(e.detail.state + (e.detail.code ? ":" + e.detail.code : "")));
		client.addEventListener("refreshed", (e) => log.refreshed.push(e.detail.expires_at));
		client.addEventListener("error", (e) => log.errors.push(e.detail.detail || String(e.detail.error)));
		client.subscribe([%d]);
		client.connect();
	})()`, mint(3*time.Second), mint(time.Hour), watched))
	waitJS(t, ctx, 5*time.Second, `client.state === "open"`, `JSON.stringify(log)`)
	waitJS(t, ctx, 5*time.Second, `log.refreshed.length === 1`, `JSON.stringify(log)`)
	time.Sleep(4 * time.Second) // past the first token's expiry
	st := rest.Must(t).PutStatus(watched, `{"is_busy": true}`)
	waitJS(t, ctx, 3*time.Second, fmt.Sprintf(`client.get(%d)?.version === %d`, watched, st.Version), `JSON.stringify(log)`)
	log := eval[struct {
		States []string `json:"states"`
		Errors []string `json:"errors"`
	}](t, ctx, `log`)
	if len(log.States) != 2 || log.States[1] != "open" || len(log.Errors) > 0 {
		t.Errorf("the session did not simply stay open: states %v, errors %v", log.States, log.Errors)
	}
}
