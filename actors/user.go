package actors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// Details of the failures a user actor answers with; callers show them as
// they are, next to the failure's kind.
const (
	detailStoreUnavailable = "Presence store unavailable, retry later"
	detailStoreConflict    = "Concurrent update, retry"
)

type timerKind uint8

const (
	offlineTimer timerKind = iota + 1
	busyTimer
	retryTimer
)

// timerFired is sent by a timer to its own actor. It never leaves the node.
type timerFired struct {
	kind timerKind
	gen  uint64
}

// maxTimerWait caps one timer's wait; longer deadlines re-arm on firing
// (time.Duration cannot hold a busy_until centuries away).
const maxTimerWait = 24 * time.Hour

// maxSaveAttempts bounds reload-and-retry after version conflicts.
const maxSaveAttempts = 4

// retryAfterFailure is how long a timer-driven change waits before trying
// again after the store refused it.
const retryAfterFailure = time.Second

// sessionCount is a hub's latest report of the user's sessions.
type sessionCount struct {
	count int32
	seq   uint64
}

// watcher is a hub watching the user.
type watcher struct {
	pid    *actor.PID
	seq    uint64
	active bool
	// gone: the hub's node left the view (crashed, or cut off). Its watch
	// is kept, without pushes, for goneKeep: if the node comes back (a
	// partition healed), it is pushed the current record at once, because
	// its hub may not know that this owner forgot it.
	gone   bool
	goneAt int64
}

// counts reports whether w is a watch that gets pushes (and keeps the
// actor active).
func (w *watcher) counts() int {
	if w.active && !w.gone {
		return 1
	}
	return 0
}

// goneKeep is how long the watch of a hub whose node left is kept.
const goneKeep = 10 * time.Minute

// timer is one armed timer of the actor. gen tells a stale firing (one that
// was stopped too late) from the current one.
type timer struct {
	at   int64 // Unix µs it fires at; 0 when not armed
	gen  uint64
	stop func() bool
}

// userActor owns one user's presence record and timers.
type userActor struct {
	cfg  *Config
	id   int64
	self *actor.PID
	root *actor.RootContext

	exists  bool
	rec     record
	loadErr error

	// snap is the cell the activator reads this user's presence from
	// without a message to this actor (see publish); pub is what this
	// actor last stored there.
	snap *atomic.Pointer[snapshot]
	pub  *snapshot

	// sessions holds the open WebSocket sessions reported by each hub.
	sessions     map[string]sessionCount
	sessionTotal int32
	// lastRest is the last REST sign of life (heartbeat, PUT); the
	// inactivity deadline counts from it.
	lastRest int64
	// graceUntil is when the disconnect grace of the last closed session
	// ends; 0 when no grace is running.
	graceUntil int64

	offline, busy, retry timer

	// watchers are the hubs subscribed to this user, with tombstones of
	// recent unwatches so a late, reordered Watch cannot revive one.
	watchers     map[string]*watcher
	watcherCount int

	receiveTimeoutSet bool
	passivationAsked  bool

	// settled is what the activation applied (deadlines that passed while
	// no actor held the user), until a Recheck reports it; nil: nothing.
	settled *messages.CleanupUser

	// restAfter is how long after the last REST sign of life the user goes
	// offline: offline_after, or more when the last heartbeat was advised a
	// longer interval (0: offline_after).
	restAfter int64
}

// newUserActor makes the actor of user id. snap is the cell, created and
// held by the activator, where the actor publishes its presence.
func newUserActor(cfg *Config, id int64, snap *atomic.Pointer[snapshot]) *userActor {
	return &userActor{cfg: cfg, id: id, snap: snap}
}

