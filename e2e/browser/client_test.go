package browsere2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/internal/testkit"
)

// clientState is what the page's PresenceClient saw.
type clientState struct {
	States []struct {
		State string `json:"state"`
		URL   string `json:"url"`
		Code  int    `json:"code"`
	} `json:"states"`
	Updates int `json:"updates"`
}

// TestJSClient runs the JavaScript client in Chromium, imported across
// origins from the node it does not talk to first: it receives pushes,
// survives the drain of its node (close 1012) by reconnecting at once to
// the next URL without missing the final state, and drops replayed or
// older versions.
func TestJSClient(t *testing.T) {
	browser := testkit.Browser(t)
	c := startCluster(t, 3, nil)
	ws := func(i int) string { return "ws://" + c.HTTPAddr(i) + "/ws/presence" }

	// A watched user whose owner is not p1, the node drained below: with
	// memory stores a record moved off a stopped node starts again.
	var user int64
	for id := int64(501); id < 600; id++ {
		c.Rests[1].Must(t).PutStatus(id, `{"is_online": true}`)
		in, err := c.Rests[1].InspectUser(id)
		if err != nil {
			t.Fatal(err)
		}
		if in.Owner != "p1" {
			user = id
			break
		}
	}
	const viewer = 700

	ctx := tab(t, browser)
	navigate(t, ctx, "http://"+c.HTTPAddr(0)+"/healthz")
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(async () => {
		const { PresenceClient } = await import("http://%s/client/presence.js");
		window.log = { states: [], updates: 0 };
		const client = new PresenceClient({ urls: [%q, %q, %q], token: () => %q, minBackoffMs: 100 });
		client.addEventListener("state", (e) => log.states.push(e.detail));
		client.addEventListener("update", () => log.updates++);
		client.subscribe([%d]);
		client.connect();
		window.client = client;
	})()`, c.HTTPAddr(1), ws(0), ws(1), ws(2), c.Tok.Of(viewer), user))
	waitJS(t, ctx, 5*time.Second, `client.state === "open"`, `JSON.stringify(log)`)

	version := func() uint64 { return eval[uint64](t, ctx, fmt.Sprintf(`client.get(%d)?.version ?? 0`, user)) }
	waitVersion := func(v uint64, within time.Duration) {
		t.Helper()
		waitJS(t, ctx, within, fmt.Sprintf(`(client.get(%d)?.version ?? 0) >= %d`, user, v),
			fmt.Sprintf(`JSON.stringify({record: client.get(%d), log})`, user))
	}

	t.Run("receives pushes", func(t *testing.T) {
		st := c.Rests[2].Must(t).PutStatus(user, `{"is_busy": true}`)
		waitVersion(st.Version, 2*time.Second)
		if !eval[bool](t, ctx, fmt.Sprintf(`client.get(%d).is_busy`, user)) {
			t.Error("the pushed record is not busy")
		}
	})

	t.Run("survives a drain without missing the final state", func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Term(0, 30*time.Second)
		}()
		// Changes while p1 drains and after it left.
		c.Rests[2].Must(t).PutStatus(user, `{"is_busy": false}`)
		<-done
		final := c.Rests[2].Must(t).PutStatus(user, `{"is_online": false}`)
		waitVersion(final.Version, 10*time.Second)
		got := eval[map[string]any](t, ctx, fmt.Sprintf(`client.get(%d)`, user))
		if got["is_online"] != false || got["is_busy"] != false || uint64(got["version"].(float64)) != final.Version {
			t.Errorf("client ended with %v, want offline, not busy, version %d", got, final.Version)
		}
		log := eval[clientState](t, ctx, `log`)
		i := slices.IndexFunc(log.States, func(s struct {
			State string `json:"state"`
			URL   string `json:"url"`
			Code  int    `json:"code"`
		}) bool {
			return s.State == "reconnecting" && s.Code == 1012
		})
		if i < 0 {
			t.Fatalf("no reconnect on close code 1012: %+v", log.States)
		}
		reopened := false
		for _, s := range log.States[i:] {
			if s.State == "open" && s.URL == ws(1) {
				reopened = true
			}
		}
		if !reopened {
			t.Errorf("after 1012 the client did not open the next URL %s: %+v", ws(1), log.States)
		}
		t.Logf("states: %+v", log.States)
	})

	t.Run("drops replayed and older versions", func(t *testing.T) {
		v := version()
		before := eval[int](t, ctx, `log.updates`)
		for _, older := range []uint64{v, v - 1} {
			eval[chromedp.Void](t, ctx, fmt.Sprintf(`client.handleFrame(JSON.stringify({type: "presence_update",
				data: {...client.get(%d), is_online: true, is_busy: true, version: %d}}))`, user, older))
		}
		if n := eval[int](t, ctx, `log.updates`); n != before {
			t.Errorf("%d update events for replayed versions %d and %d", n-before, v, v-1)
		}
		if eval[bool](t, ctx, fmt.Sprintf(`client.get(%d).is_busy || client.get(%d).version !== %d`, user, user, v)) {
			t.Errorf("a replayed version changed the record: %v", eval[map[string]any](t, ctx, fmt.Sprintf(`client.get(%d)`, user)))
		}
		// A real, newer change still comes through.
		st := c.Rests[1].Must(t).PutStatus(user, `{"is_busy": true}`)
		waitVersion(st.Version, 2*time.Second)
	})

	t.Run("follows the heartbeat advice", func(t *testing.T) {
		eval[chromedp.Void](t, ctx, `client.handleFrame(JSON.stringify({type: "subscribed", user_ids: [], heartbeat_interval_seconds: 7}))`)
		if s := eval[float64](t, ctx, `client.heartbeatSeconds`); s != 7 {
			t.Errorf("heartbeat interval %v s after advice of 7 s", s)
		}
	})
}
