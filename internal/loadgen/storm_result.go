package loadgen

import (
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// workerStorm is a worker's storm figures in its result.
type workerStorm struct {
	Gone int64 `json:"gone"`
	Back int64 `json:"back"`
	// Sessions are the sessions cut off after the drain began.
	Sessions []stormSession `json:"sessions,omitempty"`
	// Offline are the session users some session saw offline after the
	// drain began, with the first time.
	Offline   []offlineSeen    `json:"offline,omitempty"`
	Down      []int            `json:"down,omitempty"`
	Handshake *stats.Histogram `json:"handshake,omitempty"`
	Refusals  map[string]int64 `json:"refusals,omitempty"`
	// SubscribedAtEnd counts the sessions open and subscribed at the end;
	// their contacts' versions are compared with the current ones.
	SubscribedAtEnd int64             `json:"subscribed_at_end"`
	Compared        int64             `json:"compared"`
	Stale           int64             `json:"stale"`
	Ahead           int64             `json:"ahead"`
	Examples        []VersionMismatch `json:"examples,omitempty"`
	// StaleAtRead is Stale when the current versions arrived; the worker
	// then waits (at most convergeTimeout) for late updates, and
	// ConvergedNS is how long until none was stale (-1: never).
	StaleAtRead int64 `json:"stale_at_read"`
	ConvergedNS int64 `json:"converged_ns"`
}

// convergeTimeout bounds the wait for updates still on their way when the
// current versions were read: later than that they count as lost.
const convergeTimeout = 10 * time.Second

// converge waits until every subscribed session has its contacts'
// current versions, or convergeTimeout; it returns how long that took
// (-1: it did not happen) and the stale count at the start.
func (st *stormState) converge(sess []wsSess) (took time.Duration, atStart int64) {
	begin := time.Now()
	for pass := 0; ; pass++ {
		stale := st.staleNow(sess)
		if pass == 0 {
			atStart = stale
		}
		if stale == 0 {
			return time.Since(begin), atStart
		}
		if time.Since(begin) > st.convergeWait {
			return -1, atStart
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// staleNow counts the (session, contact) versions that differ from the
// current ones, over the sessions open and subscribed.
func (st *stormState) staleNow(sess []wsSess) int64 {
	var probe workerStorm
	for i := range sess {
		if sess[i].ackAt.Load() != 0 && sess[i].closedAt.Load() == 0 {
			st.compare(st.first+i, &probe)
		}
	}
	return probe.Stale
}

// stormSession is one session cut off by the drain: when (unix ns), and
// when it was subscribed again (0: never).
type stormSession struct {
	S    int   `json:"s"`
	Gone int64 `json:"gone"`
	Back int64 `json:"back,omitempty"`
}

// offlineSeen is a user seen offline at At (unix ns).
type offlineSeen struct {
	U  int   `json:"u"`
	At int64 `json:"at"`
}

// VersionMismatch is a session whose newest version of a contact is not
// the contact's current one at the end: an update it never got.
type VersionMismatch struct {
	Session int64  `json:"session_user_id"`
	User    int64  `json:"user_id"`
	Seen    uint64 `json:"seen_version"`
	Current uint64 `json:"current_version"`
}

const maxMismatchExamples = 10

// result collects the storm figures; sess are the worker's sessions.
func (st *stormState) result(sess []wsSess) *workerStorm {
	took, atStart := st.converge(sess)
	out := &workerStorm{StaleAtRead: atStart, ConvergedNS: int64(took), Gone: st.gone.Load(), Back: st.back.Load(), Handshake: st.hs.Snapshot(), Refusals: st.refusals.Snapshot(), Down: st.down}
	for i := range st.goneAt {
		if g := st.goneAt[i].Load(); g != 0 {
			out.Sessions = append(out.Sessions, stormSession{S: st.first + i, Gone: g, Back: st.backAt[i].Load()})
		}
	}
	for u := range st.offlineAt {
		if at := st.offlineAt[u].Load(); at != 0 {
			out.Offline = append(out.Offline, offlineSeen{U: u, At: at})
		}
	}
	for i := range sess {
		if sess[i].ackAt.Load() == 0 || sess[i].closedAt.Load() != 0 {
			continue
		}
		out.SubscribedAtEnd++
		st.compare(st.first+i, out)
	}
	return out
}

// compare checks session s's newest version of each contact against the
// current one: an older one is stale.
func (st *stormState) compare(s int, out *workerStorm) {
	for _, u := range st.topo.contactsOf(s) {
		out.Compared++
		seen, cur := st.latest[st.slot(s, u)].Load(), st.current[u].Load()
		if seen >= cur {
			// A version newer than the one read: the user changed after
			// the read (a user going offline whose session is still
			// away), which says nothing of a lost update.
			if seen > cur {
				out.Ahead++
			}
			continue
		}
		out.Stale++
		if len(out.Examples) < maxMismatchExamples {
			out.Examples = append(out.Examples, VersionMismatch{Session: st.topo.userID(s), User: st.topo.userID(u), Seen: seen, Current: cur})
		}
	}
}
