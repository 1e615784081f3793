package routing

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// Inspect asks the actor of userID, on its owner, for what an operator
// looks at: the true record, the owner's node name, how many hubs watch
// the user and how many sessions hold it online. A user without a record
// is ErrNotFound.
func (r *Router) Inspect(ctx context.Context, userID int64) (*messages.Inspection, error) {
	reply, err := r.Request(ctx, userID, &messages.Envelope{Body: &messages.Envelope_Inspect{Inspect: &messages.Inspect{UserId: userID}}})
	if err != nil {
		return nil, err
	}
	switch b := reply.GetBody().(type) {
	case *messages.Envelope_Inspection:
		return b.Inspection, nil
	case *messages.Envelope_NotFound:
		return nil, fmt.Errorf("user %d: %w", userID, ErrNotFound)
	case *messages.Envelope_Failure:
		return nil, refusal(userID, b.Failure)
	}
	return nil, fmt.Errorf("user %d: unexpected actor reply %T", userID, reply.GetBody())
}

// NodeCounters asks the member at remoteAddr (or this node, for "") for
// its statistics with its counters (GET /admin/stats).
func (r *Router) NodeCounters(ctx context.Context, remoteAddr string) (*messages.NodeStats, error) {
	pid := r.local
	if remoteAddr != "" && remoteAddr != pid.Address {
		pid = r.activatorAt(remoteAddr)
	}
	return r.nodeInfo(ctx, pid, true)
}

func (r *Router) nodeInfo(ctx context.Context, pid *actor.PID, counters bool) (*messages.NodeStats, error) {
	reply, err := r.request(ctx, pid, &messages.Envelope{Body: &messages.Envelope_NodeInfo{NodeInfo: &messages.NodeInfo{Counters: counters}}})
	if err != nil {
		return nil, err
	}
	return reply.GetNodeStats(), nil
}

// memberCountersTimeout bounds one member's answer, so a dead member still
// in the view does not hold GET /admin/stats.
const memberCountersTimeout = time.Second

// MemberCounters is one member's answer to ClusterCounters: its stats, or
// why it could not tell.
type MemberCounters struct {
	Member cluster.Member
	Self   bool
	Stats  *messages.NodeStats
	Err    error
}

// ClusterCounters asks every member of this node's view, in parallel, for
// its counters, in the order of the view.
func (r *Router) ClusterCounters(ctx context.Context) []MemberCounters {
	view, self := r.members.View(), r.members.LocalName()
	out := make([]MemberCounters, len(view.All))
	var wg sync.WaitGroup
	for i, m := range view.All {
		out[i] = MemberCounters{Member: m, Self: m.Name == self}
		wg.Add(1)
		go func(mc *MemberCounters) {
			defer wg.Done()
			addr := mc.Member.RemoteAddr
			if mc.Self {
				addr = ""
			}
			mctx, cancel := context.WithTimeout(ctx, memberCountersTimeout)
			defer cancel()
			mc.Stats, mc.Err = r.NodeCounters(mctx, addr)
		}(&out[i])
	}
	wg.Wait()
	return out
}
