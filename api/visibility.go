package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// visibilitySetter is what the visibility endpoints ask of user actors;
// routing.Router implements it. Errors are routing's domain errors.
type visibilitySetter interface {
	// Visibility returns the user's state (its Visibility is the setting),
	// creating the record if needed.
	Visibility(ctx context.Context, userID int64, username string) (*messages.UserState, error)
	// SetVisibility applies m and returns the new state.
	SetVisibility(ctx context.Context, m *messages.SetVisibility) (*messages.UserState, error)
}

// getMyVisibility is GET /users/me/visibility: the caller's setting
// (everyone, everyone, [] by default). Like GET /users/me/status, it
// creates the caller's record.
func (s *Server) getMyVisibility(c *fiber.Ctx) error {
	me := identity(c)
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	st, err := s.deps.Presence.Visibility(ctx, me.UserID, me.Username)
	if err != nil {
		return err
	}
	return writeJSON(c, st, wire.AppendVisibility)
}

// putMyVisibility is PUT /users/me/visibility: fields left out keep their
// value; the answer is the whole new setting. It creates the caller's
// record, and is a sign of life as every PUT of the user is.
func (s *Server) putMyVisibility(c *fiber.Ctx) error {
	me := identity(c)
	m, err := visibilityBody(c)
	if err != nil {
		return err
	}
	m.UserId, m.Username = me.UserID, me.Username
	return s.setVisibility(c, m)
}

// putUserVisibility is PUT /admin/users/{id}/visibility: an admin sets a
// user's visibility on their behalf (404 for a user without a record;
// nothing is created, and it is no sign of life of the user).
func (s *Server) putUserVisibility(c *fiber.Ctx) error {
	id, err := parseUserID(c.Params("user_id"))
	if err != nil {
		return err
	}
	m, err := visibilityBody(c)
	if err != nil {
		return err
	}
	m.UserId, m.ByAdmin = id, true
	return s.setVisibility(c, m)
}

func (s *Server) setVisibility(c *fiber.Ctx, m *messages.SetVisibility) error {
	ctx, cancel := s.requestCtx(c)
	defer cancel()
	st, err := s.deps.Presence.SetVisibility(ctx, m)
	if err != nil {
		return err
	}
	return writeJSON(c, st, wire.AppendVisibility)
}

// visibilityBody parses a visibility PUT's body (see plainBody).
func visibilityBody(c *fiber.Ctx) (*messages.SetVisibility, error) {
	body, err := plainBody(c)
	if err != nil {
		return nil, err
	}
	return parseVisibilityUpdate(body)
}
