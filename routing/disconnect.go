package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// DisconnectUser asks the WebSocket hub of every member (the actor named
// messages.HubName on each node, draining members included: they may still
// hold sessions) to close the sessions of userID, and sums how many they
// closed. A member that does not answer in time makes an error wrapping
// ErrUnavailable, returned with the count of those that did; a disconnect
// is idempotent, so the caller may simply retry.
func (r *Router) DisconnectUser(ctx context.Context, userID int64) (int64, error) {
	targets, older := r.hubs()
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	env := &messages.Envelope{Body: &messages.Envelope_DisconnectUser{DisconnectUser: &messages.DisconnectUser{UserId: userID}}}
	futures := make([]*actor.Future, len(targets))
	for i, pid := range targets {
		futures[i] = r.ask(pid, env, timeout)
	}
	var total int64
	errs := older
	for i, f := range futures {
		reply, err := await(f, targets[i])
		if err == nil && reply.GetDisconnectCount() == nil {
			err = fmt.Errorf("%w: unexpected reply %T", ErrUnavailable, reply.GetBody())
		}
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err) // no hub there (yet): a member to retry
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("disconnect on %s: %w", targets[i].Address, err))
			continue
		}
		total += reply.GetDisconnectCount().GetSessionsClosed()
	}
	return total, errors.Join(errs...)
}

// hubs returns the hub of this node and of every other member that is
// alive or suspect and reachable by remoting, and an error wrapping
// ErrUnavailable for each such member whose release cannot take a
// disconnect (a rolling upgrade is under way).
func (r *Router) hubs() ([]*actor.PID, []error) {
	view, self := r.members.View(), r.members.LocalName()
	pids := []*actor.PID{actor.NewPID(r.system.Address(), messages.HubName)}
	var older []error
	for _, m := range view.All {
		if m.Name == self || m.RemoteAddr == "" || (m.State != "alive" && m.State != "suspect") {
			continue
		}
		if m.Proto < cluster.ProtoV3 {
			older = append(older, fmt.Errorf("disconnect on %s: %w", m.Name, &OlderMember{Member: m.Name, Proto: m.Proto, Needs: cluster.ProtoV3}))
			continue
		}
		pids = append(pids, actor.NewPID(m.RemoteAddr, messages.HubName))
	}
	return pids, older
}
