package ws

import (
	"context"

	"github.com/presence-cluster/presence/messages"
)

// Router delivers the hub's messages to user actors wherever they live.
type Router interface {
	// Request sends env to the actor of userID and returns its answer.
	Request(ctx context.Context, userID int64, env *messages.Envelope) (*messages.Envelope, error)
	// RequestAll sends each envelope to the actor of the user it names, all
	// at once, and returns the answers in the same order (nil where that
	// request failed, with its error).
	RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error)
	// ReadPresence returns the presence of each user of ids, in order (nil
	// for a user without a record), answered from the user actors'
	// published snapshots where it can.
	ReadPresence(ctx context.Context, ids []int64) ([]*messages.UserState, error)
	// Owner names the member that owns userID in this node's view ("" on
	// a standalone node); the hub re-subscribes a user when it changes.
	Owner(userID int64) string
}
