package actors

import (
	"math"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// record is the actor's working copy of a user's state. It is a plain
// value so that taking a snapshot before a change (to roll back when the
// store refuses the write) is a copy, not a proto clone.
type record struct {
	userID       int64
	username     string
	online       bool
	busy         bool
	busyUntil    int64 // Unix µs, 0 = no expiry
	lastSeen     int64
	createdAt    int64
	updatedAt    int64
	version      uint64
	sessionsHeld bool
	// appearOffline: the user chose to appear offline (is_online: false);
	// cleared whenever the user goes online again. A hub's re-sent session
	// count does not make such a user online.
	appearOffline bool
	// vis is the visibility setting; nil is the default (everyone sees
	// everything). It is never modified in place: a change installs a new
	// one, so states filled from the record may share it.
	vis *messages.Visibility
}

func recordFromProto(s *messages.UserState) record {
	return record{
		userID:        s.GetUserId(),
		username:      s.GetUsername(),
		online:        s.GetIsOnline(),
		busy:          s.GetIsBusy(),
		busyUntil:     s.GetBusyUntil(),
		lastSeen:      s.GetLastSeen(),
		createdAt:     s.GetCreatedAt(),
		updatedAt:     s.GetUpdatedAt(),
		version:       s.GetVersion(),
		sessionsHeld:  s.GetSessionsHeld(),
		appearOffline: s.GetAppearOffline(),
		vis:           normVisibility(s.GetVisibility()),
	}
}

func (r *record) proto() *messages.UserState {
	st := &messages.UserState{}
	r.fill(st)
	return st
}

// fill sets every field of st from r. st must be fresh (zero): a proto
// message is filled field by field, never copied.
func (r *record) fill(st *messages.UserState) {
	st.UserId = r.userID
	st.Username = r.username
	st.IsOnline = r.online
	st.IsBusy = r.busy
	st.BusyUntil = r.busyUntil
	st.LastSeen = r.lastSeen
	st.CreatedAt = r.createdAt
	st.UpdatedAt = r.updatedAt
	st.Version = r.version
	st.SessionsHeld = r.sessionsHeld
	st.AppearOffline = r.appearOffline
	st.Visibility = r.vis
}

// visible reports whether what watchers see differs between r and o. A
// change of the visibility setting counts: it changes what some watchers
// see.
func (r *record) visible(o *record) bool {
	return r.online != o.online || r.busy != o.busy || r.busyUntil != o.busyUntil || r.username != o.username ||
		!sameVisibility(r.vis, o.vis)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// nextVersion is the version of a visible change to a record at version
// prev. A record created with no stored predecessor starts from the
// clock (microseconds since the epoch, now), not from 1: when a record is
// lost and created again (a node of a memory-store cluster crashed, a
// store was wiped), the new versions are above every version a reader of
// the lost record had seen, as long as the lost record did not change
// more than once per microsecond of its life. After that, +1 per change.
// 2^53 microseconds is the year 2255, so versions stay exact in
// JavaScript numbers.
func nextVersion(prev uint64, existed bool, now int64) uint64 {
	if !existed && now > 0 {
		return max(uint64(now), prev+1)
	}
	return prev + 1
}

// noDeadline is a snapshot's freshUntil when no timer of the actor can
// change what a read returns.
const noDeadline = math.MaxInt64

// snapshot is what a user actor publishes for presence reads that do not go
// through its mailbox (GetPresenceBatch, answered by the activator). It is
// never modified after publishing: the actor publishes a new one instead,
// so readers on other goroutines need no lock, and the state can be handed
// out (in a reply, in a push) to readers that only read it.
type snapshot struct {
	// state is the user's record; meaningful only when exists.
	state messages.UserState
	// exists is false for a user the actor knows has no record.
	exists bool
	// freshUntil (Unix µs) is the earliest deadline of the actor's timers
	// (inactivity, disconnect grace, busy expiry): from then on a timer may
	// be about to change the state, so a read goes through the actor's
	// mailbox, behind the timer's message, as it did before snapshots.
	freshUntil int64
}

// newSnapshot makes the snapshot of r (of a user without record unless
// exists).
func newSnapshot(r *record, exists bool, freshUntil int64) *snapshot {
	s := &snapshot{exists: exists, freshUntil: freshUntil}
	r.fill(&s.state)
	return s
}

// current reports whether s shows r, exists and freshUntil.
func (s *snapshot) current(r *record, exists bool, freshUntil int64) bool {
	return s != nil && s.exists == exists && s.freshUntil == freshUntil && recordFromProto(&s.state) == *r
}
