package browsere2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// firstLoadJS sums what the page transferred (headers included), from the
// Resource Timing entries of a first load (nothing cached).
const firstLoadJS = `(() => {
	const nav = performance.getEntriesByType("navigation")[0];
	const res = performance.getEntriesByType("resource");
	return {
		total: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
		body: nav.encodedBodySize + res.reduce((s, r) => s + r.encodedBodySize, 0),
		files: 1 + res.length,
	};
})()`

type pageWeight struct {
	Total int `json:"total"`
	Body  int `json:"body"`
	Files int `json:"files"`
}

// TestDashboardCost measures what the dashboard costs: the bytes of a first
// load, and the CPU of the node that serves ten open dashboards (each
// polling /admin/cluster and /admin/stats every two seconds and holding a
// WebSocket) against the same node idle. It runs for
// PRESENCE_DASHBOARD_SECONDS (default 60) per phase, so it runs only when
// that variable is set; BENCHMARKS.md has its numbers.
func TestDashboardCost(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("PRESENCE_DASHBOARD_SECONDS"))
	if secs <= 0 {
		t.Skip("set PRESENCE_DASHBOARD_SECONDS (e.g. 60) to measure the dashboard's cost")
	}
	browser := testkit.Browser(t)
	c := startCluster(t, 3, nil)
	base := "http://" + c.HTTPAddr(0) + "/admin/"

	first := tab(t, browser)
	navigate(t, first, base)
	waitJS(t, first, 10*time.Second, `document.readyState === "complete"`, `document.readyState`)
	w := eval[pageWeight](t, first, firstLoadJS)
	t.Logf("first load of the dashboard: %d bytes transferred (%d bytes of bodies, gzip) in %d files", w.Total, w.Body, w.Files)
	if w.Total > 32<<10 {
		t.Errorf("first load transferred %d bytes, budget 32 KiB", w.Total)
	}

	pids := []int{c.Proc(0).Cmd.Process.Pid, c.Proc(1).Cmd.Process.Pid}
	phase := time.Duration(secs) * time.Second
	idle := cpuOver(t, pids, phase)

	for range 10 {
		ctx := tab(t, browser)
		navigate(t, ctx, base)
		waitJS(t, ctx, 10*time.Second, `!document.querySelector("#signin").hidden`, `document.body.innerText`)
		eval[struct{}](t, ctx, fmt.Sprintf(`(() => {
			document.querySelector("#token").value = %q;
			document.querySelector("#signin-form").requestSubmit();
		})()`, c.Tok.Of(testkit.AdminID)))
		waitJS(t, ctx, 10*time.Second, `document.querySelector("#live-state")?.textContent === "open"`, `document.body.innerText`)
	}
	reqBefore, _ := c.Rests[0].Metric(`presence_http_requests_total{code="200",method="GET",route="/admin/stats"}`)
	busy := cpuOver(t, pids, phase)
	reqAfter, _ := c.Rests[0].Metric(`presence_http_requests_total{code="200",method="GET",route="/admin/stats"}`)
	rate := (reqAfter - reqBefore) / phase.Seconds()
	t.Logf("over %v: serving node (p1) CPU %.2f%% of a core idle, %.2f%% with ten dashboards; another member (p2, answering the stats fan-out) %.2f%% -> %.2f%%; /admin/stats at %.1f req/s",
		phase, idle[0], busy[0], idle[1], busy[1], rate)
	if rate < 3 {
		t.Errorf("ten dashboards polled /admin/stats at %.1f req/s, want about 5", rate)
	}
}

// cpuOver returns the CPU each process used over d, in percent of a core,
// from /proc/<pid>/stat (utime + stime, in clock ticks of 1/100 s).
func cpuOver(t *testing.T, pids []int, d time.Duration) []float64 {
	t.Helper()
	before := make([]float64, len(pids))
	for i, pid := range pids {
		before[i] = cpuSeconds(t, pid)
	}
	time.Sleep(d)
	out := make([]float64, len(pids))
	for i, pid := range pids {
		out[i] = 100 * (cpuSeconds(t, pid) - before[i]) / d.Seconds()
	}
	return out
}

func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/stat: %v", pid, err)
	}
	// The command name (field 2) may hold spaces: count from after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}
