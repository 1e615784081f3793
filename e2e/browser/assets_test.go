package browsere2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestBrowserAssets checks the headers every browser file is served with
// (no browser needed): the dashboard's strict CSP and framing ban, the
// client module's open CORS and JavaScript type, gzip, revalidation, and
// that the pages hold no inline script or style the CSP would block.
func TestBrowserAssets(t *testing.T) {
	n := testkit.StartStandalone(t, node.Config{}, "browser-assets-secret-0123456789abcdef")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	get := func(t *testing.T, path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.Base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	files := []struct{ path, ctype string }{
		{"/admin/", "text/html; charset=utf-8"},
		{"/admin/dashboard.js", "text/javascript; charset=utf-8"},
		{"/admin/charts.js", "text/javascript; charset=utf-8"},
		{"/admin/dashboard.css", "text/css; charset=utf-8"},
		{"/client/presence.js", "text/javascript; charset=utf-8"},
	}
	inlineScript := regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`)
	for _, f := range files {
		t.Run(f.path, func(t *testing.T) {
			res, plain := get(t, f.path, map[string]string{"Accept-Encoding": "identity"})
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != f.ctype {
				t.Fatalf("GET %s: %d %q, want 200 %q", f.path, res.StatusCode, res.Header.Get("Content-Type"), f.ctype)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			client := f.path == "/client/presence.js"
			if got := res.Header.Get("Access-Control-Allow-Origin"); client != (got == "*") {
				t.Errorf("Access-Control-Allow-Origin %q on %s", got, f.path)
			}
			if got := res.Header.Get("Content-Security-Policy"); !client && got != api.DashboardCSP {
				t.Errorf("Content-Security-Policy %q, want %q", got, api.DashboardCSP)
			}
			if !client && res.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("X-Frame-Options %q", res.Header.Get("X-Frame-Options"))
			}
			body := string(plain)
			if inlineScript.MatchString(body) || strings.Contains(body, " style=") || strings.Contains(body, "<style") {
				t.Errorf("%s has inline script or style, which the CSP blocks", f.path)
			}
			if strings.Contains(body, "eval(") || strings.Contains(body, "new Function") || strings.Contains(body, ".innerHTML") {
				t.Errorf("%s uses eval, new Function or innerHTML", f.path)
			}

			res, zipped := get(t, f.path, map[string]string{"Accept-Encoding": "gzip, deflate, br"})
			if res.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("no gzip for a client that accepts it")
			}
			zr, err := gzip.NewReader(bytes.NewReader(zipped))
			if err != nil {
				t.Fatal(err)
			}
			unzipped, _ := io.ReadAll(zr)
			if !bytes.Equal(unzipped, plain) {
				t.Error("the gzip body is not the file")
			}
			res, _ = get(t, f.path, map[string]string{"If-None-Match": res.Header.Get("ETag")})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with the ETag answered %d, want 304", res.StatusCode)
			}
			t.Logf("%s: %d bytes, %d gzipped", f.path, len(plain), len(zipped))
		})
	}
	t.Run("/admin serves the page too", func(t *testing.T) {
		res, body := get(t, "/admin", nil)
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("/admin/dashboard.js")) {
			t.Errorf("GET /admin: %d %.80q", res.StatusCode, body)
		}
	})
}