// Receive implements actor.Actor.
func (a *userActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Envelope:
		reply := a.handle(ctx, m)
		// Published before the answer leaves: a client that got the
		// answer to its write must see the write in its next read, which
		// may be served from the snapshot.
		a.publish()
		if reply != nil && ctx.Sender() != nil {
			ctx.Respond(reply)
		}
	case *timerFired:
		a.onTimer(ctx, m)
	case *forgetHubs:
		a.forgetHubs(ctx, m.alive)
		if m.refresh {
			_ = a.refreshIfStale(ctx, a.now()) // best effort: writes are compare-and-set
		}
	case *actor.Started:
		a.self, a.root = ctx.Self(), ctx.ActorSystem().Root
		a.cfg.Observer.ActorActivated()
		a.activate(ctx)
	case *actor.ReceiveTimeout:
		if a.idle() {
			a.askPassivation(ctx)
		}
		return
	case *stopNow:
		a.stopRequested(ctx, m.handOff)
		return
	case *actor.Stopping:
		a.stopTimer(&a.offline)
		a.stopTimer(&a.busy)
		a.stopTimer(&a.retry)
		return
	case *actor.Stopped:
		a.cfg.Observer.ActorPassivated()
		return
	case *actor.Restarting:
		// The supervisor replaces this instance after a crash; the new one
		// reloads and publishes. Until then reads go to its mailbox.
		a.snap.Store(nil)
		a.pub = nil
		return
	default:
		return
	}
	// Timers, a view change and the activation change state without a
	// request: publish what they did.
	a.publish()
	a.updatePassivation(ctx)
}

// publish makes the snapshot the activator serves reads from match the
// actor's state, and returns it. It runs after every message that may have
// changed what a presence read returns (online, busy, busy_until,
// last_seen, username, version, and the timer deadlines that bound the
// snapshot's freshness), before any answer to that message, and before a
// change is pushed. It compares values, so calling it when nothing changed
// costs nothing. An actor without a usable record (its load failed) clears
// the cell: reads then come to it and get its failure.
func (a *userActor) publish() *snapshot {
	if a.loadErr != nil {
		if a.pub != nil {
			a.snap.Store(nil)
			a.pub = nil
		}
		return nil
	}
	fresh := a.freshUntil()
	if a.pub.current(&a.rec, a.exists, fresh) {
		return a.pub
	}
	a.pub = newSnapshot(&a.rec, a.exists, fresh)
	a.snap.Store(a.pub)
	return a.pub
}

// freshUntil is when a timer of this actor may next change what a read
// returns (noDeadline: never). A snapshot read after it goes through the
// mailbox instead, so it cannot overtake the timer's transition.
func (a *userActor) freshUntil() int64 {
	until := int64(noDeadline)
	if d := a.offlineDeadline(); d != 0 {
		until = d
	}
	if a.exists && a.rec.busy && a.rec.busyUntil != 0 {
		until = min(until, a.rec.busyUntil)
	}
	if a.retry.at != 0 {
		// A transition the store refused is pending: its deadline has
		// passed, so this is no later than the bounds above.
		until = min(until, a.retry.at)
	}
	return until
}

func (a *userActor) now() int64 { return micros(a.cfg.Clock.Now()) }

func (a *userActor) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
}

// activate loads the record and re-arms its timers from the stored deadlines.
func (a *userActor) activate(ctx actor.Context) {
	if err := a.reload(); err != nil {
		a.loadErr = err
		a.cfg.Logger.Warn("user actor activation failed", slog.Int64("user_id", a.id), slog.Any("err", err))
		a.askPassivation(ctx)
		return
	}
	if !a.exists {
		return
	}
	now := a.now()
	a.lastRest = a.rec.lastSeen
	if a.cfg.HeartbeatAdvice != nil {
		if d := AdvisedOfflineAfter(a.cfg.OfflineAfter, a.cfg.HeartbeatAdvice()); d > a.cfg.OfflineAfter {
			a.restAfter = d.Microseconds()
		}
	}
	if a.rec.online && a.rec.sessionsHeld {
		// Sessions held the user online on the previous owner; they are
		// gone with it, so their clients get the grace period to
		// re-attach here (hubs re-send their counts on a move).
		a.graceUntil = now + a.cfg.DisconnectGrace.Microseconds()
	}
	// Deadlines that passed while no actor held the user are applied now;
	// a cleanup's Recheck (often what activated us) reports them.
	a.settled, _ = a.expire(ctx, now)
	if a.cfg.Feed != nil {
		// The previous owner may have crashed before delivering its last
		// change: the feed checks (with the PostgreSQL store) and delivers
		// the current state if so. The snapshot is what Receive publishes
		// next anyway, so this costs no allocation.
		if snap := a.publish(); snap != nil && snap.exists {
			a.cfg.Feed.Activated(&snap.state)
		}
	}
}

