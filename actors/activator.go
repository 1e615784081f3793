package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// ActivatorName is the well-known name of the per-node activator, so other
// nodes can address it as actor.NewPID(remoteAddress, ActivatorName).
const ActivatorName = "presence-activator"

// passivate is a user actor asking its activator to stop it.
type passivate struct {
	userID int64
	pid    *actor.PID
}

// reactivate is a stopping user actor asking for a fresh activation because
// messages delivered before its stop made it hold state again.
type reactivate struct{ userID int64 }

// listActive asks the activator for the ids of the users it holds.
type listActive struct{}

// activeUsers answers listActive.
type activeUsers struct{ ids []int64 }

// OwnerFunc tells whether this node owns a user in its current view of the
// membership. A single node owns every user.
type OwnerFunc func(userID int64) bool

// pendingStop is a user actor between its passivation and its Terminated:
// messages for the user wait here so they are not lost in a stopping
// mailbox, then go to a fresh activation.
type pendingStop struct {
	buffered   []actor.MessageEnvelope
	reactivate bool
}

// activator is the per-node actor that owns the user actors: it spawns them
// on demand, forwards every message addressed to a user, and stops idle
// ones without losing a message that races with the stop.
type activator struct {
	cfg      *Config
	owns     OwnerFunc
	children map[int64]*actor.PID
	byPID    map[string]int64
	stopping map[int64]*pendingStop
}

func newActivator(cfg *Config, owns OwnerFunc) *activator {
	return &activator{
		cfg:      cfg,
		owns:     owns,
		children: make(map[int64]*actor.PID),
		byPID:    make(map[string]int64),
		stopping: make(map[int64]*pendingStop),
	}
}

// Receive implements actor.Actor.
func (x *activator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Envelope:
		id := UserID(m)
		if id <= 0 {
			return
		}
		if x.owns != nil && !x.owns(id) {
			if ctx.Sender() != nil {
				ctx.Respond(&messages.Envelope{Body: &messages.Envelope_NotOwner{NotOwner: &messages.NotOwner{UserId: id}}})
			}
			return
		}
		if p, ok := x.stopping[id]; ok {
			p.buffered = append(p.buffered, actor.MessageEnvelope{Message: m, Sender: ctx.Sender()})
			return
		}
		ctx.Forward(x.child(ctx, id))
	case *passivate:
		if pid, ok := x.children[m.userID]; ok && pid.Equal(m.pid) {
			delete(x.children, m.userID)
			x.stopping[m.userID] = &pendingStop{}
			// A poison pill queues behind the messages already forwarded,
			// so the actor handles every one of them before it stops.
			ctx.Poison(pid)
		}
	case *reactivate:
		if p, ok := x.stopping[m.userID]; ok {
			p.reactivate = true
		}
	case *actor.Terminated:
		id, ok := x.byPID[m.Who.Id]
		if !ok {
			return
		}
		delete(x.byPID, m.Who.Id)
		p, ok := x.stopping[id]
		if !ok {
			// Stopped without passivation (a crash the supervisor gave up
			// on): forget it; the next message activates it again.
			if pid, ok := x.children[id]; ok && pid.Equal(m.Who) {
				delete(x.children, id)
			}
			return
		}
		delete(x.stopping, id)
		if !p.reactivate && len(p.buffered) == 0 {
			return
		}
		pid := x.child(ctx, id)
		for _, env := range p.buffered {
			ctx.RequestWithCustomSender(pid, env.Message, env.Sender)
		}
	case *listActive:
		ids := make([]int64, 0, len(x.children))
		for id := range x.children {
			ids = append(ids, id)
		}
		ctx.Respond(&activeUsers{ids: ids})
	}
}

func (x *activator) child(ctx actor.Context, id int64) *actor.PID {
	if pid, ok := x.children[id]; ok {
		return pid
	}
	cfg := x.cfg
	pid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return newUserActor(cfg, id) }))
	x.children[id] = pid
	x.byPID[pid.Id] = id
	return pid
}

// UserID returns the user a request is about, or 0 for a body that names
// none (a kind this version does not know).
func UserID(env *messages.Envelope) int64 {
	switch b := env.Body.(type) {
	case *messages.Envelope_GetStatus:
		return b.GetStatus.GetUserId()
	case *messages.Envelope_Heartbeat:
		return b.Heartbeat.GetUserId()
	case *messages.Envelope_Activity:
		return b.Activity.GetUserId()
	case *messages.Envelope_UpdateStatus:
		return b.UpdateStatus.GetUserId()
	case *messages.Envelope_GetPresence:
		return b.GetPresence.GetUserId()
	case *messages.Envelope_Recheck:
		return b.Recheck.GetUserId()
	case *messages.Envelope_Watch:
		return b.Watch.GetUserId()
	case *messages.Envelope_Unwatch:
		return b.Unwatch.GetUserId()
	case *messages.Envelope_Sessions:
		return b.Sessions.GetUserId()
	}
	return 0
}
