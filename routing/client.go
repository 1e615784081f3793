package routing

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// The typed client: what the HTTP handlers ask of user actors, with the
// answers already decoded. Each returns the user's state, or an error:
// ErrNotFound, a *Refusal (wrapping ErrUnavailable or ErrConflict), one
// wrapping ErrUnavailable (no answer in time), or an internal error.

// Status returns the user's state, creating the record (named username) if
// there is none.
func (r *Router) Status(ctx context.Context, userID int64, username string) (*messages.UserState, error) {
	return r.state(ctx, userID, &messages.Envelope{Body: &messages.Envelope_GetStatus{GetStatus: &messages.GetStatus{
		UserId: userID, Username: username, Create: true,
	}}})
}

// UpdateStatus applies u to the user u names and returns the new state.
func (r *Router) UpdateStatus(ctx context.Context, u *messages.UpdateStatus) (*messages.UserState, error) {
	return r.state(ctx, u.GetUserId(), &messages.Envelope{Body: &messages.Envelope_UpdateStatus{UpdateStatus: u}})
}

// Heartbeat records a REST sign of life of the user: online, last_seen now.
// advised is the heartbeat interval the client was advised (0: none); the
// actor keeps the user online long enough for a client following it (see
// actors.AdvisedOfflineAfter).
func (r *Router) Heartbeat(ctx context.Context, userID int64, username string, advised time.Duration) (*messages.UserState, error) {
	return r.state(ctx, userID, &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{
		UserId: userID, Username: username, AdvisedIntervalSeconds: uint32(min(advised/time.Second, math.MaxUint32)),
	}}})
}

// state sends env to the actor of userID and decodes its answer.
func (r *Router) state(ctx context.Context, userID int64, env *messages.Envelope) (*messages.UserState, error) {
	reply, err := r.Request(ctx, userID, env)
	if err != nil {
		return nil, err
	}
	switch b := reply.GetBody().(type) {
	case *messages.Envelope_StateReply:
		return b.StateReply.GetState(), nil
	case *messages.Envelope_NotFound:
		return nil, fmt.Errorf("user %d: %w", userID, ErrNotFound)
	case *messages.Envelope_Failure:
		return nil, refusal(userID, b.Failure)
	}
	return nil, fmt.Errorf("user %d: unexpected actor reply %T", userID, reply.GetBody())
}
