package ws

import (
	"context"
	"testing"
	"time"
)

// A drain moves a third of the users to new owners; every hub must tell
// them its session counts before the disconnect grace runs out, or the
// users go offline with their sessions open. Counts go out like
// re-watches, all at once, not one round trip each.
func TestResyncSendsMovedUsersCountsAtOnce(t *testing.T) {
	const users = 60
	e := newTestEnv(t)
	for uid := int64(1); uid <= users; uid++ {
		e.router.set(func(r *fakeRouter) { r.owners[uid] = "a" })
		e.open(t, uid)
	}
	// The owner moves; the new one has no count (its activation starts
	// the grace) and answers slowly, as under a storm.
	e.router.set(func(r *fakeRouter) {
		for uid := int64(1); uid <= users; uid++ {
			r.owners[uid], r.sessions[uid] = "b", 0
		}
		r.roundTrip = 100 * time.Millisecond
	})
	// One round trip each would take 6 s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if failed := e.hub.Resync(ctx); failed {
		t.Error("Resync reported failures")
	}
	for uid := int64(1); uid <= users; uid++ {
		if got := e.router.sessionCount(uid); got != 1 {
			t.Fatalf("the new owner holds %d sessions of user %d, want 1", got, uid)
		}
	}
}

// A session count the owner did not take when a session closed is sent
// again by the next Resync: a lost zero would keep the user online with no
// session anywhere.
func TestUndeliveredCloseCountResentByResync(t *testing.T) {
	e := newTestEnv(t)
	s, _ := e.open(t, 7)
	if got := e.router.sessionCount(7); got != 1 {
		t.Fatalf("owner holds %d sessions, want 1", got)
	}
	e.router.set(func(r *fakeRouter) { r.failSessions = 1 })
	e.hub.detach(context.Background(), s)
	if got := e.router.sessionCount(7); got != 1 {
		t.Fatalf("owner holds %d sessions after the failed report, want still 1", got)
	}
	if failed := e.hub.Resync(context.Background()); failed {
		t.Error("Resync reported failures")
	}
	if got := e.router.sessionCount(7); got != 0 {
		t.Fatalf("owner holds %d sessions after Resync, want 0", got)
	}
	// Delivered: nothing is owed any more.
	e.router.set(func(r *fakeRouter) { r.sessions[7] = 5 })
	e.hub.Resync(context.Background())
	if got := e.router.sessionCount(7); got != 5 {
		t.Fatalf("a second Resync sent the count again (owner holds %d)", got)
	}
	if n := e.hub.SessionCount(7); n != 0 {
		t.Fatalf("hub counts %d sessions of user 7, want 0", n)
	}
}

// A session count that failed while the session stays open (a count the
// owner missed, say during a move) is sent again too.
func TestUndeliveredOpenCountResentByResync(t *testing.T) {
	e := newTestEnv(t)
	e.open(t, 8)
	s2, _ := e.open(t, 8)
	e.router.set(func(r *fakeRouter) { r.failSessions = 1 })
	e.hub.detach(context.Background(), s2) // 2 -> 1, not taken
	if got := e.router.sessionCount(8); got != 2 {
		t.Fatalf("owner holds %d, want the stale 2", got)
	}
	e.hub.Resync(context.Background())
	if got := e.router.sessionCount(8); got != 1 {
		t.Fatalf("owner holds %d sessions after Resync, want 1", got)
	}
}
