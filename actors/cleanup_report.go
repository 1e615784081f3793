package actors

import (
	"slices"
	"sync"

	"github.com/presence-cluster/presence/messages"
)

// CleanupReportLimit is the most users a cleanup report lists, on one node
// and across the cluster; the ones with the lowest ids are kept.
const CleanupReportLimit = 1000

// cleanupReply is a user actor's answer to a Recheck: its report entry
// (nil: nothing changed or due) and the counts it makes.
func cleanupReply(u *messages.CleanupUser) *messages.Envelope {
	count := &messages.CleanupCount{}
	if u != nil {
		count.UsersMarkedOffline = b2i(u.GetMarkOffline())
		count.BusyStatusCleared = b2i(u.GetClearBusy())
		count.Users = []*messages.CleanupUser{u}
	}
	return &messages.Envelope{Body: &messages.Envelope_CleanupCount{CleanupCount: count}}
}

// mergeCleanupUser combines what the activation settled with what a
// recheck applied (or would apply); either may be nil. The times are the
// earlier judgement's: the activation's, when it changed something.
func mergeCleanupUser(settled, now *messages.CleanupUser) *messages.CleanupUser {
	switch {
	case settled == nil:
		return now
	case now == nil:
		return settled
	}
	return &messages.CleanupUser{
		UserId:      settled.GetUserId(),
		MarkOffline: settled.GetMarkOffline() || now.GetMarkOffline(),
		ClearBusy:   settled.GetClearBusy() || now.GetClearBusy(),
		LastSeen:    settled.GetLastSeen(),
		BusyUntil:   settled.GetBusyUntil(),
	}
}

// storedDue is what activating the stored record st at now would settle,
// as a report entry (nil: nothing): a dry-run cleanup judges the records
// no actor holds with it instead of activating them. It follows activate:
// a record whose sessions held it online gets the disconnect grace from
// now, so it does not go offline at once; pending is the write-behind
// last_seen not stored yet (0: none).
func storedDue(cfg *Config, st *messages.UserState, pending, now int64) *messages.CleanupUser {
	lastSeen := max(st.GetLastSeen(), pending)
	deadline := lastSeen + cfg.OfflineAfter.Microseconds()
	if st.GetSessionsHeld() {
		deadline = now + cfg.DisconnectGrace.Microseconds()
	}
	off := st.GetIsOnline() && now >= deadline
	busy := st.GetIsBusy() && st.GetBusyUntil() != 0 && now >= st.GetBusyUntil()
	if !off && !busy {
		return nil
	}
	return &messages.CleanupUser{UserId: st.GetUserId(), MarkOffline: off, ClearBusy: busy, LastSeen: lastSeen, BusyUntil: st.GetBusyUntil()}
}

// cleanupReport sums the answers of a cleanup's rechecks. It is safe for
// concurrent use and keeps at most 2*CleanupReportLimit entries at any
// time, so a cleanup that changes millions of users stays small.
type cleanupReport struct {
	mu        sync.Mutex
	offline   int64
	busy      int64
	users     []*messages.CleanupUser
	truncated bool
}

// add adds one answer (a user's, or a whole node's).
func (r *cleanupReport) add(c *messages.CleanupCount) {
	if c == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offline += c.GetUsersMarkedOffline()
	r.busy += c.GetBusyStatusCleared()
	r.truncated = r.truncated || c.GetTruncated()
	r.users = append(r.users, c.GetUsers()...)
	if len(r.users) > 2*CleanupReportLimit {
		r.trim()
	}
}

// trim sorts the entries by user id and keeps the first CleanupReportLimit.
func (r *cleanupReport) trim() {
	slices.SortFunc(r.users, func(a, b *messages.CleanupUser) int {
		switch {
		case a.GetUserId() < b.GetUserId():
			return -1
		case a.GetUserId() > b.GetUserId():
			return 1
		}
		return 0
	})
	if len(r.users) > CleanupReportLimit {
		clear(r.users[CleanupReportLimit:])
		r.users = r.users[:CleanupReportLimit]
		r.truncated = true
	}
}

// count returns the summed counts with the entries sorted by user id and
// truncated to CleanupReportLimit.
func (r *cleanupReport) count() *messages.CleanupCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trim()
	return &messages.CleanupCount{UsersMarkedOffline: r.offline, BusyStatusCleared: r.busy, Users: r.users, Truncated: r.truncated}
}

// MergeCleanupCounts sums the cleanup reports of several nodes into one:
// counts added, entries sorted by user id and truncated to
// CleanupReportLimit. A report whose counts name more users than it lists
// without saying it was truncated (a node too old to list them) makes the
// merged report truncated.
func MergeCleanupCounts(counts []*messages.CleanupCount) *messages.CleanupCount {
	var r cleanupReport
	for _, c := range counts {
		if !c.GetTruncated() && c.GetUsersMarkedOffline()+c.GetBusyStatusCleared() > 0 && len(c.GetUsers()) == 0 {
			r.truncated = true
		}
		r.add(c)
	}
	return r.count()
}

// isActive reports whether a user actor of id is running and forwarded to.
func (x *activator) isActive(id int64) bool {
	_, ok := x.children.own(id)
	return ok
}
