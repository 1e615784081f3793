package browsere2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// fakeFiftyMembers replaces the page's fetch of /admin/cluster and
// /admin/stats with a 50-member cluster (other paths go to the node), so
// the layout can be checked with more members than a test can start.
const fakeFiftyMembers = `(() => {
	const names = Array.from({length: 50}, (_, i) => "presence-" + String(i).padStart(2, "0") + "-5f3a9c1e");
	const cluster = {node: names[0], standalone: false, epoch: 97, members: names.map((n, i) => ({
		name: n, node_name: n.slice(0, 11), status: i === 7 ? "suspect" : "alive", draining: i === 9, owns_users: i !== 9,
		self: i === 0, http_addr: "10.42." + i + ".17:8000", gossip_addr: "10.42." + i + ".17:7946",
		remote_addr: "10.42." + i + ".17:8090", actors_hosted: i === 7 ? null : 1000 + i, error: i === 7 ? "unreachable: timeout" : undefined,
	}))};
	let tick = 0;
	const stats = () => {
		tick++;
		return {node: "presence-00", time: new Date(Date.now()).toISOString(), members: names.map((n, i) => i === 7
			? {name: n, node_name: n.slice(0, 11), self: false, error: "unreachable: timeout"}
			: {name: n, node_name: n.slice(0, 11), self: i === 0, started_at: null, actors_active: 1000 + i, sessions_open: 2000 + i,
				http_requests_total: tick * (100 + i), http_client_errors_total: tick, http_server_errors_total: 0,
				offline_push_delay_count: tick * 3, offline_push_delay_sum_seconds: tick * 45.5, flaps_suppressed_total: tick * 2,
				ghosts_total: 0, cpu_seconds_total: tick * 0.1, goroutines: 100, heap_bytes: 1 << 24})};
	};
	const real = window.fetch.bind(window);
	const json = (v) => new Response(JSON.stringify(v), {status: 200, headers: {"Content-Type": "application/json"}});
	window.fetch = (path, opts) => path === "/admin/cluster" ? Promise.resolve(json(cluster))
		: path === "/admin/stats" ? Promise.resolve(json(stats())) : real(path, opts);
})()`

// TestDashboardFiftyMembers: with 50 members the members table scrolls in
// its own box (header kept), the page does not overflow sideways, and the
// other panels stay in view.
func TestDashboardFiftyMembers(t *testing.T) {
	browser := testkit.Browser(t)
	tok := testkit.NewTokens([]byte(testkit.ProcSecret))
	n := testkit.StartStandalone(t, node.Config{}, testkit.ProcSecret)
	ctx := tab(t, browser)
	recordPageErrors(t, ctx)
	navigate(t, ctx, n.Base+"/admin/")
	waitJS(t, ctx, 10*time.Second, `!document.querySelector("#signin").hidden`, `document.body.innerText`)
	eval[chromedp.Void](t, ctx, fakeFiftyMembers)
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
		document.querySelector("#token").value = %q;
		document.querySelector("#signin-form").requestSubmit();
	})()`, tok.Of(testkit.AdminID)))
	waitJS(t, ctx, 10*time.Second, `document.querySelectorAll("#members tbody tr").length === 50 &&
		document.querySelector("#members tbody tr td:nth-child(10)").textContent !== "–"`, `document.querySelector("#cluster").innerText`)
	type layout struct {
		ScrollH, ClientH, PageW, ViewW, SLITop, ViewH int
		Suspect, Unreachable                          string
	}
	l := eval[layout](t, ctx, `(() => {
		const box = document.querySelector("#cluster .scroll");
		const rows = document.querySelectorAll("#members tbody tr");
		return {ScrollH: box.scrollHeight, ClientH: box.clientHeight,
			PageW: document.documentElement.scrollWidth, ViewW: window.innerWidth,
			SLITop: Math.round(document.querySelector("#slis").getBoundingClientRect().top), ViewH: window.innerHeight,
			Suspect: rows[7].children[2].textContent, Unreachable: rows[7].children[8].textContent + " (" + rows[7].children[8].title + ")"};
	})()`)
	if l.ScrollH <= l.ClientH {
		t.Errorf("the members table does not scroll in its box: %+v", l)
	}
	if l.PageW > l.ViewW {
		t.Errorf("the page is %d px wide in a %d px window", l.PageW, l.ViewW)
	}
	if l.SLITop >= l.ViewH {
		t.Errorf("the SLI panel starts at %d px, below the %d px window: the table pushes everything off screen", l.SLITop, l.ViewH)
	}
	if l.Suspect != "suspect" || l.Unreachable != "unreachable (unreachable: timeout)" {
		t.Errorf("member 7 shows state %q, actors %q", l.Suspect, l.Unreachable)
	}
	if errs := pageErrors(t, ctx); len(errs) > 0 {
		t.Errorf("the dashboard logged errors: %q", errs)
	}
	testkit.Screenshot(t, ctx, "dashboard-50-members.png")
}
