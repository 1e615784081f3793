package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

const identityKey = "presence.identity"

// authenticate verifies the bearer token and stores the caller's identity.
func (s *Server) authenticate(c *fiber.Ctx) error {
	token, ok := bearerToken(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return unauthorized(c)
	}
	id, err := s.deps.Verifier.Verify(token)
	if err != nil {
		return unauthorized(c)
	}
	c.Locals(identityKey, id)
	return c.Next()
}

func bearerToken(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

func unauthorized(c *fiber.Ctx) error {
	c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
	return writeDetail(c, fiber.StatusUnauthorized, detailInvalidToken)
}

func identity(c *fiber.Ctx) auth.Identity {
	id, _ := c.Locals(identityKey).(auth.Identity)
	return id
}

func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if !identity(c).Admin {
		return writeDetail(c, fiber.StatusForbidden, detailAdminRequired)
	}
	return c.Next()
}

func (s *Server) requestCtx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
}

func writeJSON(c *fiber.Ctx, st *messages.UserState, appendFn func([]byte, *messages.UserState) []byte) error {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	buf.B = appendFn(buf.B[:0], st)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	// SetBody copies (c.Send would keep the slice, which goes back to the
	// pool when this returns).
	c.Response().SetBody(buf.B)
	return nil
}

// plainBody returns the request's body, refusing one sent compressed
// (errCompressedBody): c.Body() would decompress a gzip/deflate/br body
// without any bound (a few KB can expand to gigabytes), so only identity
// bodies are taken.
func plainBody(c *fiber.Ctx) ([]byte, error) {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, errCompressedBody
	}
	return c.Request().Body(), nil
}

// errCompressedBody is a body sent with a Content-Encoding (415).
var errCompressedBody = errors.New(detailCompressedBody)

const detailCompressedBody = "Content-Encoding is not supported; send the JSON body uncompressed"

func (s *Server) getMyStatus(c *fiber.Ctx) error {
	me := identity(c)
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	st, err := s.deps.Presence.Status(ctx, me.UserID, me.Username)
	if err != nil {
		return err
	}
	return writeJSON(c, st, wire.AppendStatus)
}

func (s *Server) putMyStatus(c *fiber.Ctx) error {
	me := identity(c)
	body, err := plainBody(c)
	if err != nil {
		return err
	}
	u, err := parseStatusUpdate(body, s.deps.Now())
	if err != nil {
		return err
	}
	u.UserId, u.Username = me.UserID, me.Username
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	st, err := s.deps.Presence.UpdateStatus(ctx, u)
	if err != nil {
		return err
	}
	return writeJSON(c, st, wire.AppendStatus)
}

func (s *Server) postHeartbeat(c *fiber.Ctx) error {
	me := identity(c)
	interval, offlineAfter := s.advice.heartbeat()
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	if _, err := s.deps.Presence.Heartbeat(ctx, me.UserID, me.Username, interval); err != nil {
		return err
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	buf.B = wire.AppendHeartbeat(buf.B[:0], int64(interval/time.Second), int64(offlineAfter/time.Second))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(buf.B) // copies
	return nil
}

// readPresence reads the presence of ids, in order, nil for a user without
// a record.
func (s *Server) readPresence(c *fiber.Ctx, ids []int64) ([]*messages.UserState, error) {
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	return s.deps.Presence.ReadPresence(ctx, ids)
}

func (s *Server) getPresence(c *fiber.Ctx) error {
	id, err := parseUserID(c.Params("user_id"))
	if err != nil {
		return err
	}
	states, err := s.readPresence(c, []int64{id})
	if err != nil {
		return err
	}
	if states[0] == nil {
		return writeDetail(c, fiber.StatusNotFound, detailNotFound)
	}
	me := identity(c)
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	buf.B = wire.AppendPresenceView(buf.B[:0], states[0], wire.ViewOf(states[0], me.UserID, me.Admin))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(buf.B) // copies; see writeJSON
	return nil
}

func (s *Server) getPresenceBatch(c *fiber.Ctx) error {
	ids, err := parseUserIDs(c.Query("user_ids"))
	if err != nil {
		return err
	}
	states, err := s.readPresence(c, ids)
	if err != nil {
		return err
	}

	// Each record as this caller may see it (the user's visibility
	// setting; see wire.ViewOf).
	me := identity(c)
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	b := append(buf.B[:0], '[')
	first := true
	for _, st := range states {
		if st == nil {
			continue // unknown users are left out, as in the seed's example
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = wire.AppendPresenceView(b, st, wire.ViewOf(st, me.UserID, me.Admin))
	}
	buf.B = append(b, ']')
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(buf.B) // copies; see writeJSON
	return nil
}

func (s *Server) postCleanup(c *fiber.Ctx) error {
	args := c.Context().QueryArgs()
	dryRun, err := parseDryRun(args.Has("dry_run"), string(args.Peek("dry_run")))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*s.cfg.RequestTimeout)
	defer cancel()
	counts, err := s.deps.Presence.Cleanup(ctx, dryRun)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendCleanupReport(nil, counts, dryRun))
}

func (s *Server) getCluster(c *fiber.Ctx) error {
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	status, err := s.deps.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	return c.JSON(status)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.draining.Load() {
		return writeDetail(c, fiber.StatusServiceUnavailable, "Draining")
	}
	if s.deps.Ready != nil {
		if err := s.deps.Ready(); err != nil {
			return writeDetail(c, fiber.StatusServiceUnavailable, "Not ready")
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