func (a *userActor) reload() error {
	sctx, cancel := a.storeCtx()
	defer cancel()
	st, err := a.cfg.Store.Load(sctx, a.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.exists, a.rec = false, record{}
		return nil
	case err != nil:
		return err
	}
	a.exists, a.rec = true, recordFromProto(st)
	if a.cfg.LastSeen != nil {
		if pending, ok := a.cfg.LastSeen.Pending(a.id); ok && pending > a.rec.lastSeen {
			a.rec.lastSeen = pending
		}
	}
	// Activity another activation recorded counts for the inactivity rule
	// here too.
	a.lastRest = max(a.lastRest, a.rec.lastSeen)
	return nil
}

func (a *userActor) handle(ctx actor.Context, env *messages.Envelope) *messages.Envelope {
	if a.loadErr != nil {
		return a.failed(failure(messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable))
	}
	now := a.now()
	if reply, ok := a.answer(ctx, now, env); ok {
		return reply
	}
	known, err := a.write(ctx, now, env)
	if !known {
		// A kind this version does not know (a newer node sent it): ignore.
		return nil
	}
	if err != nil {
		return a.failed(failureFor(err))
	}
	a.rearm(now)
	if !a.exists {
		return a.notFound()
	}
	return a.status()
}

// answer handles the messages answered without a state change of their
// own (reads, watches, rechecks); ok is false for the others.
func (a *userActor) answer(ctx actor.Context, now int64, env *messages.Envelope) (reply *messages.Envelope, ok bool) {
	switch b := env.Body.(type) {
	case *messages.Envelope_GetPresence:
		if !a.exists {
			return a.notFound(), true
		}
		return a.status(), true

	case *messages.Envelope_GetStatus:
		if !a.exists && !b.GetStatus.GetCreate() {
			return a.notFound(), true
		}
		return nil, false // creating the record is a write

	case *messages.Envelope_Recheck:
		if b.Recheck.GetDryRun() {
			return cleanupReply(mergeCleanupUser(a.settled, a.dueNow(now))), true
		}
		a.mergeHandedLastSeen(b.Recheck.GetLastSeen())
		done, err := a.expire(ctx, now)
		if err != nil {
			return a.failed(failureFor(err)), true
		}
		reply := cleanupReply(mergeCleanupUser(a.settled, done))
		a.settled = nil
		return reply, true

	case *messages.Envelope_Watch:
		m := b.Watch
		a.setWatch(m.GetHubAddress(), m.GetHubId(), m.GetSeq(), true)
		if !a.exists {
			return a.notFound(), true
		}
		return a.status(), true

	case *messages.Envelope_Unwatch:
		m := b.Unwatch
		a.setWatch(m.GetHubAddress(), m.GetHubId(), m.GetSeq(), false)
		return &messages.Envelope{Body: &messages.Envelope_Ack{Ack: &messages.Ack{UserId: a.id}}}, true

	case *messages.Envelope_Inspect:
		return a.inspection(), true
	}
	return a.answerVisibility(env)
}

