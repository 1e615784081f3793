package ws

import (
	"context"
	"log/slog"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// resyncBatch is how many re-watches one RequestAll of Resync carries.
const resyncBatch = 256

// sessCount is a session count Resync re-sends.
type sessCount struct {
	uid      int64
	username string
	count    int
	seq      uint64
}

// Resync re-subscribes, after a membership change, every watched user whose
// owner changed (the new owner's actor knows nothing of this hub) and
// delivers the fresh state it answers with, so subscribers end with the
// true state even if the old owner died before pushing it. It also re-sends
// the session counts of local users whose owner changed. What fails is
// marked so that the next Resync tries it again; failed reports whether
// something did.
func (h *Hub) Resync(ctx context.Context) (failed bool) {
	watchEnvs, counts := h.ownerChanges()
	if len(watchEnvs) == 0 && len(counts) == 0 {
		return false
	}
	h.log.Info("hub re-subscribing after membership change", slog.Int("watches", len(watchEnvs)), slog.Int("session_users", len(counts)))
	start := time.Now()
	defer func() {
		// How long the moved users' owners went without this hub's counts
		// and watches: a count later than the disconnect grace is a flap.
		h.log.Info("hub re-subscribed", slog.Int("watches", len(watchEnvs)), slog.Int("session_users", len(counts)),
			slog.Bool("failed", failed), slog.Duration("took", time.Since(start)))
	}()
	// Counts first: a moved user whose sessions are all on other nodes
	// starts its new activation in the disconnect grace, and goes offline
	// if its counts do not arrive before the grace ends.
	failed = h.resendCounts(ctx, counts)
	for start := 0; start < len(watchEnvs); start += resyncBatch {
		part := watchEnvs[start:min(start+resyncBatch, len(watchEnvs))]
		replies, errs := h.router.RequestAll(ctx, part)
		for i, reply := range replies {
			if errs[i] != nil {
				failed = true
				h.log.Warn("re-watch failed; will retry", slog.Any("err", errs[i]))
				h.forgetOwner(part[i].GetWatch().GetUserId())
				continue
			}
			if st := reply.GetStateReply().GetState(); st != nil {
				h.deliver(st)
			}
		}
	}
	return failed
}

// resendCounts sends counts to their users' actors in batches of
// resyncBatch, every batch at once (a node that took over a third of the
// cluster's users gets thousands of counts from each hub; one round trip
// each would take longer than the disconnect grace under load). A count
// not taken is owed: the next Resync sends it again.
func (h *Hub) resendCounts(ctx context.Context, counts []sessCount) (failed bool) {
	for start := 0; start < len(counts); start += resyncBatch {
		part := counts[start:min(start+resyncBatch, len(counts))]
		envs := make([]*messages.Envelope, len(part))
		for i, c := range part {
			envs[i] = h.sessionsEnv(c.uid, c.username, c.count, c.seq, true)
		}
		replies, errs := h.router.RequestAll(ctx, envs)
		for i, c := range part {
			if err := replyErr(replies[i], errs[i]); err != nil {
				failed = true
				h.log.Warn("session count not re-sent; will retry", slog.Int64("user_id", c.uid), slog.Any("err", err))
				h.oweCount(c.uid)
			}
		}
	}
	return failed
}

// oweCount marks uid's count on this node as not known to its owner, so
// the next Resync sends it again; a count of zero keeps an empty entry for
// that. A closed hub owes nothing: its node is leaving, and the owners
// forget its counts when it is gone.
func (h *Hub) oweCount(uid int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	own := h.sessions[uid]
	if own == nil {
		own = &ownEntry{sessions: make(map[*session]struct{})}
		h.sessions[uid] = own
	}
	own.owner = ownerUnknown
}

// ownerChanges records the current owner of every watched user and of
// every local session's user, and returns the Watch envelopes and session
// counts to send to those whose owner changed.
func (h *Hub) ownerChanges() ([]*messages.Envelope, []sessCount) {
	var watchEnvs []*messages.Envelope
	var counts []sessCount
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, w := range h.watches {
		if owner := h.router.Owner(id); owner != w.owner {
			w.owner = owner
			watchEnvs = append(watchEnvs, h.watchEnv(id))
		}
	}
	for uid, own := range h.sessions {
		owner := h.router.Owner(uid)
		if owner == own.owner {
			continue
		}
		own.owner = owner
		if len(own.sessions) == 0 {
			// A zero count that did not reach the owner (oweCount): sent
			// once more, and owed again if it fails.
			delete(h.sessions, uid)
		}
		var name string
		for s := range own.sessions {
			name = s.identity().Username
			break
		}
		counts = append(counts, sessCount{uid: uid, username: name, count: len(own.sessions), seq: h.seq.Add(1)})
	}
	return watchEnvs, counts
}
