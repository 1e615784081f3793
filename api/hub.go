package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// HubName is the well-known actor name of a node's hub; user actors push
// their changes to it.
const HubName = "presence-hub"

// errTooManySessions refuses a session beyond the per-user cap.
var errTooManySessions = errors.New("too many sessions for this user")

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

	// handlers counts session handlers still running.
	handlers atomic.Int64

	// resetConn, when set, makes the close of a client connection a reset.
	resetConn func(remote net.Addr)
}

// HubStats counts hub events for metrics; read with the atomic loads.
type HubStats struct {
	SessionsOpen     atomic.Int64
	Pushes           atomic.Int64
	FramesQueued     atomic.Int64
	SlowDisconnects  atomic.Int64
	StaleDropped     atomic.Int64
	WatchesPerformed atomic.Int64
}

// watchEntry is one watched user: the local sessions watching it, and the
// member that owned the user when the hub last told it about the watch.
type watchEntry struct {
	sessions map[*session]struct{}
	owner    string
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
	pid, err := system.Root.SpawnNamed(actor.PropsFromFunc(h.receive), HubName)
	if err != nil {
		return nil, err
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
	}
}

// deliver fans one change out to the local sessions watching its user.
// The frame is encoded once, and only if someone is there to get it.
func (h *Hub) deliver(st *messages.UserState) {
	h.stats.Pushes.Add(1)
	h.fanOut(st)
}

// fanOut queues st to every local session watching its user.
func (h *Hub) fanOut(st *messages.UserState) {
	id := st.GetUserId()
	h.mu.RLock()
	defer h.mu.RUnlock()
	w := h.watches[id]
	if w == nil || len(w.sessions) == 0 {
		return
	}
	frame := AppendUpdateFrame(make([]byte, 0, 256), st, time.Now())
	v := st.GetVersion()
	for s := range w.sessions {
		s.push(id, v, frame)
	}
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
	uid := s.user.UserID
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errDraining
	}
	own := h.sessions[uid]
	if own == nil {
		own = &ownEntry{sessions: make(map[*session]struct{})}
		h.sessions[uid] = own
	}
	if h.maxSessionsPerUser > 0 && len(own.sessions) >= h.maxSessionsPerUser {
		h.mu.Unlock()
		return errTooManySessions
	}
	own.sessions[s] = struct{}{}
	own.owner = h.router.Owner(uid)
	count, seq := len(own.sessions), h.seq.Add(1)
	h.mu.Unlock()
	h.stats.SessionsOpen.Add(1)
	if err := h.reportSessions(ctx, s, count, seq); err != nil {
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
	uid := s.user.UserID
	h.mu.Lock()
	own := h.sessions[uid]
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
		delete(h.sessions, uid)
	}
	count, seq := len(own.sessions), h.seq.Add(1)
	h.mu.Unlock()
	h.stats.SessionsOpen.Add(-1)
	if err := h.reportSessions(ctx, s, count, seq); err != nil {
		h.log.Warn("session count not delivered", slog.Int64("user_id", uid), slog.Any("err", err))
	}
}

func (h *Hub) reportSessions(ctx context.Context, s *session, count int, seq uint64) error {
	return h.sendSessions(ctx, s.user.UserID, s.user.Username, count, seq)
}

func (h *Hub) sendSessions(ctx context.Context, uid int64, username string, count int, seq uint64) error {
	reply, err := h.router.Request(ctx, uid, &messages.Envelope{Body: &messages.Envelope_Sessions{Sessions: &messages.Sessions{
		UserId: uid, Username: username, Hub: h.hubKey(), Count: int32(count), Seq: seq,
	}}})
	if err != nil {
		return err
	}
	if f := reply.GetFailure(); f != nil {
		return errors.New(f.GetDetail())
	}
	return nil
}

func (h *Hub) hubKey() string { return h.pid.Address + "/" + h.pid.Id }

// subscribe adds ids to the session's subscriptions and returns the
// current state of each (nil for unknown users), in order. The first local
// subscriber of a user makes the hub watch it; later ones only read it.
func (h *Hub) subscribe(ctx context.Context, s *session, ids []int64) ([]*messages.UserState, error) {
	// Users this hub starts watching get a Watch (answered with their
	// state); users it watches already are only read, which the owners
	// answer from their actors' snapshots, one message per node.
	var watches []*messages.Envelope
	var watchAt, readAt []int
	var reads []int64
	h.mu.Lock()
	for i, id := range ids {
		w := h.watches[id]
		if w == nil {
			w = &watchEntry{sessions: make(map[*session]struct{}), owner: h.router.Owner(id)}
			h.watches[id] = w
			watches = append(watches, h.watchEnv(id))
			watchAt = append(watchAt, i)
			h.stats.WatchesPerformed.Add(1)
		} else {
			reads = append(reads, id)
			readAt = append(readAt, i)
		}
		w.sessions[s] = struct{}{}
	}
	h.mu.Unlock()

	states := make([]*messages.UserState, len(ids))
	var firstErr error
	if len(watches) > 0 {
		replies, errs := h.router.RequestAll(ctx, watches)
		for k, reply := range replies {
			// A Watch that did not take (a timeout, the store down) is
			// sent again by the next Resync, like a failed re-watch;
			// otherwise the node would never hear of the user's changes.
			if errs[k] != nil {
				firstErr = errs[k]
				h.forgetOwner(ids[watchAt[k]])
				continue
			}
			if f := reply.GetFailure(); f != nil {
				firstErr = errors.New(f.GetDetail())
				h.forgetOwner(ids[watchAt[k]])
				continue
			}
			st := reply.GetStateReply().GetState()
			states[watchAt[k]] = st
			if st != nil {
				// Sessions that subscribed while this Watch was on its
				// way read the user's snapshot, which may predate a
				// change the actor made before it took the Watch (and
				// so pushed to nobody here): give them the state the
				// Watch established. Versions drop what they have.
				h.fanOut(st)
			}
		}
	}
	if len(reads) > 0 {
		got, err := h.router.ReadPresence(ctx, reads)
		if err != nil {
			firstErr = err
		}
		for k, st := range got {
			states[readAt[k]] = st
		}
	}
	return states, firstErr
}