// write applies a message that may change the record; known is false for a
// kind this version does not know.
func (a *userActor) write(ctx actor.Context, now int64, env *messages.Envelope) (known bool, err error) {
	switch b := env.Body.(type) {
	case *messages.Envelope_GetStatus:
		m := b.GetStatus
		if !m.GetCreate() {
			return true, nil // a plain read of an existing record
		}
		return true, a.change(ctx, now, func(r *record) { setName(r, m.GetUsername()) })

	case *messages.Envelope_Heartbeat:
		m := b.Heartbeat
		a.restActivity(now)
		a.restAfter = AdvisedOfflineAfter(a.cfg.OfflineAfter, time.Duration(m.GetAdvisedIntervalSeconds())*time.Second).Microseconds()
		return true, a.change(ctx, now, func(r *record) {
			setName(r, m.GetUsername())
			r.online = true
			r.lastSeen = now
		})

	case *messages.Envelope_Activity:
		m := b.Activity
		return true, a.change(ctx, now, func(r *record) {
			setName(r, m.GetUsername())
			r.lastSeen = now
		})

	case *messages.Envelope_UpdateStatus:
		// A write that changes nothing in this actor's copy is answered
		// from the copy without a store write, so the copy must be current:
		// another activation (the other side of a partition) may have
		// written meanwhile. A write that changes something needs no such
		// read: its compare-and-set save finds a stale copy by itself.
		if a.exists {
			next := a.rec
			applyUpdate(&next, now, b.UpdateStatus)
			if !next.visible(&a.rec) {
				if err := a.refreshIfStale(ctx, now); err != nil {
					// The copy cannot be confirmed: answering it could
					// answer an older state than one already answered.
					return true, err
				}
			}
		}
		return true, a.update(ctx, now, b.UpdateStatus)

	case *messages.Envelope_Sessions:
		return true, a.sessionsChanged(ctx, now, b.Sessions)
	}
	return a.writeVisibility(ctx, now, env)
}

// setWatch applies a hub's Watch or Unwatch unless a newer one of the same
// hub was applied already.
func (a *userActor) setWatch(address, id string, seq uint64, active bool) {
	key := address + "/" + id
	w, ok := a.watchers[key]
	if ok && seq < w.seq {
		return
	}
	if !ok {
		if a.watchers == nil {
			a.watchers = make(map[string]*watcher)
		}
		w = &watcher{pid: actor.NewPID(address, id)}
		a.watchers[key] = w
	}
	before := w.counts()
	// A message from the hub: its node is there.
	w.seq, w.active, w.gone = seq, active, false
	a.watcherCount += w.counts() - before
}

// refreshIfStale adopts the stored record when another activation of the
// user stored a newer version than this actor's copy (views of the
// membership disagreed for a while: a partition, a join), and pushes it to
// this actor's watchers. A failed read changes nothing (writes are
// compare-and-set anyway) and is returned; a missing record is no error.
func (a *userActor) refreshIfStale(ctx actor.Context, now int64) error {
	if a.loadErr != nil {
		return nil
	}
	sctx, cancel := a.storeCtx()
	st, err := a.cfg.Store.Load(sctx, a.id)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.exists && st.GetVersion() <= a.rec.version {
		return nil
	}
	before := a.rec
	a.exists, a.rec = true, recordFromProto(st)
	a.rec.lastSeen = max(a.rec.lastSeen, before.lastSeen)
	a.lastRest = max(a.lastRest, a.rec.lastSeen)
	a.cfg.Logger.Info("adopted a newer stored record", slog.Int64("user_id", a.id),
		slog.Uint64("had", before.version), slog.Uint64("stored", a.rec.version))
	a.push(ctx)
	a.rearm(now)
	return nil
}

// forgetHubs drops the session counts of hubs whose node is gone (sessions
// held only there start the disconnect grace) and stops pushing to their
// watches; a hub whose node is back gets the current record at once.
func (a *userActor) forgetHubs(ctx actor.Context, alive func(address string) bool) {
	now := a.now()
	for key, w := range a.watchers {
		before, up := w.counts(), alive(w.pid.Address)
		switch {
		case !up && (!w.active || (w.gone && now-w.goneAt > goneKeep.Microseconds())):
			delete(a.watchers, key)
		case !up && !w.gone:
			w.gone, w.goneAt = true, now
		case up && w.gone:
			w.gone = false
			if w.active && a.exists {
				ctx.Send(w.pid, a.updateEnvelope())
			}
		}
		if _, kept := a.watchers[key]; kept {
			a.watcherCount += w.counts() - before
		} else {
			a.watcherCount -= before
		}
	}
	prev := a.sessionTotal
	a.sessionTotal = 0
	for hub, n := range a.sessions {
		if !alive(hubAddress(hub)) {
			delete(a.sessions, hub)
			continue
		}
		a.sessionTotal += n.count
	}
	if prev > 0 && a.sessionTotal == 0 && a.exists {
		now := a.now()
		a.graceUntil = now + a.cfg.DisconnectGrace.Microseconds()
		a.rearm(now)
	}
}

