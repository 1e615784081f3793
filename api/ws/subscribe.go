package ws

import (
	"log/slog"
	"strconv"
	"time"

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
	states, err := s.hub.subscribe(ctx, sess, ids)
	cancel()
	if err != nil {
		s.log.Warn("subscribe incomplete", slog.Int64("user_id", sess.identity().UserID), slog.Any("err", err))
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
