package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of a Chromium (or Chrome) binary:
// PRESENCE_CHROMIUM if set, else the first of the usual names on PATH; ""
// if there is none.
func Chromium() string {
	if p := os.Getenv("PRESENCE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser starts a headless Chromium for the test (skipping the test, with
// the reason, when there is none) and returns a context for its first tab;
// it is closed when the test ends. New tabs: chromedp.NewContext(ctx).
func Browser(t testing.TB) context.Context {
	t.Helper()
	bin := Chromium()
	if bin == "" {
		t.Skip("SKIP: no Chromium binary found (apt-get install -y chromium, or set PRESENCE_CHROMIUM): the browser tests need a real headless browser")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1400, 1000),
		// Root in a container has no user namespace sandbox to use.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run binds the browser to its context: the test's own,
	// not a shorter one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", bin, err)
	}
	return ctx
}

// ScreenshotDir is where tests write screenshots: PRESENCE_SCREENSHOT_DIR
// if set (created if needed), else a directory that outlives the test (so
// the logged paths can be opened afterwards).
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PRESENCE_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "presence-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	return dir
}

// Screenshot captures the whole page of ctx's tab as PNG into
// ScreenshotDir/name and logs the path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(ScreenshotDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return ""
	}
	t.Logf("screenshot: %s", path)
	return path
}
