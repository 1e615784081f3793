// TestBrowserCORS tests PRESENCE_ALLOWED_ORIGINS in a real browser:
// headless Chromium, driven over the DevTools protocol (chromedp), loads a
// page from an allowed origin and one from a refused origin. The allowed
// page calls REST (a PUT with a bearer token, so a CORS preflight) and
// receives its WebSocket push; the refused page's fetch is blocked by CORS
// (its PUT never reaches the node) and its WebSocket handshake is refused.
//
// It skips when no Chromium is installed (Debian: apt-get install -y
// chromium; CI installs it).

package browsere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

const corsSecret = "browser-test-secret-0123456789abcdef"

// corsPage is what each test page runs: a WebSocket subscribed to the user
// itself (open once the subscription is confirmed), then a PUT through
// fetch (it needs a preflight: PUT, Authorization, JSON), then the wait
// for the push of the busy state it set. It reports in window.__result.
const corsPage = `<!doctype html><html><head><meta charset="utf-8"><title>presence CORS test</title></head><body>
<script type="module">
const q = new URLSearchParams(location.search);
const node = q.get("node"), token = q.get("token"), uid = Number(q.get("uid"));
const out = {origin: location.origin};
const ws = await new Promise(resolve => {
  let s;
  try { s = new WebSocket("ws://" + node + "/ws/presence?user_ids=" + uid + "&token=" + encodeURIComponent(token)); }
  catch (e) { resolve({result: "throw " + e}); return; }
  const timer = setTimeout(() => resolve({result: "timeout"}), 10000);
  // Subscribed: the node watches the user for this session from now on.
  s.onmessage = ev => { if (JSON.parse(ev.data).type === "subscribed") { clearTimeout(timer); resolve({result: "open", socket: s}); } };
  s.onclose = ev => { clearTimeout(timer); resolve({result: "refused " + ev.code}); };
});
out.ws = ws.result;
const pushed = ws.socket ? new Promise(resolve => {
  setTimeout(() => resolve("no push"), 10000);
  ws.socket.onmessage = ev => {
    const m = JSON.parse(ev.data);
    if (m.type === "presence_update" && m.data.user_id === uid && m.data.is_busy) resolve("push busy");
  };
}) : Promise.resolve("no socket");
try {
  const r = await fetch("http://" + node + "/users/me/status", {method: "PUT",
    headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}, body: JSON.stringify({is_busy: true})});
  const body = await r.json();
  out.rest = r.status + " busy=" + body.is_busy;
} catch (e) { out.rest = "blocked: " + e.name; }
out.push = await pushed;
window.__result = JSON.stringify(out);
</script></body></html>`

// servePage serves the test page on a new listener at host:0 and returns
// its base URL with the host as the browser will name it.
func servePage(t *testing.T, listenHost, urlHost string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(corsPage))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + net.JoinHostPort(urlHost, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

type corsOutcome struct{ Origin, WS, REST, Push string }

// visitCORS loads the page at base for user uid in a fresh browser tab and
// returns what it reported.
func visitCORS(t *testing.T, browser context.Context, base, nodeAddr string, uid int64) corsOutcome {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 40*time.Second)
	defer cancelT()
	tok := testkit.Mint(t, []byte(corsSecret), uid, fmt.Sprintf("browser%d", uid), false)
	u := base + "/?" + url.Values{"node": {nodeAddr}, "token": {tok}, "uid": {strconv.FormatInt(uid, 10)}}.Encode()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("load %s: %v", base, err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Poll[string](`window.__result`, chromedp.WithPollingTimeout(35*time.Second)))
	if err != nil {
		t.Fatalf("page %s: %v", base, err)
	}
	var o corsOutcome
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatalf("page result %q: %v", raw, err)
	}
	t.Logf("page %s: %+v", base, o)
	return o
}

func TestBrowserCORS(t *testing.T) {
	browser := testkit.Browser(t)
	allowed := servePage(t, "127.0.0.1", "127.0.0.1")
	refused := servePage(t, "127.0.0.1", "localhost") // another origin: another host name
	n := testkit.StartStandalone(t, node.Config{API: api.Config{AllowedOrigins: []string{allowed}}}, corsSecret)
	rest := testkit.NewREST(n.HTTPAddr(), testkit.NewTokens([]byte(corsSecret)))

	const good, bad = 7001, 7002
	o := visitCORS(t, browser, allowed, n.HTTPAddr(), good)
	if o.WS != "open" || o.REST != "200 busy=true" || o.Push != "push busy" {
		t.Errorf("allowed origin %s: %+v; want WebSocket open, REST 200, the push received", allowed, o)
	}
	o = visitCORS(t, browser, refused, n.HTTPAddr(), bad)
	if o.WS == "open" || o.REST[:min(len(o.REST), 7)] != "blocked" || o.Push == "push busy" {
		t.Errorf("refused origin %s: %+v; want WebSocket refused and fetch blocked", refused, o)
	}
	// The blocked PUT never reached the node: its preflight was refused.
	if p, err := rest.Presence(good, bad); err == nil && p.IsBusy {
		t.Errorf("the refused page's PUT changed the state: %+v", p)
	}
	if p, err := rest.Presence(bad, good); err != nil || !p.IsBusy {
		t.Errorf("the allowed page's PUT did not change the state: %+v %v", p, err)
	}
}
