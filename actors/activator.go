package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// ActivatorName is the well-known name of the per-node activator, so other
// nodes can address it as actor.NewPID(remoteAddress, ActivatorName). It
// names the dispatcher (dispatcher.go), which hands each message to the
// user's activator shard on the sender's goroutine, without a mailbox of
// its own; nodes of every version send to this name.
const ActivatorName = "presence-activator"

// Each shard of the activator (one actor per shard, see shard.go) owns the
// user actors of its users. Passivation is a handshake between a user
// actor and its shard, so that no message is lost in the mailbox of an
// actor that stops:
//  1. an idle user actor sends passivate to the activator (its parent);
//  2. the activator stops forwarding to it (new messages for the user wait
//     in a buffer) and answers stopNow, which queues behind every message
//     already forwarded;
//  3. the actor gets stopNow after all of them: still idle, it stops; busy
//     again (one of them armed a timer, say), it sends resume and the
//     activator forwards the buffer to it and carries on;
//  4. on Terminated the activator activates the user again if messages
//     are waiting for it.
// An ownership move uses the same path, with handOff=true: the actor stops
// whatever it holds and, if it had timers running, asks the new owner to
// activate the user.
//
// Presence reads: every user actor publishes an immutable snapshot of its
// state into a cell the activator made for it at spawn (see
// userActor.publish). GetPresenceBatch is answered by the dispatcher from
// the cells of the children the shards forward to (their childTables), in
// one reply, without a message to any actor. A child between passivate and
// resume or Terminated is not in children, so its cell is not read: reads
// of it go the per-user way and wait in the buffer like any other message.

// passivate is a user actor asking its activator to stop it.
type passivate struct {
	userID int64
	pid    *actor.PID
}

// stopNow tells a user actor that nothing more will be forwarded to it.
type stopNow struct{ handOff bool }

// resume is a user actor that got stopNow while no longer idle.
type resume struct {
	userID int64
	pid    *actor.PID
}

// listActive asks an activator shard for the ids of the users it holds.
type listActive struct{}

// viewChanged tells the activator that the membership changed: it stops
// the users it no longer owns and makes the others forget hubs on nodes
// that are gone.
type viewChanged struct {
	hubAlive func(address string) bool
	joined   bool
}

// forgetHubs tells a user actor to drop the watches and session counts of
// hubs whose node left.
type forgetHubs struct {
	alive func(address string) bool
	// refresh asks the actor to adopt a newer stored record: after a
	// member joined (a partition healed, say) another activation of the
	// user may have written.
	refresh bool
}

// activeUsers answers listActive.
type activeUsers struct{ ids []int64 }

// OwnerFunc tells whether this node owns a user in its current view of the
// membership. A single node owns every user.
type OwnerFunc func(userID int64) bool

// pendingStop is a user actor between its passivation and its Terminated:
// messages for the user wait here so they are not lost in a stopping
// mailbox, then go to a fresh activation (or back to the same actor when
// it resumes).
type pendingStop struct {
	child
	buffered []actor.MessageEnvelope
}

// child is an active user actor and the cell it publishes its presence in.
type child struct {
	pid  *actor.PID
	snap *atomic.Pointer[snapshot]
}

// activator is one shard of the node's activator: the actor that owns the
// user actors of its users. It spawns them on demand, forwards every
// message addressed to one of them, and stops idle ones without losing a
// message that races with the stop.
type activator struct {
	cfg      *Config
	owns     OwnerFunc
	children *childTable
	byPID    map[string]int64
	stopping map[int64]*pendingStop
}

func newActivator(cfg *Config, owns OwnerFunc, children *childTable) *activator {
	return &activator{
		cfg:      cfg,
		owns:     owns,
		children: children,
		byPID:    make(map[string]int64),
		stopping: make(map[int64]*pendingStop),
	}
}

// Receive implements actor.Actor.
func (x *activator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Envelope:
		x.route(ctx, m)
	case *passivate:
		x.passivate(ctx, m)
	case *resume:
		x.resume(ctx, m)
	case *actor.Terminated:
		x.terminated(ctx, m.Who)
	case *viewChanged:
		x.viewChanged(ctx, m)
	case *listActive:
		// The shard is the table's only writer: no lock to read it.
		ids := make([]int64, 0, len(x.children.m))
		for id := range x.children.m {
			ids = append(ids, id)
		}
		ctx.Respond(&activeUsers{ids: ids})
	}
}