// unsubscribe removes ids from the session; the last local subscriber of a
// user makes the hub stop watching it.
func (h *Hub) unsubscribe(ctx context.Context, s *session, ids []int64) {
	var envs []*messages.Envelope
	h.mu.Lock()
	for _, id := range ids {
		w := h.watches[id]
		if w == nil {
			continue
		}
		if _, ok := w.sessions[s]; !ok {
			continue
		}
		delete(w.sessions, s)
		if len(w.sessions) == 0 {
			delete(h.watches, id)
			envs = append(envs, &messages.Envelope{Body: &messages.Envelope_Unwatch{Unwatch: &messages.Unwatch{
				UserId: id, HubAddress: h.pid.Address, HubId: h.pid.Id, Seq: h.seq.Add(1),
			}}})
		}
	}
	h.mu.Unlock()
	if len(envs) > 0 {
		_, errs := h.router.RequestAll(ctx, envs)
		for _, err := range errs {
			if err != nil {
				h.log.Warn("unwatch not delivered", slog.Any("err", err))
				break
			}
		}
	}
}

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
// sessions a few times per interval and pings those whose last ping is an
// interval old, so pings stay spread over the interval by connect time.
func (h *Hub) runPinger(every time.Duration) {
	tick := min(max(every/8, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []*session
	for {
		select {
		case <-h.stopPinger:
			return
		case now := <-t.C:
			due = due[:0]
			h.mu.RLock()
			for _, own := range h.sessions {
				for s := range own.sessions {
					if s.lastPing.IsZero() {
						s.lastPing = now // first seen: its first ping is an interval away
					} else if now.Sub(s.lastPing) >= every {
						s.lastPing = now
						due = append(due, s)
					}
				}
			}
			h.mu.RUnlock()
			for _, s := range due {
				s.ping()
			}
			clear(due)
		}
	}
}

// Wait blocks until every session handler has finished (detached, told
// the actors, released its connection) or ctx ends.
func (h *Hub) Wait(ctx context.Context) error {
	for h.handlers.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (h *Hub) watchEnv(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Watch{Watch: &messages.Watch{
		UserId: id, HubAddress: h.pid.Address, HubId: h.pid.Id, Seq: h.seq.Add(1),
	}}}
}

// Resync re-subscribes, after a membership change, every watched user whose
// owner changed (the new owner's actor knows nothing of this hub) and
// delivers the fresh state it answers with, so subscribers end with the
// true state even if the old owner died before pushing it. It also re-sends
// the session counts of local users whose owner changed.
func (h *Hub) Resync(ctx context.Context) {
	type sessCount struct {
		uid      int64
		username string
		count    int
		seq      uint64
	}
	var watchEnvs []*messages.Envelope
	var counts []sessCount
	h.mu.Lock()
	for id, w := range h.watches {
		if owner := h.router.Owner(id); owner != w.owner {
			w.owner = owner
			watchEnvs = append(watchEnvs, h.watchEnv(id))
		}
	}
	for uid, own := range h.sessions {
		if owner := h.router.Owner(uid); owner != own.owner && len(own.sessions) > 0 {
			own.owner = owner
			var name string
			for s := range own.sessions {
				name = s.user.Username
				break
			}
			counts = append(counts, sessCount{uid: uid, username: name, count: len(own.sessions), seq: h.seq.Add(1)})
		}
	}
	h.mu.Unlock()
	if len(watchEnvs) == 0 && len(counts) == 0 {
		return
	}
	h.log.Info("hub re-subscribing after membership change", slog.Int("watches", len(watchEnvs)), slog.Int("session_users", len(counts)))
	for _, c := range counts {
		if err := h.sendSessions(ctx, c.uid, c.username, c.count, c.seq); err != nil {
			h.log.Warn("session count not re-sent; will retry", slog.Int64("user_id", c.uid), slog.Any("err", err))
			h.mu.Lock()
			if own := h.sessions[c.uid]; own != nil {
				own.owner = ownerUnknown
			}
			h.mu.Unlock()
		}
	}
	const batch = 256
	for start := 0; start < len(watchEnvs); start += batch {
		part := watchEnvs[start:min(start+batch, len(watchEnvs))]
		replies, errs := h.router.RequestAll(ctx, part)
		for i, reply := range replies {
			if errs[i] != nil {
				h.log.Warn("re-watch failed; will retry", slog.Any("err", errs[i]))
				h.forgetOwner(part[i].GetWatch().GetUserId())
				continue
			}
			if st := reply.GetStateReply().GetState(); st != nil {
				h.deliver(st)
			}
		}
	}
}

// forgetOwner makes the next Resync subscribe userID again.
func (h *Hub) forgetOwner(userID int64) {
	h.mu.Lock()
	if w := h.watches[userID]; w != nil {
		w.owner = ownerUnknown
	}
	h.mu.Unlock()
}
