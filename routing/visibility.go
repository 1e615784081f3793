package routing

import (
	"context"

	"github.com/presence-cluster/presence/messages"
)

// Visibility returns the user's state, whose Visibility is the user's
// setting (nil: the default), creating the record (named username) if
// there is none. Errors are the typed client's (see client.go).
func (r *Router) Visibility(ctx context.Context, userID int64, username string) (*messages.UserState, error) {
	return r.state(ctx, userID, &messages.Envelope{Body: &messages.Envelope_GetVisibility{GetVisibility: &messages.GetVisibility{
		UserId: userID, Username: username, Create: true,
	}}})
}

// SetVisibility applies m to the user m names and returns the new state.
// With m.ByAdmin, a user without a record is ErrNotFound (nothing is
// created); otherwise the record is created as by Visibility.
func (r *Router) SetVisibility(ctx context.Context, m *messages.SetVisibility) (*messages.UserState, error) {
	return r.state(ctx, m.GetUserId(), &messages.Envelope{Body: &messages.Envelope_SetVisibility{SetVisibility: m}})
}
