package cluster

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/messages"
)

// Router delivers messages to user actors: it picks the user's owner node
// and sends to that node's activator. Handlers and hubs ask it for "the
// actor of user N", never for a PID.
type Router struct {
	host *actors.Host
}

// NewRouter returns a router over host. Until membership is wired in, this
// node owns every user.
func NewRouter(host *actors.Host) *Router {
	return &Router{host: host}
}

// owner returns the activator that owns userID.
func (r *Router) owner(userID int64) *actor.PID {
	return r.host.Activator()
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return actors.DefaultRequestTimeout
}

// Request sends env to the actor of userID and waits for its answer.
func (r *Router) Request(ctx context.Context, userID int64, env *messages.Envelope) (*messages.Envelope, error) {
	return r.host.Request(ctx, r.owner(userID), env)
}

// RequestAll sends every envelope before waiting for any answer.
func (r *Router) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	timeout := timeoutOf(ctx)
	futures := make([]*actor.Future, len(envs))
	pids := make([]*actor.PID, len(envs))
	for i, env := range envs {
		pids[i] = r.owner(actors.UserID(env))
		futures[i] = r.host.Ask(pids[i], env, timeout)
	}
	replies := make([]*messages.Envelope, len(envs))
	errs := make([]error, len(envs))
	for i, f := range futures {
		replies[i], errs[i] = actors.Await(f, pids[i])
	}
	return replies, errs
}

// Cleanup re-checks every user actor's timers and sweeps stored records
// that no actor holds.
func (r *Router) Cleanup(ctx context.Context) (*messages.CleanupCount, error) {
	return r.host.Cleanup(ctx, nil)
}
