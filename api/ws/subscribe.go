package ws

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// subscribe adds ids to the session. With ack, the client gets
// {"type":"subscribed"} and then the current presence of each known user.
// Until a user's snapshot is queued, pushes for that user are held (newest
// wins) and queued right after it, so the client never sees an older
// version after a newer one. Answers are paced (sendPaced): a subscribe to
// a thousand users is not a reason to drop a slow reader.
func (s *Server) subscribe(sess *session, ids []int64, ack bool) {
	limit := 0
	if ack {
		// The session's own user does not count against the limit.
		limit = s.cfg.MaxSubscriptions + 1
	}
	if !sess.reserve(ids, limit) {
		sess.send(wire.AppendErrorFrame(nil, "subscription limit of "+strconv.Itoa(s.cfg.MaxSubscriptions)+" per connection reached"))
		return
	}
	ctx, cancel := s.requestCtx()
	states, missing, err := s.hub.subscribeAll(ctx, sess, ids)
	cancel()
	if err != nil {
		s.log.Warn("subscribe incomplete", slog.Int64("user_id", sess.identity().UserID),
			slog.Int("snapshots_owed", len(missing)), slog.Any("err", err))
	}
	if len(missing) > 0 {
		owed := make([]int64, len(missing))
		for k, i := range missing {
			owed[k] = ids[i]
		}
		defer func() { go s.retrySnapshots(sess, owed) }()
	}
	if ack && !sess.sendPaced(wire.AppendIDsFrame(nil, "subscribed", ids)) {
		return
	}
	now := time.Now()
	for i, id := range ids {
		var snap []byte
		var v uint64
		if st := states[i]; st != nil {
			// As this session may see the user (visibility.go).
			snap, v = wire.AppendUpdateFrameView(nil, st, sess.viewOf(st), now), st.GetVersion()
		}
		live, fresh, pending := sess.admitSnapshot(id, v)
		if !live {
			continue
		}
		if ack && snap != nil && fresh && !sess.sendPaced(snap) {
			return
		}
		if pending {
			sess.markReady(id, v)
		}
	}
}

// unsubscribe removes ids from the session (never its own user) and
// answers {"type":"unsubscribed"} with the ids asked for.
func (s *Server) unsubscribe(sess *session, ids []int64) {
	dropped := sess.drop(ids)
	ctx, cancel := s.requestCtx()
	s.hub.unsubscribe(ctx, sess, dropped)
	cancel()
	sess.send(wire.AppendIDsFrame(nil, "unsubscribed", ids))
}

// snapshotRetries are the waits before reading again the users whose
// subscribe snapshot could not be had (their owner was busy or briefly
// refusing, as in a reconnect storm). Without them a session subscribed
// during such a moment would show those users as they were before it
// reconnected until their next change.
var snapshotRetries = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// retrySnapshots reads ids again until each is read (or known to have no
// record) and queues each state to sess, as it may see it. The session's
// versions drop a state older than one a push brought meanwhile.
func (s *Server) retrySnapshots(sess *session, ids []int64) {
	for _, wait := range snapshotRetries {
		select {
		case <-sess.closed():
			return
		case <-time.After(wait):
		}
		s.hub.stats.SnapshotRetries.Add(int64(len(ids)))
		ctx, cancel := s.requestCtx()
		states, err := s.hub.router.ReadPresence(ctx, ids)
		cancel()
		if err == nil {
			s.sendSnapshots(sess, ids, states)
			return
		}
		var rest []int64
		for k, id := range ids {
			if k < len(states) && states[k] != nil {
				s.sendSnapshots(sess, ids[k:k+1], states[k:k+1])
			} else {
				rest = append(rest, id)
			}
		}
		ids = rest
	}
	s.log.Warn("subscribe snapshots not read; the session shows those users from their next change",
		slog.Int64("user_id", sess.identity().UserID), slog.Int("users", len(ids)))
}

// sendSnapshots queues the known states among states (of ids, in order)
// to sess.
func (s *Server) sendSnapshots(sess *session, ids []int64, states []*messages.UserState) {
	now := time.Now()
	for k, st := range states {
		if st != nil {
			sess.push(ids[k], st.GetVersion(), wire.AppendUpdateFrameView(nil, st, sess.viewOf(st), now))
		}
	}
}
