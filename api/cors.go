package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/api/ws"
)

// CORS for browser pages on the origins of Config.AllowedOrigins. Tokens
// travel in the Authorization header, never in cookies, so no
// Access-Control-Allow-Credentials is sent: a page needs the user's token
// to do anything, wherever it is served from.
const (
	corsAllowMethods  = "GET, PUT, POST, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type"
	corsExposeHeaders = "Retry-After, WWW-Authenticate"
	corsMaxAge        = "600"
)

// corsMiddleware answers preflights and adds Access-Control-Allow-Origin
// to responses for listed origins only; every response says Vary: Origin
// so caches keep the answers per origin apart.
func corsMiddleware(origins *ws.Origins) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Vary(fiber.HeaderOrigin)
		origin := c.Get(fiber.HeaderOrigin)
		listed := origins.Listed(origin)
		allow := origin
		if origins.Any() {
			allow = "*"
		}
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			// A preflight: answered here, whatever the route. An unlisted
			// origin gets no CORS header, so the browser refuses.
			if listed {
				c.Set(fiber.HeaderAccessControlAllowOrigin, allow)
				c.Set(fiber.HeaderAccessControlAllowMethods, corsAllowMethods)
				c.Set(fiber.HeaderAccessControlAllowHeaders, corsAllowHeaders)
				c.Set(fiber.HeaderAccessControlMaxAge, corsMaxAge)
			}
			return c.SendStatus(fiber.StatusNoContent)
		}
		if listed {
			c.Set(fiber.HeaderAccessControlAllowOrigin, allow)
			c.Set(fiber.HeaderAccessControlExposeHeaders, corsExposeHeaders)
		}
		return c.Next()
	}
}