// hubAddress is the node address part of a hub key ("address/id").
func hubAddress(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return key
}

func setName(r *record, name string) {
	if name != "" {
		r.username = name
	}
}

// restActivity records a REST sign of life: it restarts the inactivity
// rule and ends a disconnect grace period.
func (a *userActor) restActivity(now int64) {
	a.lastRest = now
	a.graceUntil = 0
}

func (a *userActor) update(ctx actor.Context, now int64, m *messages.UpdateStatus) error {
	a.restActivity(now)
	return a.change(ctx, now, func(r *record) { applyUpdate(r, now, m) })
}

// applyUpdate applies PUT /users/me/status to r.
func applyUpdate(r *record, now int64, m *messages.UpdateStatus) {
	setName(r, m.GetUsername())
	r.lastSeen = now
	if m.GetSetOnline() {
		if r.online && !m.GetIsOnline() {
			r.appearOffline = true // the choice outlives re-sent session counts
		}
		r.online = m.GetIsOnline()
	}
	switch {
	case m.GetSetBusy() && !m.GetIsBusy():
		r.busy, r.busyUntil = false, 0
	case m.GetSetBusy():
		r.busy, r.busyUntil = true, 0
		if m.GetSetBusyUntil() {
			r.busyUntil = m.GetBusyUntil()
		}
	case m.GetSetBusyUntil() && m.GetBusyUntil() != 0:
		r.busy, r.busyUntil = true, m.GetBusyUntil()
	case m.GetSetBusyUntil():
		r.busyUntil = 0
	}
}

func (a *userActor) sessionsChanged(ctx actor.Context, now int64, m *messages.Sessions) error {
	if a.sessions == nil {
		a.sessions = make(map[string]sessionCount)
	}
	hub := m.GetHub()
	last, known := a.sessions[hub]
	if known && m.GetSeq() < last.seq {
		return nil // an older report overtaken by a newer one
	}
	prevTotal, prevGrace := a.sessionTotal, a.graceUntil
	// A zero count is kept (not deleted) so its seq still fences older
	// reports; it is dropped with the actor.
	a.sessions[hub] = sessionCount{count: max(m.GetCount(), 0), seq: m.GetSeq()}
	a.sessionTotal = 0
	for _, n := range a.sessions {
		a.sessionTotal += n.count
	}
	var err error
	switch {
	case a.sessionTotal > prevTotal && m.GetResend() && a.exists && a.rec.appearOffline:
		// A count re-sent to this activation (the user moved here), not a
		// new connection: the user's choice to appear offline stands.
		a.graceUntil = 0
	case a.sessionTotal > prevTotal:
		// A new connection makes the user online, even one who chose to
		// appear offline ("until the next heartbeat or connection").
		if prevTotal == 0 && a.exists && a.rec.online && a.graceUntil > now {
			a.cfg.Observer.FlapSuppressed()
		}
		a.graceUntil = 0
		err = a.change(ctx, now, func(r *record) {
			setName(r, m.GetUsername())
			r.online = true
			r.lastSeen = now
		})
	case prevTotal > 0 && a.sessionTotal == 0 && a.exists:
		a.graceUntil = now + a.cfg.DisconnectGrace.Microseconds()
		err = a.change(ctx, now, func(r *record) { r.lastSeen = now })
	}
	if err != nil {
		// Refused: the report did not happen, so the hub's retry (same or
		// higher seq) is judged against the old counts.
		if known {
			a.sessions[hub] = last
		} else {
			delete(a.sessions, hub)
		}
		a.sessionTotal, a.graceUntil = prevTotal, prevGrace
	}
	return err
}

