package browsere2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/presence-cluster/presence/internal/testkit"
)

// startCluster starts n presenced processes (memory stores) and waits until
// each sees all n alive.
func startCluster(t *testing.T, n int, env map[string]string) *testkit.ProcCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs cmd/presenced and Chromium")
	}
	all := map[string]string{"PRESENCE_STORE": "memory", "PRESENCE_WRITE_RATE": "-1"}
	for k, v := range env {
		all[k] = v
	}
	c := testkit.NewProcCluster(t, testkit.BuildPresenced(t), testkit.NewTokens([]byte(testkit.ProcSecret)), n, all)
	c.StartAll()
	c.WaitFormed(30*time.Second, fmt.Sprintf("%d processes form a cluster", n))
	return c
}

// tab opens a new tab of the browser of ctx; it closes when the test ends.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first Run opens the tab and binds it to its context: this one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// eval evaluates a JavaScript expression in the tab (awaiting a promise it
// returns) and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript predicate until it is truthy, failing the test
// after timeout with what describe (an expression) shows then.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, predicate, describe string) time.Duration {
	t.Helper()
	start := time.Now()
	c, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer cancel()
	_, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
		t.Fatalf("waited %v for %s: %v\n    page shows: %s", timeout, predicate, err, state)
	}
	return time.Since(start)
}

// navigate loads url in the tab.
func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// pageErrorsJS records, from the start of every document of the tab, what
// a person would see in the console as a failure: CSP violations, uncaught
// exceptions and unhandled promise rejections.
const pageErrorsJS = `window.__pageErrors = [];
document.addEventListener("securitypolicyviolation", (e) => __pageErrors.push("CSP blocked " + e.blockedURI + " (" + e.violatedDirective + ")"));
window.addEventListener("error", (e) => __pageErrors.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => __pageErrors.push("unhandled rejection: " + e.reason));`

// recordPageErrors makes every later document of the tab record its errors
// (read them with pageErrors).
func recordPageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageErrorsJS})
		return chromedp.Void{}, err
	})
	if err != nil {
		t.Fatalf("install the page error recorder: %v", err)
	}
}

// pageErrors returns what the recorder saw in the current document.
func pageErrors(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `window.__pageErrors || ["the page error recorder is missing"]`)
}
