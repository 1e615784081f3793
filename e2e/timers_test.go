package e2e

import (
	"testing"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/node"
)

// timerSlack is how late a timer may act, on a loaded 2-core machine under
// the race detector.
const timerSlack = time.Second

// TestOfflineAfterInactivity: heartbeats keep a user online past
// OfflineAfter; once they stop, the actor's own timer makes it offline,
// OfflineAfter after the last one, with no request arriving. GETs (the
// watcher's presence, the user's own status) are not signs of life.
func TestOfflineAfterInactivity(t *testing.T) {
	const offlineAfter = 300 * time.Millisecond
	n := startNode(t, node.Config{Actors: actors.Config{OfflineAfter: offlineAfter}})
	u := n.user(t, 1, "u")
	w := n.user(t, 2, "watcher")

	u.heartbeat()
	v0 := u.getStatus().Version
	start := time.Now()
	for time.Since(start) < 2*offlineAfter {
		time.Sleep(offlineAfter / 6)
		u.heartbeat()
		if p := w.presence(1); !p.IsOnline {
			t.Fatalf("offline %v after the first heartbeat although heartbeats keep coming: %+v", time.Since(start), p)
		}
	}
	last := u.getStatus() // not a sign of life: last_seen is the last heartbeat's
	if !last.IsOnline || last.Version != v0 {
		t.Fatalf("while heartbeating: %+v, want online at version %d", last, v0)
	}

	var off Presence
	eventually(t, offlineAfter+timerSlack+time.Second, func() bool {
		// The user polls its own status too: reading is not activity.
		_ = u.getStatus()
		off = w.presence(1)
		return !off.IsOnline
	}, "user offline by itself")

	st := u.getStatus()
	if st.IsOnline || st.Version != v0+1 {
		t.Fatalf("after inactivity: %+v, want offline at version %d", st, v0+1)
	}
	if !st.LastSeen.Equal(*last.LastSeen) {
		t.Errorf("going offline moved last_seen from %s to %s", fmtTime(last.LastSeen), fmtTime(st.LastSeen))
	}
	// It went offline by its timer: OfflineAfter after the last heartbeat,
	// not earlier, and not much later.
	lag := st.UpdatedAt.Sub(*last.LastSeen)
	if lag < offlineAfter || lag > offlineAfter+timerSlack {
		t.Errorf("went offline %v after the last heartbeat, want %v (+%v at most)", lag, offlineAfter, timerSlack)
	}
	if off.Version != v0+1 {
		t.Errorf("watcher saw version %d, want %d", off.Version, v0+1)
	}

	// The next heartbeat brings it back, and the timer runs again.
	u.heartbeat()
	if p := w.presence(1); !p.IsOnline || p.Version != v0+2 {
		t.Fatalf("after a new heartbeat: %+v, want online at version %d", p, v0+2)
	}
	eventually(t, offlineAfter+timerSlack+time.Second, func() bool { return !w.presence(1).IsOnline }, "offline again")
	if p := w.presence(1); p.Version != v0+3 {
		t.Fatalf("second offline: %+v, want version %d", p, v0+3)
	}
}

// TestOnlineByPutExpires: is_online true by PUT is a sign of life like a
// heartbeat, and expires the same way; is_online false stops the timer.
func TestOnlineByPutExpires(t *testing.T) {
	const offlineAfter = 300 * time.Millisecond
	n := startNode(t, node.Config{Actors: actors.Config{OfflineAfter: offlineAfter}})
	u := n.user(t, 1, "u")
	w := n.user(t, 2, "w")

	st := u.putStatus(`{"is_online": true}`)
	eventually(t, offlineAfter+timerSlack+time.Second, func() bool { return !w.presence(1).IsOnline }, "offline after PUT is_online true")
	if p := w.presence(1); p.Version != st.Version+1 {
		t.Fatalf("%+v, want version %d", p, st.Version+1)
	}

	// A PUT that does not name is_online is still a sign of life: it moves
	// the deadline of an online user.
	u.heartbeat()
	hb := u.getStatus()
	time.Sleep(offlineAfter / 2)
	put := u.putStatus(`{"is_busy": true}`)
	eventually(t, offlineAfter+timerSlack+time.Second, func() bool { return !w.presence(1).IsOnline }, "offline after the PUT")
	final := u.getStatus()
	if lag := final.UpdatedAt.Sub(*put.LastSeen); lag < offlineAfter {
		t.Fatalf("went offline %v after the PUT (%v after the heartbeat before it); the PUT did not count as activity",
			lag, final.UpdatedAt.Sub(*hb.LastSeen))
	}
	if final.Version != put.Version+1 || !final.IsBusy {
		t.Fatalf("final %+v, want busy at version %d", final, put.Version+1)
	}
}

