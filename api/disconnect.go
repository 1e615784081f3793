package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/wire"
)

// postDisconnect is POST /admin/users/{id}/disconnect: every WebSocket
// session of the user, on every node, is closed with 4003, and the answer
// counts them. A user with no session (or no record) is 200 with 0: there
// was nothing to do. A node that did not answer makes it 503; repeating
// the call is safe.
func (s *Server) postDisconnect(c *fiber.Ctx) error {
	id, err := parseUserID(c.Params("user_id"))
	if err != nil {
		return err
	}
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	n, err := s.deps.Presence.DisconnectUser(ctx, id)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendDisconnect(make([]byte, 0, 64), n))
}
