package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// HubName is the well-known actor name of a node's hub; user actors push
// their changes to it, and an admin disconnect reaches it on every node.
const HubName = messages.HubName

// Hub is the node-local fan-out of presence changes to WebSocket sessions.
// It watches each user once per node, however many local sessions watch
// that user, and tells each user actor how many sessions of its user this
// node holds. Pushes never block it: each session has a bounded queue.
type Hub struct {
	router Router
	root   *actor.RootContext
	pid    *actor.PID
	log    *slog.Logger
	// maxSessionsPerUser caps one user's sessions on this node.
	maxSessionsPerUser int
	// seq orders this hub's Watch/Unwatch/Sessions messages.
	seq atomic.Uint64

	mu       sync.RWMutex
	watches  map[int64]*watchEntry
	sessions map[int64]*ownEntry // by the session's own user
	closed   bool
	// stopPinger ends the pinger; closed by CloseAll.
	stopPinger chan struct{}

	stats HubStats
}

// HubStats counts hub events for metrics; read with the atomic loads.
type HubStats struct {
	SessionsOpen     atomic.Int64
	Pushes           atomic.Int64
	FramesQueued     atomic.Int64
	SlowDisconnects  atomic.Int64
	StaleDropped     atomic.Int64
	WatchesPerformed atomic.Int64
	// WriterGoroutines counts the writer goroutines started for sessions
	// the writer workers could not serve at once (a socket that would
	// block, a full backlog, a close frame).
	WriterGoroutines atomic.Int64
	// AttachRetries counts attaches tried again on an open connection
	// after a failure that may pass; SnapshotFallbacks counts subscribe
	// snapshots taken from the hub's newest pushed state because reading
	// the user failed; SnapshotRetries counts snapshots read again later
	// because neither was there.
	AttachRetries     atomic.Int64
	SnapshotFallbacks atomic.Int64
	SnapshotRetries   atomic.Int64
}

// watchEntry is one watched user: the local sessions watching it, the
// member that owned the user when the hub last told it about the watch,
// and the newest state fanned out (what the sessions were last given;
// see visibility.go).
type watchEntry struct {
	sessions map[*session]struct{}
	owner    string
	last     atomic.Pointer[messages.UserState]
}

// ownerUnknown marks a watch or a session count that did not reach the
// user's actor: no member has that name (a standalone node's is ""), so
// the next Resync sends it again.
const ownerUnknown = "\x00unknown"

// ownEntry is one user's sessions on this node, and the member whose actor
// was last told their count.
type ownEntry struct {
	sessions map[*session]struct{}
	owner    string
}

// NewHub spawns the hub's actor in system.
func NewHub(system *actor.ActorSystem, router Router, maxSessionsPerUser int, logger *slog.Logger) (*Hub, error) {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Hub{
		router:             router,
		root:               system.Root,
		log:                logger,
		maxSessionsPerUser: maxSessionsPerUser,
		watches:            make(map[int64]*watchEntry),
		sessions:           make(map[int64]*ownEntry),
		stopPinger:         make(chan struct{}),
	}
	// Sequence numbers start from the clock: a hub restarted at the same
	// address (the same PID) must not send numbers that owners' actors
	// take for older than its previous incarnation's.
	h.seq.Store(uint64(time.Now().UnixNano()))
	pid, err := system.Root.SpawnNamed(actor.PropsFromFunc(h.receive), HubName)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", HubName, err)
	}
	h.pid = pid
	return h, nil
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *HubStats { return &h.stats }

// PID is the hub actor's address.
func (h *Hub) PID() *actor.PID { return h.pid }

func (h *Hub) receive(ctx actor.Context) {
	env, ok := ctx.Message().(*messages.Envelope)
	if !ok {
		return
	}
	if u := env.GetPresenceUpdate(); u != nil && u.GetState() != nil {
		h.deliver(u.GetState())
	} else if d := env.GetDisconnectUser(); d != nil {
		h.answerDisconnect(ctx, d)
	}
}

// deliver fans one change out to the local sessions watching its user.
func (h *Hub) deliver(st *messages.UserState) {
	h.stats.Pushes.Add(1)
	h.fanOut(st)
}

// fanOut queues st to the local sessions watching its user whose view of
// the user changed (visibility.go). A frame is encoded at most once per
// view, and only if someone is there to get it.
func (h *Hub) fanOut(st *messages.UserState) {
	id := st.GetUserId()
	h.mu.RLock()
	defer h.mu.RUnlock()
	w := h.watches[id]
	if w == nil || len(w.sessions) == 0 {
		return
	}
	prev, fresh := w.advance(st)
	if !fresh {
		h.stats.StaleDropped.Add(int64(len(w.sessions)))
		return
	}
	pushChanged(w, prev, st)
}

// SessionCount returns how many sessions userID has on this node.
func (h *Hub) SessionCount(userID int64) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if e := h.sessions[userID]; e != nil {
		return len(e.sessions)
	}
	return 0
}

