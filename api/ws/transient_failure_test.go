package ws

import (
	"testing"
	"time"
)

// A session subscribing to a user the hub watches already, while reading
// that user fails (its owner busy, as in a reconnect storm), gets the
// newest state the hub was pushed instead of no snapshot at all.
func TestSubscribeSnapshotFromHubWhenReadFails(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[42] = state(42, 3) })
	s1, c1 := e.open(t, 1)
	e.srv.subscribe(s1, []int64{42}, true)
	expectSubscribed(t, c1, map[int64]uint64{42: 3}, 42)
	st := state(42, 4)
	st.IsBusy = true
	e.hub.deliver(st)
	expectUpdate(t, c1, 42, 4)

	e.router.set(func(r *fakeRouter) { r.failReads = true })
	s2, c2 := e.open(t, 2)
	e.srv.subscribe(s2, []int64{42}, true)
	expectSubscribed(t, c2, map[int64]uint64{42: 4}, 42)
	if n := e.hub.Stats().SnapshotFallbacks.Load(); n != 1 {
		t.Fatalf("SnapshotFallbacks = %d, want 1", n)
	}
}

// A session subscribing while neither a watch nor a read of the user
// works gets its snapshot once reading works again, without any change
// of the user to carry it.
func TestSubscribeSnapshotOwedIsReadAgain(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) {
		r.states[42] = state(42, 7)
		r.failWatch[42] = true
	})
	s1, c1 := e.open(t, 1)
	e.srv.subscribe(s1, []int64{42}, true)
	expectSubscribed(t, c1, map[int64]uint64{}, 42)
	c1.none(t)
	e.router.set(func(r *fakeRouter) { r.failWatch[42] = false })
	// The watch is placed again by the next Resync; the snapshot owed to
	// the session comes from its own read, whichever is first.
	expectUpdate(t, c1, 42, 7)
	if n := e.hub.Stats().SnapshotRetries.Load(); n < 1 {
		t.Fatalf("SnapshotRetries = %d, want at least 1", n)
	}
}

// An attach that fails for a moment (the owner busy) is tried again on
// the open connection instead of closing it with 1013.
func TestAttachRetriedOnTheOpenConnection(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.failSessions = 2 })
	start := time.Now()
	s, c := e.open(t, 5) // fails the test if the attach is refused
	if n := e.hub.Stats().AttachRetries.Load(); n < 1 {
		t.Fatalf("AttachRetries = %d, want at least 1", n)
	}
	if got := e.router.sessionCount(5); got != 1 {
		t.Fatalf("the owner holds %d sessions of user 5, want 1", got)
	}
	t.Logf("attached after %v", time.Since(start).Round(time.Millisecond))
	select {
	case code := <-c.closes:
		t.Fatalf("session closed with %d", code)
	default:
	}
	_ = s
}
