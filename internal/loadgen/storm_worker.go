package loadgen

import (
	"bytes"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// workerStormConfig is a worker's part of the storm: where its sessions
// connect first.
type workerStormConfig struct {
	DrainIndex    int `json:"drain_index"`
	DrainSessions int `json:"drain_sessions"`
}

// stormState is a worker's record of the storm: when each session was cut
// off and back, the newest version each session saw of each contact, and
// which users a session saw offline after the drain began.
type stormState struct {
	topo      Topology
	first     int
	slots     int
	drainAt   atomic.Int64    // unix ns the coordinator started the drain; 0 before
	goneAt    []atomic.Int64  // per local session: first connection end after drainAt
	backAt    []atomic.Int64  // per local session: "subscribed" of the connection held since goneAt; 0 while away
	latest    []atomic.Uint64 // per local session x contact slot: newest version seen
	offlineAt []atomic.Int64  // per session user: first is_online:false seen after drainAt
	gone      atomic.Int64
	back      atomic.Int64
	hs        stats.SyncHist  // handshakes begun after drainAt
	refusals  stats.Counters  // closes and refused handshakes after drainAt
	current   []atomic.Uint64 // per user: current version, from the coordinator's "v" lines
	down      []int           // sessions not subscribed when the drain began
	// convergeWait bounds the wait for late updates at the end.
	convergeWait time.Duration
}

// markDown notes the sessions that were not subscribed when the drain
// began: their users may be offline without that being a flap.
func (st *stormState) markDown(sess []wsSess) {
	for i := range sess {
		if sess[i].ackAt.Load() == 0 || sess[i].closedAt.Load() != 0 {
			st.down = append(st.down, st.first+i)
		}
	}
}

func newStormState(t Topology, first, count int) *stormState {
	st := &stormState{topo: t, first: first, slots: t.Hot + t.Contacts, convergeWait: convergeTimeout}
	st.goneAt = make([]atomic.Int64, count)
	st.backAt = make([]atomic.Int64, count)
	st.latest = make([]atomic.Uint64, count*st.slots)
	st.offlineAt = make([]atomic.Int64, t.Sessions)
	st.current = make([]atomic.Uint64, t.Users)
	return st
}

// after reports whether the drain had begun at unix ns at.
func (st *stormState) after(at int64) bool {
	d := st.drainAt.Load()
	return d != 0 && at >= d
}

// slot is where session s keeps its newest version of contact u; s must
// subscribe to u.
func (st *stormState) slot(s, u int) int {
	i := s - st.first
	if u < st.topo.Hot {
		return i*st.slots + u
	}
	d := ((u-s)%st.topo.Users + st.topo.Users) % st.topo.Users
	return i*st.slots + st.topo.Hot + d - 1
}

// connEnded records that local session i's connection ended at at: its
// first loss after the drain began cuts it off; a later loss undoes its
// comeback.
func (st *stormState) connEnded(i int, at int64) {
	if !st.after(at) {
		return
	}
	if st.goneAt[i].CompareAndSwap(0, at) {
		st.gone.Add(1)
	} else if st.backAt[i].Swap(0) != 0 {
		st.back.Add(-1)
	}
}

// subscribed records that local session i was answered "subscribed" at
// at: once cut off, it is back from the "subscribed" of the connection
// it still holds.
func (st *stormState) subscribed(i int, at int64) {
	if st.goneAt[i].Load() != 0 && st.backAt[i].CompareAndSwap(0, at) {
		st.back.Add(1)
	}
}

// update records a presence_update of user u at version v read by session
// s at at.
func (st *stormState) update(s, u int, v uint64, online bool, at int64) {
	if st.topo.subscribes(s, u) {
		l := &st.latest[st.slot(s, u)]
		for old := l.Load(); v > old && !l.CompareAndSwap(old, v); old = l.Load() {
		}
	}
	if !online && u < len(st.offlineAt) && st.after(at) {
		st.offlineAt[u].CompareAndSwap(0, at)
	}
}

// setCurrent reads a "v <first user> <version> <version> ..." line.
func (st *stormState) setCurrent(f []string) bool {
	first, err := strconv.Atoi(f[1])
	if err != nil || first < 0 || first+len(f)-2 > len(st.current) {
		return false
	}
	for j, s := range f[2:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return false
		}
		st.current[first+j].Store(v)
	}
	return true
}

// stormLine handles the storm's announcements: "d <unix ns>" (the drain
// begins) and "v ..." (current versions); false if line is neither.
func (w *wsWorker) stormLine(line string) bool {
	if w.storm == nil || !(strings.HasPrefix(line, "d ") || strings.HasPrefix(line, "v ")) {
		return false
	}
	f := strings.Fields(line)
	ok := len(f) >= 2
	if ok && f[0] == "d" {
		at, err := strconv.ParseInt(f[1], 10, 64)
		ok = err == nil && len(f) == 2
		if ok {
			w.storm.markDown(w.sess)
			w.storm.drainAt.Store(at)
		}
	} else if ok {
		ok = w.storm.setCurrent(f)
	}
	if !ok {
		w.errs.Add("worker_bad_line", 1)
	}
	return true
}

var keyOffline = []byte(`"is_online":false`)

// isOffline reports whether a presence_update frame says offline.
func isOffline(b []byte) bool { return bytes.Contains(b, keyOffline) }

// stormStep is how far along the URL list session s moves when it leaves
// a node: 1..nodes-1, so sessions cut off together spread over the other
// nodes (as clients given the URLs in different orders do), and never
// come back to the node they left.
func stormStep(s, nodes int) int { return 1 + s%max(nodes-1, 1) }

// reconnectPlan is what a storm session does after a connection ended.
type reconnectPlan struct {
	nextURL bool
	delay   time.Duration
	attempt int
}

// clientReconnect is the Go client's default reconnect configuration: the
// storm reconnects as the clients do, and keeps doing so if it changes.
var clientReconnect = client.DefaultConfig().Subscriber

// planStormReconnect follows the clients' reconnect rules: 1012 at once
// (jittered) to the next node; a handshake that failed to the next node
// after a backoff; 1013, 1008 and any other loss after a backoff to the
// same node. The backoff doubles with each failed attempt from 500 ms to
// 30 s, jittered to between half of it and all of it. rnd returns a
// random duration in [0, n).
func planStormReconnect(out connOutcome, attempt int, rnd func(time.Duration) time.Duration) reconnectPlan {
	if out.subscribed {
		attempt = 0
	}
	switch {
	case out.dialed && out.code == 1012:
		return reconnectPlan{nextURL: true, delay: rnd(clientReconnect.RestartJitter), attempt: attempt}
	case !out.dialed:
		return reconnectPlan{nextURL: true, delay: clientReconnect.Backoff(attempt, rnd), attempt: attempt + 1}
	default:
		return reconnectPlan{delay: clientReconnect.Backoff(attempt, rnd), attempt: attempt + 1}
	}
}