// change applies mutate to the record and persists the result. A change
// watchers can see gets a new version and is written synchronously (and
// pushed); a change of last_seen alone goes to the write-behind queue. On a
// version conflict the actor reloads and applies mutate again; on any other
// store error the record is left as it was.
func (a *userActor) change(ctx actor.Context, now int64, mutate func(r *record)) error {
	for attempt := 1; ; attempt++ {
		before, existed := a.rec, a.exists
		if !existed {
			a.rec = record{userID: a.id, createdAt: now, lastSeen: now}
		}
		mutate(&a.rec)
		a.rec.sessionsHeld = a.sessionTotal > 0
		if a.rec.online {
			a.rec.appearOffline = false
		}
		if existed && !a.rec.visible(&before) {
			if a.rec.lastSeen != before.lastSeen {
				a.touchLastSeen()
			}
			return nil
		}
		a.rec.version = nextVersion(before.version, existed, now)
		a.rec.updatedAt = now
		err := a.save(before.version)
		if err == nil {
			a.exists = true
			a.push(ctx)
			return nil
		}
		a.rec, a.exists = before, existed
		if !errors.Is(err, store.ErrVersionConflict) || attempt == maxSaveAttempts {
			return err
		}
		a.cfg.Logger.Info("version conflict, reloading", slog.Int64("user_id", a.id), slog.Uint64("version", before.version))
		if err := a.reload(); err != nil {
			return err
		}
	}
}

func (a *userActor) save(prevVersion uint64) error {
	sctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.cfg.Store.Save(sctx, a.rec.proto(), prevVersion); err != nil {
		return err
	}
	return nil
}

func (a *userActor) touchLastSeen() {
	if a.cfg.LastSeen != nil {
		a.cfg.LastSeen.Touch(a.id, a.rec.lastSeen)
		return
	}
	sctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.cfg.Store.TouchLastSeen(sctx, []store.Touch{{UserID: a.id, LastSeen: a.rec.lastSeen}}); err != nil {
		a.cfg.Logger.Warn("last_seen write failed", slog.Int64("user_id", a.id), slog.Any("err", err))
	}
}

func (a *userActor) push(ctx actor.Context) {
	// Published before the push: a watcher that reads after it got the
	// change must see it too.
	snap := a.publish()
	if a.cfg.Feed != nil {
		// The published snapshot is immutable, so the feed may keep it.
		if snap != nil {
			a.cfg.Feed.Changed(&snap.state)
		} else {
			a.cfg.Feed.Changed(a.rec.proto())
		}
	}
	if a.watcherCount == 0 {
		return
	}
	env := a.updateEnvelope()
	for _, w := range a.watchers {
		if w.counts() == 1 {
			ctx.Send(w.pid, env)
		}
	}
}

// updateEnvelope is the push of the current record: the published
// snapshot's state, which is immutable, so every hub can share it.
func (a *userActor) updateEnvelope() *messages.Envelope {
	var st *messages.UserState
	if snap := a.publish(); snap != nil {
		st = &snap.state
	} else {
		st = a.rec.proto()
	}
	return &messages.Envelope{Body: &messages.Envelope_PresenceUpdate{PresenceUpdate: &messages.PresenceUpdate{State: st}}}
}

// offlineDeadline is when the user goes offline if nothing happens, or 0
// when no inactivity rule applies (offline already, or sessions open).
func (a *userActor) offlineDeadline() int64 {
	if !a.exists || !a.rec.online || a.sessionTotal > 0 {
		return 0
	}
	if a.graceUntil != 0 {
		// The last session closed: the grace period decides. REST activity
		// from before the close does not extend it (the client app was
		// closed); REST activity after it clears the grace and restarts the
		// inactivity rule.
		return a.graceUntil
	}
	if a.restAfter > 0 {
		return a.lastRest + a.restAfter
	}
	return a.lastRest + a.cfg.OfflineAfter.Microseconds()
}

