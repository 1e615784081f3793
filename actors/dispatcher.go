package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// cleanupTimeout bounds one node's share of an admin cleanup.
const cleanupTimeout = time.Minute

// dispatcher is the process registered under ActivatorName. It is not an
// actor: protoactor-go calls SendUserMessage on the sender's goroutine (a
// local caller's, or the remoting reader's for another node's message), so
// handing a message to the user's shard costs a hash and a mailbox post,
// and nothing waits behind another request. It answers the requests that
// name no user itself: batch presence reads from the shards' published
// snapshots, node statistics, and the cleanup, so a batch spanning every
// shard still gets one reply.
//
// This is protoactor-go's router design (router.process routes on the
// sender's goroutine too), without its consistent-hash ring: the ring
// hashes a string key per message and routes a message to one routee,
// while a batch read must be answered from every shard at once.
type dispatcher struct {
	system *actor.ActorSystem
	cfg    *Config
	host   *Host
	owns   OwnerFunc
	shards []*actor.PID
	tables []*childTable
}

var _ actor.Process = (*dispatcher)(nil)

// SendUserMessage implements actor.Process: a message about a user goes to
// its shard unchanged (sender and headers included); one about the node is
// answered here.
func (d *dispatcher) SendUserMessage(_ *actor.PID, message interface{}) {
	_, msg, sender := actor.UnwrapEnvelope(message)
	env, ok := msg.(*messages.Envelope)
	if !ok {
		return // nothing else is addressed to the activator by name
	}
	if id := UserID(env); id > 0 {
		d.system.Root.Send(d.shards[shardOf(id, len(d.shards))], message)
		return
	}
	d.nodeRequest(env, sender)
}

// SendSystemMessage implements actor.Process. Nobody watches the
// dispatcher; Host.Stop stops the shards and unregisters it.
func (d *dispatcher) SendSystemMessage(*actor.PID, interface{}) {}

// Stop implements actor.Process.
func (d *dispatcher) Stop(pid *actor.PID) { d.system.ProcessRegistry.Remove(pid) }

// nodeRequest answers the messages addressed to the node rather than to a
// user.
func (d *dispatcher) nodeRequest(env *messages.Envelope, sender *actor.PID) {
	if sender == nil {
		return
	}
	root := d.system.Root
	switch b := env.Body.(type) {
	case *messages.Envelope_GetPresenceBatch:
		root.Send(sender, d.presenceBatch(b.GetPresenceBatch.GetUserIds()))
	case *messages.Envelope_NodeInfo:
		stats := &messages.NodeStats{ActiveActors: d.activeActors(), NodeName: d.cfg.NodeName}
		reply := &messages.Envelope{Body: &messages.Envelope_NodeStats{NodeStats: stats}}
		fill := d.cfg.NodeCounters
		if !b.NodeInfo.GetCounters() || fill == nil {
			root.Send(sender, reply)
			return
		}
		// Reading the counters (a metrics gather) must not hold up the
		// sender's goroutine: for another node's request, that is the
		// remoting reader every message from that node passes through.
		go func() {
			fill(stats)
			root.Send(sender, reply)
		}()
	case *messages.Envelope_CleanupNode:
		answerCleanup(root, sender, "cleanup", d.host.Cleanup, d.owns)
	case *messages.Envelope_CleanupPreview:
		answerCleanup(root, sender, "cleanup preview", d.host.PreviewCleanup, d.owns)
	}
}

// answerCleanup answers sender with the counts of run (a cleanup or its
// preview, named what in a failure) on a goroutine of its own: run asks
// every shard for its children and waits for thousands of answers.
func answerCleanup(root *actor.RootContext, sender *actor.PID, what string,
	run func(context.Context, OwnerFunc) (*messages.CleanupCount, error), owns OwnerFunc) {
	go func() {
		c, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		counts, err := run(c, owns)
		if err != nil {
			root.Send(sender, failure(messages.FailureKind_FAILURE_KIND_UNAVAILABLE, what+" incomplete: "+err.Error()))
			return
		}
		root.Send(sender, &messages.Envelope{Body: &messages.Envelope_CleanupCount{CleanupCount: counts}})
	}()
}

// activeActors counts the children of every shard.
func (d *dispatcher) activeActors() int64 {
	var n int
	for _, t := range d.tables {
		n += t.size()
	}
	return int64(n)
}

// presenceBatch answers GetPresenceBatch from the snapshots of the shards'
// active children. It never activates anyone: what it cannot answer is a
// miss, for the sender to ask the user actor.
func (d *dispatcher) presenceBatch(ids []int64) *messages.Envelope {
	out := &messages.PresenceBatchReply{Outcomes: make([]messages.PresenceOutcome, len(ids))}
	now := micros(d.cfg.Clock.Now())
	for i, id := range ids {
		switch {
		case id <= 0:
			// No user has such an id (the API refuses it before this).
			out.Outcomes[i] = messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND
			continue
		case d.owns != nil && !d.owns(id):
			out.Outcomes[i] = messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_OWNER
			continue
		}
		c, ok := d.tables[shardOf(id, len(d.tables))].lookup(id)
		if !ok {
			continue // a miss (the zero outcome): not active here
		}
		s := c.snap.Load()
		switch {
		case s == nil || now >= s.freshUntil:
			// Not loaded yet, failed, or a timer is due: the actor's
			// mailbox has the answer (behind the timer's message).
		case !s.exists:
			out.Outcomes[i] = messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND
		default:
			out.Outcomes[i] = messages.PresenceOutcome_PRESENCE_OUTCOME_FOUND
			if out.States == nil {
				out.States = make([]*messages.UserState, 0, len(ids)-i)
			}
			out.States = append(out.States, &s.state)
		}
	}
	return &messages.Envelope{Body: &messages.Envelope_PresenceBatchReply{PresenceBatchReply: out}}
}
