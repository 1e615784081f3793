package ws

import (
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/wire"
)

const (
	localsIdentity = "presence.identity"
	localsIDs      = "presence.user_ids"
)

// Mount serves the WebSocket endpoint at GET path of r: the handshake
// checks (Upgrade) and then the session.
func (s *Server) Mount(r fiber.Router, path string) {
	r.Get(path, s.Upgrade, websocket.New(s.serveSession, websocket.Config{
		// Client frames are small (a subscribe to 1,000 ids is ~10 KiB and
		// is read past the buffer); 512 B keeps idle sessions lean.
		ReadBufferSize:  512,
		WriteBufferSize: 1024,
		// Idle sessions hold no write buffer: it comes from the pool per
		// write.
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  s.recoverSession,
	}))
}

// Upgrade authenticates a WebSocket handshake before upgrading it, so a
// bad token gets a plain HTTP 401 with the REST error body; the URL's
// user_ids, the per-user session cap and draining are checked here too.
func (s *Server) Upgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return reject(c, fiber.StatusUpgradeRequired, "WebSocket upgrade required")
	}
	// Checked before the token: a page of another site must learn
	// nothing from the answer.
	if !s.origins.AllowsHandshake(c.Get(fiber.HeaderOrigin), string(c.Request().Host())) {
		return reject(c, fiber.StatusForbidden, "Origin not allowed")
	}
	token := c.Query("token")
	if token == "" {
		var ok bool
		if token, ok = bearerToken(c.Get(fiber.HeaderAuthorization)); !ok {
			return unauthorized(c)
		}
	}
	id, exp, err := s.deps.Verifier.VerifyExpiry(token)
	if err != nil {
		return unauthorized(c)
	}
	var ids []int64
	if q := c.Query("user_ids"); q != "" {
		if ids, err = parseQueryIDs(q, s.cfg.MaxSubscriptions); err != nil {
			return reject(c, fiber.StatusUnprocessableEntity, err.Error())
		}
	}
	if s.hub.SessionCount(id.UserID) >= s.cfg.MaxSessionsPerUser {
		return reject(c, fiber.StatusTooManyRequests, "Too many sessions for this user")
	}
	if s.draining.Load() {
		return reject(c, fiber.StatusServiceUnavailable, "Draining")
	}
	c.Locals(localsIdentity, handshakeAuth{id: id, exp: exp})
	c.Locals(localsIDs, ids)
	// gofiber/contrib/websocket copies every query argument, header and
	// cookie of the handshake into the connection, for the connection's
	// whole life. What the session needs is parsed above; dropping the
	// rest first keeps credentials out of long-lived memory and a long
	// user_ids list (up to ~8 KiB) out of every session's footprint.
	args := c.Context().QueryArgs()
	args.Del("token")
	args.Del("user_ids")
	c.Request().Header.Del(fiber.HeaderAuthorization)
	c.Request().Header.Del(fiber.HeaderCookie)
	c.Request().Header.DelAllCookies()
	return c.Next()
}

// identityOf returns what Upgrade stored for the session: the user, the
// token's exp, and the URL's user_ids.
func identityOf(c *websocket.Conn) (auth.Identity, time.Time, []int64) {
	a, _ := c.Locals(localsIdentity).(handshakeAuth)
	ids, _ := c.Locals(localsIDs).([]int64)
	return a.id, a.exp, ids
}

// reject answers the handshake with status and the REST error body
// {"detail": detail}.
func reject(c *fiber.Ctx, status int, detail string) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendDetail(nil, detail))
}

// unauthorized answers a handshake without a valid token as the REST
// routes do.
func unauthorized(c *fiber.Ctx) error {
	c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
	return reject(c, fiber.StatusUnauthorized, "Invalid or expired token")
}

// bearerToken extracts the token of an "Authorization: Bearer" header.
func bearerToken(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}