// expire applies the transitions whose deadlines have passed. It is what a
// timer firing and an admin cleanup both do. Whether a transition is due is
// judged inside the change, so that after a version conflict it is judged
// again on the reloaded record (another activation may have extended the
// busy status or seen a heartbeat meanwhile).
func (a *userActor) expire(ctx actor.Context, now int64) (done *messages.CleanupUser, err error) {
	if a.dueNow(now) != nil {
		err = a.change(ctx, now, func(r *record) {
			// r is a.rec, possibly reloaded after a version conflict.
			done = a.dueNow(now)
			if done == nil {
				return
			}
			if done.MarkOffline {
				r.online = false
			}
			if done.ClearBusy {
				r.busy, r.busyUntil = false, 0
			}
		})
		if err != nil {
			a.cfg.Logger.Warn("timer transition not persisted, will retry", slog.Int64("user_id", a.id), slog.Any("err", err))
			// Only the retry timer runs until it fires: the deadlines that
			// failed have passed, and re-arming them would fire at once.
			a.stopTimer(&a.offline)
			a.stopTimer(&a.busy)
			a.armTimer(&a.retry, retryTimer, now+retryAfterFailure.Microseconds(), now)
			return nil, err
		}
		if done.GetMarkOffline() {
			a.graceUntil = 0
			a.cfg.Observer.WentOffline(time.Duration(now-a.rec.lastSeen) * time.Microsecond)
		}
	}
	a.rearm(now)
	return done, nil
}

// mergeHandedLastSeen keeps the later of this activation's last_seen and
// the one an old owner handed over (0: none). The old owner's newest touch
// may still wait in its write-behind when this node loads the user, and
// both the user's last_seen and the inactivity deadline follow it.
func (a *userActor) mergeHandedLastSeen(micros int64) {
	if !a.exists || micros <= a.rec.lastSeen {
		return
	}
	a.rec.lastSeen = micros
	a.lastRest = max(a.lastRest, micros)
	a.touchLastSeen()
}

// dueNow reports the transitions whose deadlines have passed at now, as
// the cleanup report's entry for this user (nil: none), without applying
// them.
func (a *userActor) dueNow(now int64) *messages.CleanupUser {
	d := a.offlineDeadline()
	off := d != 0 && now >= d
	busy := a.exists && a.rec.busy && a.rec.busyUntil != 0 && now >= a.rec.busyUntil
	if !off && !busy {
		return nil
	}
	return &messages.CleanupUser{UserId: a.id, MarkOffline: off, ClearBusy: busy, LastSeen: a.rec.lastSeen, BusyUntil: a.rec.busyUntil}
}

// rearm makes the armed timers match the record's deadlines. The offline
// timer is re-armed only when the deadline moved earlier: a later deadline
// (the usual effect of a heartbeat) is picked up when the old timer fires,
// so heartbeats do not churn timers.
func (a *userActor) rearm(now int64) {
	if a.retry.at != 0 {
		return // a failed transition is retried first; it re-arms after
	}
	if d := a.offlineDeadline(); d == 0 {
		a.stopTimer(&a.offline)
	} else if a.offline.at == 0 || a.offline.at > d {
		a.armTimer(&a.offline, offlineTimer, d, now)
	}
	if a.exists && a.rec.busy && a.rec.busyUntil != 0 {
		if a.busy.at != a.rec.busyUntil {
			a.armTimer(&a.busy, busyTimer, a.rec.busyUntil, now)
		}
	} else {
		a.stopTimer(&a.busy)
	}
}

func (a *userActor) armTimer(t *timer, kind timerKind, at, now int64) {
	a.stopTimer(t)
	t.gen++
	t.at = at
	gen, self, root := t.gen, a.self, a.root
	// A deadline beyond maxTimerWait is approached in steps: each firing
	// finds the deadline not reached yet and arms the next step.
	wait := min(at-now, maxTimerWait.Microseconds())
	t.stop = a.cfg.Clock.AfterFunc(time.Duration(wait)*time.Microsecond, func() {
		root.Send(self, &timerFired{kind: kind, gen: gen})
	})
}

func (a *userActor) stopTimer(t *timer) {
	if t.stop != nil {
		t.stop()
		t.stop = nil
	}
	t.at = 0
}

