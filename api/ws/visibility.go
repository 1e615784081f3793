package ws

import (
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// Per-viewer visibility in the fan-out. A user's visibility setting travels
// in every state, so the hub masks what each local session gets: a session
// whose viewer may not see the user's presence gets the user as an offline
// user looks, one refused last_seen gets last_seen null (wire.ViewOf). A
// refused viewer must not tell a hidden user from an offline one by the
// pattern of pushes either, so a session gets a frame only when what it
// sees changes: the hub keeps the last state of each watched user
// (watchEntry.last) and compares what each session saw of it with what it
// sees of the new one (wire.SeenAs). A hidden user going online or busy
// sends nothing to refused viewers; a viewer moved from refused to allowed
// gets the true record, the other way the offline view.

// viewOf is what session s may see of st.
func (s *session) viewOf(st *messages.UserState) wire.View {
	return wire.ViewOf(st, s.user.UserID, s.user.Admin)
}

// viewFrames encodes a change's frame at most once per view, on first
// use, however many sessions share the view.
type viewFrames struct {
	st     *messages.UserState
	now    time.Time
	frames [wire.Views][]byte
}

func (f *viewFrames) frame(v wire.View) []byte {
	if f.frames[v] == nil {
		f.frames[v] = wire.AppendUpdateFrameView(make([]byte, 0, 256), f.st, v, f.now)
	}
	return f.frames[v]
}

// advance makes st the last state of w if it is newer than the last one,
// and returns the state it replaced (nil: none yet). fresh is false for a
// state not newer than the last: every session was given that version or a
// newer one already (or holds it pending), so it is not fanned out again.
// Pushes (the hub's actor), Watch answers and re-watches (subscribing
// goroutines) race here; the compare-and-swap lets the newest win.
func (w *watchEntry) advance(st *messages.UserState) (prev *messages.UserState, fresh bool) {
	for {
		prev = w.last.Load()
		if prev != nil && st.GetVersion() <= prev.GetVersion() {
			return prev, false
		}
		if w.last.CompareAndSwap(prev, st) {
			return prev, true
		}
	}
}

// pushChanged queues st, as each session may see it, to the sessions of w
// whose view of the user changed since prev. Every session gets it when
// prev is nil, or when versions were skipped since prev: the hub missed
// changes (a partition, an owner that died before pushing, a record lost
// and created again), so what its sessions show is not known to be prev's
// view, and the newest state is what lets them catch up, as before
// visibility. The owner pushes every version to every watching hub in
// order, so a gap comes from the cluster, never from what a hidden user
// did: it tells a refused viewer nothing an offline user's record would
// not. The caller holds the hub's read lock.
func pushChanged(w *watchEntry, prev, st *messages.UserState) {
	frames := viewFrames{st: st, now: time.Now()}
	id, v := st.GetUserId(), st.GetVersion()
	if prev != nil && v > prev.GetVersion()+1 {
		prev = nil
	}
	if prev == nil || (prev.GetVisibility() == nil && st.GetVisibility() == nil) {
		// Nobody is masked before or after (the common case): one view
		// for all, and one comparison for all.
		if prev != nil && wire.SeenAs(prev, wire.ViewTrue) == wire.SeenAs(st, wire.ViewTrue) {
			return
		}
		for s := range w.sessions {
			s.push(id, v, frames.frame(s.viewOf(st)))
		}
		return
	}
	var seenBefore, seenNow [wire.Views]wire.Seen
	for k := range wire.Views {
		seenBefore[k], seenNow[k] = wire.SeenAs(prev, k), wire.SeenAs(st, k)
	}
	for s := range w.sessions {
		now := s.viewOf(st)
		if seenBefore[s.viewOf(prev)] == seenNow[now] {
			continue
		}
		s.push(id, v, frames.frame(now))
	}
}
