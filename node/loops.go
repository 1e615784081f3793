package node

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/presence-cluster/presence/cluster"
)

// resyncEvery is how often the hub looks for re-subscriptions to retry;
// resyncRetry is how soon it retries after a pass in which some failed
// (an owner not answering for a moment, a store down).
const (
	resyncEvery = 5 * time.Second
	resyncRetry = time.Second
)

// rearmAfterSettled is how long the start-up re-arm waits once the
// membership has settled (see rearmAtStart).
const rearmAfterSettled = time.Second

// lastSeenFlushTimeout bounds a flush made outside the write-behind's own
// loop (see flushLastSeen).
const lastSeenFlushTimeout = 10 * time.Second

// onView reacts to a membership change: users that moved away are stopped
// (and handed to their new owner when their timers run), their pending
// last_seen touches are written at once, actors forget hubs of nodes that
// left, the hub re-subscribes users whose owner changed, and when a member
// left, this node activates the stored live users it now owns so their
// timers run again.
func (n *Node) onView(old, cur *cluster.View) {
	self := n.system.Address()
	if ownersChanged(old, cur) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), lastSeenFlushTimeout)
			defer cancel()
			n.flushLastSeen(ctx, "owners changed")
		}()
	}
	joined := false
	for _, m := range cur.Owners {
		was, ok := old.OwnerNamed(m.Name)
		if !ok && m.Name != n.members.LocalName() {
			joined = true
		}
		if (!ok || was.State != "alive") && m.State == "alive" {
			// Back (restarted, a partition healed, a suspicion refuted):
			// what its silence taught the router no longer holds.
			n.router.MemberBack(m.RemoteAddr)
		}
	}
	for _, addr := range staleRemotes(old, cur) {
		n.router.MemberGone(addr)
	}
	n.host.ViewChanged(func(addr string) bool { return addr == self || cur.HasRemote(addr) }, joined)
	select {
	case n.resync <- struct{}{}:
	default:
	}
	if len(old.Owners) > 0 && storeKind(n.cfg.Store) == "bolt" && len(cur.All) > 1 {
		n.log.Error("another member joined a node whose store is a local bolt file: users moving between nodes lose their state; use a shared postgres:// store")
	}
	for _, m := range old.Owners {
		if _, ok := cur.OwnerNamed(m.Name); !ok {
			go n.rearm()
			break
		}
	}
}

// ownersChanged reports whether the user-owning members differ between old
// and cur, so that some users may have a new owner.
func ownersChanged(old, cur *cluster.View) bool {
	if len(old.Owners) != len(cur.Owners) {
		return true
	}
	for _, m := range cur.Owners {
		if _, ok := old.OwnerNamed(m.Name); !ok {
			return true
		}
	}
	return false
}

// flushLastSeen writes the pending last_seen touches now rather than at the
// next tick of the write-behind. A user's new owner loads the user from the
// store and keeps what it read until the user's next touch, so without this
// it would show a last_seen up to one flush interval old for a user that
// moved. A failure is only logged: the touches stay pending and the
// periodic flush retries them.
func (n *Node) flushLastSeen(ctx context.Context, why string) {
	select {
	case <-n.stopped:
		return // Shutdown flushes after the actors stopped.
	default:
	}
	if err := n.lastSeen.Flush(ctx); err != nil {
		n.log.Warn("flushing last_seen failed; the periodic flush retries", slog.String("why", why), slog.Any("err", err))
	}
}

// staleRemotes returns the remoting addresses whose connections, if this
// node holds any, may lead to a process that is gone: those of members that
// left the view (left, or declared dead), and that of a member new to the
// view whose address another member of the view still has (a process
// restarted at its address before failure detection declared the old one
// dead: two processes cannot listen on one address, so the old one is
// gone).
//
// Nothing else counts. Dropping a connection loses what is queued on it
// (pushes included), so a member returning under its name after a
// partition keeps its connection.
func staleRemotes(old, cur *cluster.View) []string {
	var out []string
	add := func(addr string) {
		if !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	for _, m := range old.All {
		if m.RemoteAddr != "" && old.HasRemote(m.RemoteAddr) && !cur.HasRemote(m.RemoteAddr) {
			add(m.RemoteAddr)
		}
	}
	for _, m := range cur.All {
		if _, known := old.Member(m.Name); known || m.RemoteAddr == "" {
			continue
		}
		for _, o := range old.All {
			if o.Name != m.Name && o.RemoteAddr == m.RemoteAddr {
				add(m.RemoteAddr)
			}
		}
	}
	return out
}

// resyncLoop re-subscribes the hub after membership changes, one pass at a
// time, coalescing changes that arrive during a pass; a periodic pass
// retries what failed (a pass with nothing to do costs a hash per watched
// user).
func (n *Node) resyncLoop() {
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-n.stopped:
			return
		case <-tick.C:
		case <-retry:
		case <-n.resync:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		failed := n.api.Hub().Resync(ctx)
		cancel()
		retry = nil
		if failed {
			retry = time.After(resyncRetry)
		}
	}
}

// rearmAtStart is the start-up re-arm: records left online or busy by a
// previous run have no actor to expire them. It waits for the membership
// to settle: a joining node sees itself alone until its first join, and
// would activate every live user, those the others own and hold with
// newer state included. The members it joined learn of it at the same
// moment and write their pending last_seen touches then (onView), so it
// also gives those writes a head start over its loads.
func (n *Node) rearmAtStart() {
	select {
	case <-n.members.Settled():
	case <-n.stopped:
		return
	}
	select {
	case <-time.After(rearmAfterSettled):
	case <-n.stopped:
		return
	}
	n.rearm()
}

// rearm activates the stored live users this node owns that no actor
// holds, so their timers run again. The store may be unreachable (a node
// starting while the database is down): it retries with backoff until it
// succeeds or the node stops.
func (n *Node) rearm() {
	backoff := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		counts, err := n.host.Cleanup(ctx, n.router.Owns)
		cancel()
		if err == nil {
			n.log.Info("stored timers re-armed",
				slog.Int64("users_marked_offline", counts.GetUsersMarkedOffline()),
				slog.Int64("busy_status_cleared", counts.GetBusyStatusCleared()))
			return
		}
		n.log.Warn("re-arming stored timers failed; will retry", slog.Any("err", err), slog.Duration("in", backoff))
		select {
		case <-n.stopped:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