func (a *userActor) onTimer(ctx actor.Context, m *timerFired) {
	var t *timer
	switch m.kind {
	case offlineTimer:
		t = &a.offline
	case busyTimer:
		t = &a.busy
	case retryTimer:
		t = &a.retry
	}
	if t == nil || t.gen != m.gen || t.at == 0 {
		return // stopped or re-armed since
	}
	t.at, t.stop = 0, nil
	_, _ = a.expire(ctx, a.now())
}

// stopRequested ends the passivation handshake (see activator.go): every
// message forwarded to this actor has been handled by now.
func (a *userActor) stopRequested(ctx actor.Context, handOff bool) {
	switch {
	case handOff:
		// Another node owns the user now. Its state is stored; if timers
		// were running, the new owner must activate the user to run them.
		if a.exists && (a.offline.at != 0 || a.busy.at != 0 || a.retry.at != 0) && a.cfg.Handoff != nil {
			a.cfg.Handoff(a.id, a.rec.lastSeen)
		}
	case !a.idle() && a.loadErr == nil:
		// A message that arrived before the handshake made this actor
		// hold something again (a timer, a session, a watcher).
		a.passivationAsked = false
		ctx.Send(ctx.Parent(), &resume{userID: a.id, pid: ctx.Self()})
		return
	}
	ctx.Stop(ctx.Self())
}

// idle reports whether the actor holds nothing that needs it in memory.
func (a *userActor) idle() bool {
	return a.offline.at == 0 && a.busy.at == 0 && a.retry.at == 0 && a.sessionTotal == 0 && a.watcherCount == 0
}

// askPassivation starts the handshake once.
func (a *userActor) askPassivation(ctx actor.Context) {
	if a.passivationAsked {
		return
	}
	a.passivationAsked = true
	ctx.Send(ctx.Parent(), &passivate{userID: a.id, pid: ctx.Self()})
}

func (a *userActor) updatePassivation(ctx actor.Context) {
	idle := a.idle()
	if idle && !a.exists && a.loadErr == nil {
		// Nothing stored and nobody interested (a lookup of an unknown
		// user): do not keep an actor for it.
		a.askPassivation(ctx)
		return
	}
	if idle == a.receiveTimeoutSet {
		return
	}
	a.receiveTimeoutSet = idle
	if idle {
		ctx.SetReceiveTimeout(a.cfg.PassivateAfter)
	} else {
		ctx.CancelReceiveTimeout()
	}
}

// failed stamps a failure with the user it is about.
func (a *userActor) failed(env *messages.Envelope) *messages.Envelope {
	env.GetFailure().UserId = a.id
	return env
}

func (a *userActor) notFound() *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_NotFound{NotFound: &messages.NotFound{UserId: a.id}}}
}

// status answers with the user's record: the published snapshot's state,
// which is immutable, so the answer needs no copy of its own (receivers only
// read states).
func (a *userActor) status() *messages.Envelope {
	var st *messages.UserState
	if snap := a.publish(); snap != nil && snap.exists {
		st = &snap.state
	} else {
		st = a.rec.proto()
	}
	return &messages.Envelope{Body: &messages.Envelope_StateReply{StateReply: &messages.StateReply{State: st}}}
}

// inspection answers Inspect: the true record and what holds the actor.
func (a *userActor) inspection() *messages.Envelope {
	if !a.exists {
		return a.notFound()
	}
	return &messages.Envelope{Body: &messages.Envelope_Inspection{Inspection: &messages.Inspection{
		State:    a.status().GetStateReply().GetState(),
		Node:     a.cfg.NodeName,
		Watchers: int32(a.watcherCount),
		Sessions: a.sessionTotal,
	}}}
}

func failure(kind messages.FailureKind, detail string) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Failure{Failure: &messages.Failure{Kind: kind, Detail: detail}}}
}

// failureFor turns a store error into the failure answered for it: a lost
// compare-and-set race is a conflict, anything else the store being
// unavailable.
func failureFor(err error) *messages.Envelope {
	if errors.Is(err, store.ErrVersionConflict) {
		return failure(messages.FailureKind_FAILURE_KIND_CONFLICT, detailStoreConflict)
	}
	return failure(messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
