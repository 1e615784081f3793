package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/routing"
	"github.com/presence-cluster/presence/wire"
)

// inspector answers GET /admin/users/{id}; routing.Router implements it.
type inspector interface {
	Inspect(ctx context.Context, userID int64) (*messages.Inspection, error)
}

// statsSource answers GET /admin/stats; routing.Router implements it.
type statsSource interface {
	ClusterCounters(ctx context.Context) []routing.MemberCounters
}

// getUserInspection answers GET /admin/users/{id}: the user's true record,
// its owner, and how many hubs watch it and sessions hold it (404 for a
// user without a record, as GET /users/{id}/presence).
func (s *Server) getUserInspection(in inspector) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := parseUserID(c.Params("user_id"))
		if err != nil {
			return err
		}
		ctx, cancel := s.requestCtx(c)
		defer cancel()
		res, err := in.Inspect(ctx, id)
		if err != nil {
			return err
		}
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		buf.B = wire.AppendInspection(buf.B[:0], res)
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Response().SetBody(buf.B) // copies; see writeJSON
		return nil
	}
}

// getStats answers GET /admin/stats: every member of this node's view
// with its counters (or why it did not answer), for the dashboard's rates
// and SLI charts.
func (s *Server) getStats(src statsSource) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := s.requestCtx(c)
		defer cancel()
		members := src.ClusterCounters(ctx)
		out := wire.ClusterStats{Time: s.deps.Now().UTC(), Members: make([]wire.NodeCounters, len(members))}
		for i, m := range members {
			nc := &out.Members[i]
			nc.Name, nc.NodeName, nc.Self = m.Member.Name, m.Member.NodeName, m.Self
			if m.Self {
				out.Node = m.Member.NodeName
			}
			if m.Err != nil {
				nc.Error = "unreachable: " + m.Err.Error()
				continue
			}
			nc.SetCounters(m.Stats)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(out)
	}
}
