package browsere2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// fakeSockets installs, in the page, the client module with a fake
// WebSocket whose opens and closes the test drives, and a token function
// that counts its calls.
const fakeSockets = `(async () => {
	const { PresenceClient } = await import("/client/presence.js");
	class FakeWS {
		constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.at = performance.now(); FakeWS.all.push(this); }
		send(d) { this.sent.push(JSON.parse(d)); }
		close() { this.readyState = 3; }
		open() { this.readyState = 1; this.onopen && this.onopen(); }
		drop(code) { this.readyState = 3; FakeWS.droppedAt = performance.now(); this.onclose && this.onclose({ code, reason: "" }); }
	}
	FakeWS.all = [];
	window.FakeWS = FakeWS;
	window.tokens = 0;
	window.states = [];
	window.client = new PresenceClient({
		urls: ["ws://a.test/ws/presence", "ws://b.test/ws/presence"],
		token: () => "t" + (++window.tokens), minBackoffMs: 300, maxBackoffMs: 1000, WebSocket: FakeWS,
	});
	client.addEventListener("state", (e) => states.push(e.detail));
	client.subscribe([1, 2]);
	client.connect();
})()`

// TestJSClientReconnectPolicy drives the client's reconnect rules with a
// fake WebSocket in a real page: subscriptions sent on open and again
// after every reconnect; 1012 reconnects at once to the next URL; 1013
// backs off; a failed attempt moves to the next URL; 4001 reconnects at
// once with a fresh token; 4003 stays closed.
func TestJSClientReconnectPolicy(t *testing.T) {
	browser := testkit.Browser(t)
	n := testkit.StartStandalone(t, node.Config{}, testkit.ProcSecret)
	ctx := tab(t, browser)
	navigate(t, ctx, n.Base+"/healthz")
	eval[chromedp.Void](t, ctx, fakeSockets)

	last := func() string { return `FakeWS.all[FakeWS.all.length - 1]` }
	sockets := func() int { return eval[int](t, ctx, `FakeWS.all.length`) }
	waitSockets := func(n int, within time.Duration) time.Duration {
		t.Helper()
		return waitJS(t, ctx, within, `FakeWS.all.length >= `+itoa(n), `JSON.stringify({urls: FakeWS.all.map(w => w.url), states})`)
	}
	// gap is how long after the last drop the newest socket was made, in
	// the page's own clock.
	gap := func() time.Duration {
		ms := eval[float64](t, ctx, last()+`.at - FakeWS.droppedAt`)
		return time.Duration(ms * float64(time.Millisecond))
	}
	url := func() string {
		u := eval[string](t, ctx, last()+`.url`)
		return u[:strings.Index(u, "?")]
	}

	waitSockets(1, 2*time.Second)
	eval[chromedp.Void](t, ctx, last()+`.open()`)
	if got := eval[string](t, ctx, `JSON.stringify(`+last()+`.sent)`); got != `[{"type":"subscribe","user_ids":[1,2]}]` {
		t.Errorf("frames sent on open: %s", got)
	}
	eval[chromedp.Void](t, ctx, `client.subscribe([3]); client.unsubscribe([2])`)
	if got := eval[string](t, ctx, `JSON.stringify(`+last()+`.sent.slice(1))`); got != `[{"type":"subscribe","user_ids":[3]},{"type":"unsubscribe","user_ids":[2]}]` {
		t.Errorf("frames sent for subscribe/unsubscribe: %s", got)
	}

	// 1012: at once, to the next URL, re-subscribing what is current.
	eval[chromedp.Void](t, ctx, last()+`.drop(1012)`)
	waitSockets(2, 2*time.Second)
	if g := gap(); g > 50*time.Millisecond {
		t.Errorf("reconnect after 1012 took %v, want at once", g)
	}
	if u := url(); u != "ws://b.test/ws/presence" {
		t.Errorf("after 1012 the client dialled %s, want the next URL", u)
	}
	eval[chromedp.Void](t, ctx, last()+`.open()`)
	if got := eval[string](t, ctx, `JSON.stringify(`+last()+`.sent)`); got != `[{"type":"subscribe","user_ids":[1,3]}]` {
		t.Errorf("frames sent after the reconnect: %s", got)
	}

	// 1013: back off (at least minBackoffMs), same URL.
	eval[chromedp.Void](t, ctx, last()+`.drop(1013)`)
	time.Sleep(150 * time.Millisecond)
	if sockets() != 2 {
		t.Fatalf("reconnected at once after 1013")
	}
	waitSockets(3, 3*time.Second)
	if g := gap(); g < 300*time.Millisecond {
		t.Errorf("reconnected %v after 1013, want at least the 300 ms minimum backoff", g)
	}
	if u := url(); u != "ws://b.test/ws/presence" {
		t.Errorf("after 1013 the client dialled %s, want the same URL", u)
	}
	// That attempt fails (1006): the next one goes to the other URL.
	eval[chromedp.Void](t, ctx, last()+`.drop(1006)`)
	waitSockets(4, 3*time.Second)
	if u := url(); u != "ws://a.test/ws/presence" {
		t.Errorf("after a failed attempt the client dialled %s, want the next URL", u)
	}
	eval[chromedp.Void](t, ctx, last()+`.open()`)

	// 4001: at once, with a fresh token.
	before := eval[int](t, ctx, `tokens`)
	eval[chromedp.Void](t, ctx, last()+`.drop(4001)`)
	waitSockets(5, 2*time.Second)
	if g := gap(); g > 50*time.Millisecond {
		t.Errorf("reconnect after 4001 took %v, want at once", g)
	}
	if after := eval[int](t, ctx, `tokens`); after != before+1 || !strings.Contains(eval[string](t, ctx, last()+`.url`), "token=t"+itoa(after)) {
		t.Errorf("after 4001: token asked %d times (was %d), dialled %s", after, before, eval[string](t, ctx, last()+`.url`))
	}
	eval[chromedp.Void](t, ctx, last()+`.open()`)

	// 4003: an operator disconnected the user: stay closed.
	eval[chromedp.Void](t, ctx, last()+`.drop(4003)`)
	time.Sleep(time.Second)
	if sockets() != 5 || eval[string](t, ctx, `client.state`) != "closed" {
		t.Errorf("after 4003: %d sockets, state %s; want no reconnect", sockets(), eval[string](t, ctx, `client.state`))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