// route forwards a user's message to its actor, spawning it if needed; a
// message for a user being stopped waits in its buffer, and one for a
// user this node does not own is answered NotOwner. The dispatcher
// answers the messages that name no user.
func (x *activator) route(ctx actor.Context, m *messages.Envelope) {
	id := UserID(m)
	if id <= 0 {
		return
	}
	if x.owns != nil && !x.owns(id) {
		if ctx.Sender() != nil {
			ctx.Respond(notOwner(id))
		}
		return
	}
	if m.GetRecheck().GetDryRun() && !x.isActive(id) {
		// A dry run changes nothing, and activating a user applies its
		// passed deadlines: the host judges the stored record instead.
		if ctx.Sender() != nil {
			ctx.Respond(&messages.Envelope{Body: &messages.Envelope_NotFound{NotFound: &messages.NotFound{UserId: id}}})
		}
		return
	}
	if p, ok := x.stopping[id]; ok {
		p.buffered = append(p.buffered, actor.MessageEnvelope{Message: m, Sender: ctx.Sender()})
		return
	}
	ctx.Forward(x.child(ctx, id))
}

// passivate is step 2 of the passivation handshake: stop forwarding to
// the actor and tell it so, behind what was forwarded already.
func (x *activator) passivate(ctx actor.Context, m *passivate) {
	if c, ok := x.children.own(m.userID); ok && c.pid.Equal(m.pid) {
		x.children.remove(m.userID)
		x.stopping[m.userID] = &pendingStop{child: c}
		ctx.Send(c.pid, &stopNow{})
	}
}

// resume takes back an actor that became busy during its passivation and
// hands it what was buffered meanwhile.
func (x *activator) resume(ctx actor.Context, m *resume) {
	p, ok := x.stopping[m.userID]
	if !ok || !p.pid.Equal(m.pid) {
		return
	}
	if x.owns != nil && !x.owns(m.userID) {
		// Moved away during the handshake: hand it off instead.
		ctx.Send(m.pid, &stopNow{handOff: true})
		return
	}
	delete(x.stopping, m.userID)
	x.children.put(m.userID, p.child)
	for _, env := range p.buffered {
		ctx.RequestWithCustomSender(m.pid, env.Message, env.Sender)
	}
}

// terminated forgets a stopped actor and delivers what waited for it: to a
// fresh activation, or back to the senders as NotOwner when the user moved.
func (x *activator) terminated(ctx actor.Context, who *actor.PID) {
	id, ok := x.byPID[who.Id]
	if !ok {
		return
	}
	delete(x.byPID, who.Id)
	p, ok := x.stopping[id]
	if !ok {
		// Stopped without the handshake (a crash the supervisor gave
		// up on): forget it; the next message activates it again.
		if c, ok := x.children.own(id); ok && c.pid.Equal(who) {
			x.children.remove(id)
		}
		return
	}
	delete(x.stopping, id)
	if len(p.buffered) == 0 {
		return
	}
	if x.owns != nil && !x.owns(id) {
		// The user moved to another node meanwhile: senders re-route.
		for _, env := range p.buffered {
			if env.Sender != nil {
				ctx.Send(env.Sender, notOwner(id))
			}
		}
		return
	}
	pid := x.child(ctx, id)
	for _, env := range p.buffered {
		ctx.RequestWithCustomSender(pid, env.Message, env.Sender)
	}
}

// viewChanged hands off the users this node no longer owns and tells the
// others which hubs are gone.
func (x *activator) viewChanged(ctx actor.Context, m *viewChanged) {
	for id, c := range x.children.m {
		if x.owns != nil && !x.owns(id) {
			x.children.remove(id) // deleting while ranging is allowed
			x.stopping[id] = &pendingStop{child: c}
			ctx.Send(c.pid, &stopNow{handOff: true})
			continue
		}
		ctx.Send(c.pid, &forgetHubs{alive: m.hubAlive, refresh: m.joined})
	}
}

func notOwner(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_NotOwner{NotOwner: &messages.NotOwner{UserId: id}}}
}

func (x *activator) child(ctx actor.Context, id int64) *actor.PID {
	if c, ok := x.children.own(id); ok {
		return c.pid
	}
	cfg := x.cfg
	// A fresh cell per activation: nothing a former activation published
	// can be read once it is gone.
	snap := new(atomic.Pointer[snapshot])
	pid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return newUserActor(cfg, id, snap) }))
	x.children.put(id, child{pid: pid, snap: snap})
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
	case *messages.Envelope_Inspect:
		return b.Inspect.GetUserId()
	case *messages.Envelope_GetVisibility:
		return b.GetVisibility.GetUserId()
	case *messages.Envelope_SetVisibility:
		return b.SetVisibility.GetUserId()
	}
	return 0
}