// TestBusyUntilExpires: busy with busy_until clears by itself at that time
// (is_busy false, busy_until null, one version), with no request arriving
// and never early.
func TestBusyUntilExpires(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 1, "u")
	w := n.user(t, 2, "w")
	u.heartbeat()

	until := micro(time.Now().Add(400 * time.Millisecond))
	st := u.putStatus(`{"is_busy": true, "busy_until": "` + rfc3339(until) + `"}`)
	if !st.IsBusy || !sameTime(st.BusyUntil, until) {
		t.Fatalf("PUT answer %+v, want busy until %s", st, rfc3339(until))
	}
	eventually(t, time.Until(until)+timerSlack+time.Second, func() bool {
		p := w.presence(1)
		if !p.IsBusy && time.Now().Before(until) {
			t.Fatalf("busy cleared before busy_until %s: %+v", rfc3339(until), p)
		}
		return !p.IsBusy
	}, "busy cleared by itself")

	p := w.presence(1)
	if p.IsBusy || p.BusyUntil != nil || p.Version != st.Version+1 || !p.IsOnline {
		t.Fatalf("after expiry: %+v, want online, not busy, busy_until null, version %d", p, st.Version+1)
	}
	after := u.getStatus()
	if lag := after.UpdatedAt.Sub(until); lag < 0 || lag > timerSlack {
		t.Errorf("cleared at %s, %v after busy_until", fmtTime(after.UpdatedAt), lag)
	}
	if !after.LastSeen.Equal(*st.LastSeen) {
		t.Errorf("expiry moved last_seen %s -> %s", fmtTime(st.LastSeen), fmtTime(after.LastSeen))
	}
}

// TestBusyTimerFollowsChanges: moving busy_until later re-arms the timer,
// busy_until null and is_busy false disarm it. A second user whose expiry
// is later than the first's old one serves as a fence, so no test waits
// a fixed time.
func TestBusyTimerFollowsChanges(t *testing.T) {
	n := startNode(t, node.Config{})
	w := n.user(t, 9, "w")
	moved := n.user(t, 1, "moved")
	nulled := n.user(t, 2, "nulled")
	freed := n.user(t, 3, "freed")
	fence := n.user(t, 4, "fence")

	now := time.Now()
	early := rfc3339(now.Add(250 * time.Millisecond))
	for _, c := range []*client{moved, nulled, freed} {
		c.putStatus(`{"busy_until": "` + early + `"}`)
	}
	later := micro(now.Add(900 * time.Millisecond))
	m := moved.putStatus(`{"busy_until": "` + rfc3339(later) + `"}`)
	nl := nulled.putStatus(`{"busy_until": null}`)
	fr := freed.putStatus(`{"is_busy": false}`)
	if !nl.IsBusy || nl.BusyUntil != nil || fr.IsBusy || fr.BusyUntil != nil {
		t.Fatalf("after the changes: nulled %+v, freed %+v", nl, fr)
	}
	fenceAt := micro(now.Add(600 * time.Millisecond))
	fence.putStatus(`{"busy_until": "` + rfc3339(fenceAt) + `"}`)

	eventually(t, time.Until(fenceAt)+timerSlack+time.Second, func() bool { return !w.presence(4).IsBusy }, "fence cleared")
	// The old deadline has long passed; none of the three moved.
	if p := w.presence(1); !p.IsBusy || !sameTime(p.BusyUntil, later) || p.Version != m.Version {
		t.Fatalf("moved user after its old deadline: %+v, want busy until %s at version %d", p, rfc3339(later), m.Version)
	}
	if p := w.presence(2); !p.IsBusy || p.BusyUntil != nil || p.Version != nl.Version {
		t.Fatalf("user with busy_until null after the old deadline: %+v, want still busy at version %d", p, nl.Version)
	}
	if p := w.presence(3); p.IsBusy || p.Version != fr.Version {
		t.Fatalf("freed user: %+v, want version %d", p, fr.Version)
	}
	eventually(t, time.Until(later)+timerSlack+time.Second, func() bool { return !w.presence(1).IsBusy }, "moved deadline cleared")
	if st := moved.getStatus(); st.UpdatedAt.Before(later) || st.Version != m.Version+1 {
		t.Fatalf("moved user cleared at %s (deadline %s), version %d want %d", fmtTime(st.UpdatedAt), rfc3339(later), st.Version, m.Version+1)
	}
}