// attach registers a new session of its user and tells the user's actor.
func (h *Hub) attach(ctx context.Context, s *session) error {
	user := s.identity()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errDraining
	}
	own := h.sessions[user.UserID]
	if own == nil {
		own = &ownEntry{sessions: make(map[*session]struct{})}
		h.sessions[user.UserID] = own
	}
	if h.maxSessionsPerUser > 0 && len(own.sessions) >= h.maxSessionsPerUser {
		h.mu.Unlock()
		return errTooManySessions
	}
	own.sessions[s] = struct{}{}
	own.owner = h.router.Owner(user.UserID)
	count, seq := len(own.sessions), h.seq.Add(1)
	h.mu.Unlock()
	h.stats.SessionsOpen.Add(1)
	if err := h.sendSessions(ctx, user.UserID, user.Username, count, seq, false); err != nil {
		// The session will be closed: take it back out, and tell the actor
		// the count without it (its answer may have been lost, not the
		// report).
		h.detachOwn(ctx, s)
		return err
	}
	return nil
}

// detach removes a closed session: its subscriptions, and its count.
func (h *Hub) detach(ctx context.Context, s *session) {
	h.unsubscribe(ctx, s, s.subscribedIDs())
	h.detachOwn(ctx, s)
}

// detachOwn removes the session from its user's count and reports the new
// count.
func (h *Hub) detachOwn(ctx context.Context, s *session) {
	user := s.identity()
	h.mu.Lock()
	own := h.sessions[user.UserID]
	if own == nil {
		h.mu.Unlock()
		return
	}
	if _, ok := own.sessions[s]; !ok {
		h.mu.Unlock()
		return
	}
	delete(own.sessions, s)
	if len(own.sessions) == 0 {
		delete(h.sessions, user.UserID)
	}
	count, seq := len(own.sessions), h.seq.Add(1)
	h.mu.Unlock()
	h.stats.SessionsOpen.Add(-1)
	if err := h.sendSessions(ctx, user.UserID, user.Username, count, seq, false); err != nil {
		// Not retried here (the session is gone, its connection with it):
		// the next Resync sends the count again. Left alone, a count of
		// zero that did not arrive would keep the user online for good.
		h.log.Warn("session count not delivered; will retry", slog.Int64("user_id", user.UserID), slog.Any("err", err))
		h.oweCount(user.UserID)
	}
}

// sendSessions tells the actor of uid how many sessions its user holds on
// this node; resend marks a count sent again (to a new owner), which is no
// new connection.
func (h *Hub) sendSessions(ctx context.Context, uid int64, username string, count int, seq uint64, resend bool) error {
	reply, err := h.router.Request(ctx, uid, h.sessionsEnv(uid, username, count, seq, resend))
	return replyErr(reply, err)
}

// sessionsEnv is the Sessions report of uid's count on this node.
func (h *Hub) sessionsEnv(uid int64, username string, count int, seq uint64, resend bool) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Sessions{Sessions: &messages.Sessions{
		UserId: uid, Username: username, Hub: h.hubKey(), Count: int32(count), Seq: seq, Resend: resend,
	}}}
}

// replyErr is the error of a request to a user actor: the transport's, or
// the failure the actor answered with.
func replyErr(reply *messages.Envelope, err error) error {
	if err != nil {
		return err
	}
	if f := reply.GetFailure(); f != nil {
		return errors.New(f.GetDetail())
	}
	return nil
}

func (h *Hub) hubKey() string { return h.pid.Address + "/" + h.pid.Id }

// CloseAll closes every session with code and reason and refuses new ones;
// it is how a draining node sends its clients elsewhere.
func (h *Hub) CloseAll(code int, reason string) {
	h.mu.Lock()
	if !h.closed {
		close(h.stopPinger)
	}
	h.closed = true
	var all []*session
	for _, own := range h.sessions {
		for s := range own.sessions {
			all = append(all, s)
		}
	}
	h.mu.Unlock()
	for _, s := range all {
		s.close(code, reason)
	}
}

// runPinger pings every session once per interval until CloseAll. One
// goroutine for the node instead of a ticker per session: it looks at the
// sessions a few times per interval (at least once a second) and pings
// those whose last ping is an interval old, so pings stay spread over the
// interval by connect time. On the same walk it closes the sessions whose
// token has expired (4001), so expiry needs no timer of its own.
func (h *Hub) runPinger(every time.Duration) {
	tick := min(max(every/8, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var due, expired []*session
	for {
		select {
		case <-h.stopPinger:
			return
		case now := <-t.C:
			due, expired = due[:0], expired[:0]
			h.mu.RLock()
			for _, own := range h.sessions {
				for s := range own.sessions {
					if s.expiredAt(now) {
						expired = append(expired, s)
					} else if s.pingIfDue(now, every) {
						due = append(due, s)
					}
				}
			}
			h.mu.RUnlock()
			for _, s := range due {
				s.ping()
			}
			for _, s := range expired {
				s.close(CloseTokenExpired, wire.CloseTokenExpiredReason)
			}
			clear(due)
			clear(expired)
		}
	}
}
