package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/web"
)

// DashboardCSP is the Content-Security-Policy of the dashboard's pages:
// scripts and styles from this origin only (no inline script, no eval),
// connections to this origin and its WebSocket, never framed.
const DashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// asset is one embedded file, ready to serve: its bytes, a gzip copy when
// that is smaller, and a strong ETag.
type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

func loadAsset(path, contentType string) (*asset, error) {
	b, err := web.Files.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: embedded %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	a := &asset{body: b, contentType: contentType, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	if zw.Close() == nil && buf.Len() < len(b) {
		a.gz = buf.Bytes()
	}
	return a, nil
}

// serve answers with the asset, gzipped when the client accepts it, or 304
// when the client's copy is current. Browsers revalidate every load
// (no-cache), so a node upgrade is picked up at once.
func (a *asset) serve(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, a.contentType)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, a.etag)
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if strings.Contains(c.Get(fiber.HeaderIfNoneMatch), a.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	if a.gz != nil && strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(a.gz)
	}
	return c.Send(a.body)
}

// browserRoutes serves the dashboard at /admin/ and the JavaScript client
// at /client/presence.js, and adds the admin endpoints the dashboard reads
// (GET /admin/stats, GET /admin/users/{id}) when the Presence dependency
// can answer them. The files are public (they hold no secret); every call
// the dashboard makes carries the operator's token.
func (s *Server) browserRoutes(authed fiber.Handler) {
	pages := map[string]string{
		"/admin/":              "admin/index.html",
		"/admin/dashboard.js":  "admin/dashboard.js",
		"/admin/charts.js":     "admin/charts.js",
		"/admin/dashboard.css": "admin/dashboard.css",
		"/client/presence.js":  "client/presence.js",
	}
	for route, path := range pages {
		a, err := loadAsset(path, contentTypeOf(path))
		if err != nil {
			// go:embed put the files in the binary: this is a build defect.
			panic(err)
		}
		if route == "/client/presence.js" {
			s.app.Get(route, clientHeaders, a.serve)
		} else {
			s.app.Get(route, dashboardHeaders, a.serve)
		}
	}
	if src, ok := s.deps.Presence.(statsSource); ok {
		s.app.Get("/admin/stats", authed, s.requireAdmin, s.getStats(src))
	}
	if in, ok := s.deps.Presence.(inspector); ok {
		s.app.Get("/admin/users/:user_id", authed, s.requireAdmin, s.getUserInspection(in))
	}
}

func contentTypeOf(path string) string {
	switch {
	case strings.HasSuffix(path, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(path, ".css"):
		return "text/css; charset=utf-8"
	}
	return "text/javascript; charset=utf-8"
}

// dashboardHeaders: the dashboard is same-origin only, never framed, and
// runs no inline script.
func dashboardHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, DashboardCSP)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	return c.Next()
}

// clientHeaders: the client module may be imported by a page of any
// origin.
func clientHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set("Cross-Origin-Resource-Policy", "cross-origin")
	return c.Next()
}
