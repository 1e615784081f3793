package browsere2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestDashboard signs in to a node's dashboard in Chromium and checks what
// an operator sees: a refused token explained (not a blank page), every
// member of a three-node cluster, a user's state after a PUT through
// another node (with its owner), and the live view following a change
// within a second.
func TestDashboard(t *testing.T) {
	browser := testkit.Browser(t)
	// A short disconnect grace, so closed sessions make offline
	// transitions (the offline push delay SLI) within the test.
	c := startCluster(t, 3, map[string]string{"PRESENCE_DISCONNECT_GRACE": "1s"})
	p1 := c.Proc(0)
	ctx := tab(t, browser)
	recordPageErrors(t, ctx)
	navigate(t, ctx, "http://"+p1.HTTP+"/admin/")
	waitJS(t, ctx, 10*time.Second, `!document.querySelector("#signin").hidden`, `document.body.innerText`)

	signIn := func(token string) {
		t.Helper()
		eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
			document.querySelector("#token").value = %q;
			document.querySelector("#signin-form").requestSubmit();
		})()`, token))
	}

	t.Run("a refused token is explained", func(t *testing.T) {
		signIn("not-a-token")
		waitJS(t, ctx, 5*time.Second, `!document.querySelector("#signin-error").hidden`, `document.body.innerText`)
		msg := eval[string](t, ctx, `document.querySelector("#signin-error").textContent`)
		if !strings.Contains(msg, "refused") || !strings.Contains(msg, "Invalid or expired token") {
			t.Errorf("error shown for a bad token: %q", msg)
		}
		signIn(c.Tok.Of(77))
		waitJS(t, ctx, 5*time.Second, `document.querySelector("#signin-error").textContent.includes("not an admin")`, `document.body.innerText`)
		if eval[bool](t, ctx, `!document.querySelector("#app").hidden`) {
			t.Error("the dashboard opened for a non-admin token")
		}
		if eval[bool](t, ctx, `sessionStorage.getItem("presence.admin.token") !== null`) {
			t.Error("a refused token was kept in sessionStorage")
		}
	})

	signIn(c.Tok.Of(testkit.AdminID))
	t.Run("every member is shown", func(t *testing.T) {
		waitJS(t, ctx, 10*time.Second, `document.querySelectorAll("#members tbody tr").length === 3 &&
			[...document.querySelectorAll("#members tbody tr td:nth-child(3)")].every(td => td.textContent === "alive")`,
			`document.querySelector("#members").innerText`)
		nodes := eval[[]string](t, ctx, `[...document.querySelectorAll("#members tbody tr")].map(tr => tr.dataset.node)`)
		if strings.Join(nodes, ",") != "p1,p2,p3" {
			t.Errorf("members shown: %v, want p1,p2,p3", nodes)
		}
		// Rates need two samples of /admin/stats.
		waitJS(t, ctx, 10*time.Second, `[...document.querySelectorAll("#members tbody tr td:nth-child(10)")].every(td => td.textContent !== "–")`,
			`document.querySelector("#members").innerText`)
	})

	const user = 4242
	want := c.Rests[1].Must(t).PutStatus(user, `{"is_online": true, "is_busy": true}`)
	t.Run("the admin endpoints answer through any node", func(t *testing.T) {
		for i := range 3 {
			st, err := c.Rests[i].Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Node != c.Name(i) || len(st.Members) != 3 {
				t.Errorf("stats via %s: node %q, %d members", c.Name(i), st.Node, len(st.Members))
			}
			for _, m := range st.Members {
				if m.Error != "" || m.StartedAt == nil || m.Goroutines == 0 || (m.NodeName == "p2" && m.HTTPRequests == 0) {
					t.Errorf("stats via %s: member %+v", c.Name(i), m)
				}
			}
			in, err := c.Rests[i].InspectUser(user)
			if err != nil || in.Version != want.Version || !in.IsBusy || in.Owner == "" {
				t.Errorf("inspect via %s: %+v %v", c.Name(i), in, err)
			}
		}
		if _, err := c.Rests[0].InspectUser(999_999); !testkit.IsHTTP(err, 404) {
			t.Errorf("inspect of an unknown user: %v, want 404", err)
		}
	})
	t.Run("user lookup shows the record and its owner", func(t *testing.T) {
		in, err := c.Rests[2].InspectUser(user)
		if err != nil {
			t.Fatal(err)
		}
		eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
			document.querySelector("#lookup-id").value = "%d";
			document.querySelector("#lookup-form").requestSubmit();
		})()`, user))
		waitJS(t, ctx, 5*time.Second, `!document.querySelector("#lookup-result").hidden`, `document.querySelector("#lookup").innerText`)
		got := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll("#lookup-result dd")].map(dd => [dd.dataset.field, dd.textContent]))`)
		if got["owner"] != in.Owner || !strings.HasPrefix(got["busy"], "yes") || got["online"] != "yes" || got["version"] != fmt.Sprint(want.Version) {
			t.Errorf("lookup shows %v; want owner %s, busy, online, version %d", got, in.Owner, want.Version)
		}
		if got["visibility"] != "presence everyone, last_seen everyone" {
			t.Errorf("lookup shows visibility %q, want the default", got["visibility"])
		}
	})

	t.Run("the live view follows a change within a second", func(t *testing.T) {
		eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
			document.querySelector("#live-ids").value = "%d, %d";
			document.querySelector("#live-form").requestSubmit();
		})()`, user, user+1))
		waitJS(t, ctx, 5*time.Second, fmt.Sprintf(`document.querySelector('#live-table tr[data-user="%d"]')?.dataset.version === "%d"`, user, want.Version),
			`document.querySelector("#live").innerText`)
		// The dashboard's hub on p1 now watches the user.
		testkit.Eventually(t, 5*time.Second, "the user's actor counts p1's hub as a watcher", func() error {
			in, err := c.Rests[0].InspectUser(user)
			if err == nil && in.Watchers < 1 {
				err = fmt.Errorf("watchers = %d", in.Watchers)
			}
			return err
		})
		start := time.Now()
		st := c.Rests[2].Must(t).PutStatus(user, `{"is_busy": false}`)
		took := waitJS(t, ctx, time.Second, fmt.Sprintf(`document.querySelector('#live-table tr[data-user="%d"]')?.dataset.version === "%d"`, user, st.Version),
			`document.querySelector("#live").innerText`)
		if busy := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#live-table tr[data-user="%d"]').dataset.busy`, user)); busy != "false" {
			t.Errorf("live view shows busy=%s after is_busy false", busy)
		}
		t.Logf("live view updated %v after the PUT was sent (%v after its answer)", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	})

	t.Run("the SLIs chart offline transitions and flaps", func(t *testing.T) {
		// Two rounds, a few seconds apart, so the delay chart has two
		// samples with transitions: sessions that close for good (offline
		// after the grace) and one that re-attaches inside it (a flap).
		for round := range 2 {
			for k := range 3 {
				id := int64(user + 10 + 3*round + k)
				ws, err := testkit.DialWS(c.HTTPAddr(k), testkit.WSQuery(c.Tok.Of(id), ""), testkit.WSOptions{})
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
				ws.Close()
			}
			flap := int64(user + 20)
			ws, err := testkit.DialWS(c.HTTPAddr(1), testkit.WSQuery(c.Tok.Of(flap), ""), testkit.WSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			ws.Close()
			// Inside the 1 s grace, after the close reached the actor.
			time.Sleep(300 * time.Millisecond)
			ws, err = testkit.DialWS(c.HTTPAddr(2), testkit.WSQuery(c.Tok.Of(flap), ""), testkit.WSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			time.Sleep(3 * time.Second)
		}
		waitJS(t, ctx, 10*time.Second, `/over ([6-9]|\d\d)/.test(document.querySelector("#chart-delay .value").textContent) &&
			document.querySelectorAll("#chart-delay polyline").length === 1 &&
			/^[1-9]/.test(document.querySelector("#chart-flaps .value").textContent)`,
			`document.querySelector("#slis").innerText`)
	})

	// A few more users in the live view, for the screenshot.
	c.Rests[0].Must(t).PutStatus(user+1, `{"is_online": true}`)
	c.Rests[1].Must(t).Heartbeat(user + 2)
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
		document.querySelector("#live-ids").value = "%d";
		document.querySelector("#live-form").requestSubmit();
	})()`, user+2))
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(`document.querySelector('#live-table tr[data-user="%d"]')?.dataset.online === "true"`, user+2),
		`document.querySelector("#live").innerText`)
	if errs := pageErrors(t, ctx); len(errs) > 0 {
		t.Errorf("the dashboard logged errors: %q", errs)
	}
	png := testkit.Screenshot(t, ctx, "dashboard.png")
	if os.Getenv("PRESENCE_UPDATE_DOCS_SCREENSHOT") == "1" && png != "" {
		b, err := os.ReadFile(png)
		if err == nil {
			err = os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), b, 0o644)
		}
		if err != nil {
			t.Errorf("update docs/dashboard.png: %v", err)
		}
	}
}
