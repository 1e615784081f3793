package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// Cleanup asks every owning member to re-check its users' timers and sweep
// its share of the stored records, and merges their reports (counts summed,
// users listed up to actors.CleanupReportLimit). With dryRun, members only
// report what they would do: the request is a CleanupPreview, a kind a
// member too old to know it ignores, so it never runs a real cleanup for a
// dry run; a dry run is refused at once (ErrUnavailable) while a member
// advertises an older protocol, and a member that ignores it all the same
// makes it time out. A member that does not answer in time makes an error
// wrapping ErrUnavailable; one that answers a failure, an internal error.
func (r *Router) Cleanup(ctx context.Context, dryRun bool) (*messages.CleanupCount, error) {
	view, self := r.members.View(), r.members.LocalName()
	targets := make([]*actor.PID, 0, len(view.Owners))
	for _, m := range view.Owners {
		if dryRun && m.Name != self && m.Proto < cluster.ProtoV3 {
			return nil, fmt.Errorf("dry-run cleanup: member %s runs an older version that cannot preview: %w", m.NodeName, ErrUnavailable)
		}
		if m.Name == self {
			targets = append(targets, r.local)
		} else {
			targets = append(targets, r.activatorAt(m.RemoteAddr))
		}
	}
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	req := &messages.Envelope{Body: &messages.Envelope_CleanupNode{CleanupNode: &messages.CleanupNode{}}}
	if dryRun {
		req = &messages.Envelope{Body: &messages.Envelope_CleanupPreview{CleanupPreview: &messages.CleanupPreview{}}}
	}
	futures := make([]*actor.Future, len(targets))
	for i, pid := range targets {
		futures[i] = r.ask(pid, req, timeout)
	}
	counts := make([]*messages.CleanupCount, 0, len(targets))
	var errs []error
	for i, f := range futures {
		reply, err := await(f, targets[i])
		if err == nil && reply.GetFailure() != nil {
			err = errors.New(reply.GetFailure().GetDetail())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup on %s: %w", targets[i].Address, err))
			continue
		}
		counts = append(counts, reply.GetCleanupCount())
	}
	return actors.MergeCleanupCounts(counts), errors.Join(errs...)
}

// Handoff activates userID on its owner, without blocking the caller, and
// hands it the old owner's newest last_seen; it is the actors'
// Config.Handoff. An owner that cannot load the user (its
// store failing) answers a failure: that is retried too, until
// handoffDeadline.
func (r *Router) Handoff(userID, lastSeenMicros int64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), handoffDeadline)
		defer cancel()
		env := &messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: userID, LastSeen: lastSeenMicros}}}
		for {
			reply, err := r.Request(ctx, userID, env)
			if err == nil && reply.GetFailure() != nil {
				err = refusal(userID, reply.GetFailure())
			}
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
				r.log.Warn("handoff to new owner failed; the user's timers run again at its next activation",
					slog.Int64("user_id", userID), slog.Any("err", err))
				return
			case <-time.After(retryMax):
			}
		}
	}()
}

// NodeStats asks the member at remoteAddr (or this node, for "") for its
// statistics.
func (r *Router) NodeStats(ctx context.Context, remoteAddr string) (*messages.NodeStats, error) {
	pid := r.local
	remote := remoteAddr != "" && remoteAddr != pid.Address
	if remote {
		if r.health.failing(remoteAddr, time.Now()) {
			return nil, fmt.Errorf("member at %s is not answering: %w", remoteAddr, ErrUnavailable)
		}
		pid = r.activatorAt(remoteAddr)
	}
	reply, err := r.request(ctx, pid, &messages.Envelope{Body: &messages.Envelope_NodeInfo{NodeInfo: &messages.NodeInfo{}}})
	if err != nil {
		if remote && ctx.Err() == nil {
			r.health.failed(remoteAddr, time.Now())
		}
		return nil, err
	}
	return reply.GetNodeStats(), nil
}
