package ws

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// Session lifetime: a session lives no longer than its token. Each session
// keeps one deadline (its token's exp plus the verifier's leeway), a
// refresh frame with a valid token of the same user replaces it, and the
// hub's pinger, which already visits every session a few times per ping
// interval, closes those past it with 4001. So the check costs nothing per
// frame and no timer per session: one atomic load per session per pinger
// tick. An admin disconnect reaches every node's hub (messages.HubName),
// which closes the user's local sessions with 4003.

// CloseTokenExpired and CloseDisconnected are the close codes of the
// session-lifetime rules (see wire).
const (
	CloseTokenExpired = wire.CloseTokenExpired
	CloseDisconnected = wire.CloseDisconnected
)

// handshakeAuth is what Upgrade learnt from the token for the session: one
// value, as the connection keeps every local for its whole life.
type handshakeAuth struct {
	id  auth.Identity
	exp time.Time
}

// setExpiry makes the session end once its token's exp plus leeway has
// passed; a zero exp (no token: tests) means never.
func (s *session) setExpiry(exp time.Time, leeway time.Duration) {
	if exp.IsZero() {
		s.deadline.Store(0)
		return
	}
	s.deadline.Store(exp.Add(leeway).UnixNano())
}

// expiredAt reports whether the session's deadline has passed at now.
func (s *session) expiredAt(now time.Time) bool {
	d := s.deadline.Load()
	return d != 0 && now.UnixNano() >= d
}

// refresh answers a refresh frame: a valid token of the session's user
// replaces the session's deadline (earlier or later) and is answered with
// its exp; any other token gets an error frame and changes nothing.
func (s *Server) refresh(sess *session, token string) {
	id, exp, err := s.deps.Verifier.VerifyExpiry(token)
	switch {
	case err != nil:
		sess.send(wire.AppendErrorFrame(nil, "refresh refused: invalid or expired token"))
		return
	case id.UserID != sess.identity().UserID:
		sess.send(wire.AppendErrorFrame(nil, "refresh refused: the token is for another user"))
		return
	}
	sess.setExpiry(exp, s.deps.Verifier.Leeway())
	sess.send(wire.AppendRefreshedFrame(make([]byte, 0, 64), exp))
}

// answerDisconnect closes every local session of the user named by d with
// 4003 and answers how many it closed.
func (h *Hub) answerDisconnect(ctx actor.Context, d *messages.DisconnectUser) {
	n := h.DisconnectUser(d.GetUserId())
	if ctx.Sender() != nil {
		ctx.Respond(&messages.Envelope{Body: &messages.Envelope_DisconnectCount{DisconnectCount: &messages.DisconnectCount{
			UserId: d.GetUserId(), SessionsClosed: int64(n),
		}}})
	}
}

// DisconnectUser closes every session of userID on this node with 4003
// (reason "disconnected") and returns how many were open. The sessions
// detach as usual, so the user goes offline after the disconnect grace
// unless a session reconnects.
func (h *Hub) DisconnectUser(userID int64) int {
	h.mu.RLock()
	var open []*session
	if own := h.sessions[userID]; own != nil {
		open = make([]*session, 0, len(own.sessions))
		for s := range own.sessions {
			if !s.isClosing() {
				open = append(open, s)
			}
		}
	}
	h.mu.RUnlock()
	for _, s := range open {
		s.close(CloseDisconnected, wire.CloseDisconnectedReason)
	}
	return len(open)
}
