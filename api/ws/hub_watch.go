package ws

import (
	"context"
	"errors"
	"log/slog"

	"github.com/presence-cluster/presence/messages"
)

// subscribe adds ids to the session's subscriptions in the hub and returns
// the current state of each (nil for unknown users), in order. The first
// local subscriber of a user makes the hub watch it; later ones only read
// it.
func (h *Hub) subscribe(ctx context.Context, s *session, ids []int64) ([]*messages.UserState, error) {
	states, _, err := h.subscribeAll(ctx, s, ids)
	return states, err
}

// subscribeAll is subscribe that also returns the positions of ids whose
// state could not be had (a failed watch or read, with no state of the
// user in the hub either): their snapshot is still owed to s.
func (h *Hub) subscribeAll(ctx context.Context, s *session, ids []int64) (states []*messages.UserState, missing []int, err error) {
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

	states = make([]*messages.UserState, len(ids))
	if len(watches) > 0 {
		failed, werr := h.watch(ctx, ids, watches, watchAt, states)
		if werr != nil {
			err = werr
		}
		missing = append(missing, failed...)
	}
	if len(reads) > 0 {
		got, rerr := h.router.ReadPresence(ctx, reads)
		for k, st := range got {
			states[readAt[k]] = st
		}
		if rerr != nil {
			err = rerr
			missing = append(missing, h.fillFromLast(ids, readAt, states)...)
		}
	}
	return states, missing, err
}

// fillFromLast fills the positions at of states that a failed read left
// empty with the newest state the hub was pushed of their user (its watch
// is in place, so that is current but for a change on its way, which the
// session gets next); it returns the positions it could not fill.
func (h *Hub) fillFromLast(ids []int64, at []int, states []*messages.UserState) (missing []int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, i := range at {
		if states[i] != nil {
			continue
		}
		if w := h.watches[ids[i]]; w != nil {
			if last := w.last.Load(); last != nil {
				states[i] = last
				h.stats.SnapshotFallbacks.Add(1)
				continue
			}
		}
		missing = append(missing, i)
	}
	return missing
}

// watch sends the Watch envelopes of a subscribe (for ids[watchAt[k]]) and
// stores the states they answer with in states; it returns the positions
// of ids whose Watch failed, and the last error.
func (h *Hub) watch(ctx context.Context, ids []int64, watches []*messages.Envelope, watchAt []int, states []*messages.UserState) (failed []int, lastErr error) {
	replies, errs := h.router.RequestAll(ctx, watches)
	for k, reply := range replies {
		// A Watch that did not take (a timeout, the store down) is sent
		// again by the next Resync, like a failed re-watch; otherwise the
		// node would never hear of the user's changes.
		if errs[k] != nil {
			lastErr = errs[k]
			h.forgetOwner(ids[watchAt[k]])
			failed = append(failed, watchAt[k])
			continue
		}
		if f := reply.GetFailure(); f != nil {
			lastErr = errors.New(f.GetDetail())
			h.forgetOwner(ids[watchAt[k]])
			failed = append(failed, watchAt[k])
			continue
		}
		st := reply.GetStateReply().GetState()
		states[watchAt[k]] = st
		if st != nil {
			// Sessions that subscribed while this Watch was on its way
			// read the user's snapshot, which may predate a change the
			// actor made before it took the Watch (and so pushed to
			// nobody here): give them the state the Watch established.
			// Versions drop what they have.
			h.fanOut(st)
		}
	}
	return failed, lastErr
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
	if len(envs) == 0 {
		return
	}
	_, errs := h.router.RequestAll(ctx, envs)
	for _, err := range errs {
		if err != nil {
			h.log.Warn("unwatch not delivered", slog.Any("err", err))
			break
		}
	}
}

func (h *Hub) watchEnv(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Watch{Watch: &messages.Watch{
		UserId: id, HubAddress: h.pid.Address, HubId: h.pid.Id, Seq: h.seq.Add(1),
	}}}
}

// forgetOwner makes the next Resync subscribe userID again.
func (h *Hub) forgetOwner(userID int64) {
	h.mu.Lock()
	if w := h.watches[userID]; w != nil {
		w.owner = ownerUnknown
	}
	h.mu.Unlock()
}
