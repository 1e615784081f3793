package ws

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// frameOf decodes a server frame's type, user_ids and data.user_id/version.
func frameOf(t *testing.T, f string) (typ string, ids []int64, user int64, version uint64) {
	t.Helper()
	var dec struct {
		Type    string  `json:"type"`
		UserIDs []int64 `json:"user_ids"`
		Data    struct {
			UserID  int64  `json:"user_id"`
			Version uint64 `json:"version"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(f), &dec); err != nil {
		t.Fatalf("frame %s: %v", f, err)
	}
	return dec.Type, dec.UserIDs, dec.Data.UserID, dec.Data.Version
}

// expectSnapshot reads "subscribed" for ids and then one presence_update
// per id with its version.
func expectSubscribed(t *testing.T, c *fakeConn, want map[int64]uint64, ids ...int64) {
	t.Helper()
	typ, got, _, _ := frameOf(t, c.next(t))
	if typ != "subscribed" || !slices.Equal(got, ids) {
		t.Fatalf("got %s %v, want subscribed %v", typ, got, ids)
	}
	for range want {
		typ, _, user, v := frameOf(t, c.next(t))
		if typ != "presence_update" || want[user] != v {
			t.Fatalf("got %s of user %d v%d, want versions %v", typ, user, v, want)
		}
	}
}

func expectUpdate(t *testing.T, c *fakeConn, user int64, v uint64) {
	t.Helper()
	typ, _, gotUser, gotV := frameOf(t, c.next(t))
	if typ != "presence_update" || gotUser != user || gotV != v {
		t.Fatalf("got %s of user %d v%d, want presence_update of %d v%d", typ, gotUser, gotV, user, v)
	}
}

func TestHubSubscribeWatchesOncePerUser(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[42] = state(42, 3) })
	s1, c1 := e.open(t, 1)
	s2, c2 := e.open(t, 2)

	e.srv.subscribe(s1, []int64{42}, true)
	expectSubscribed(t, c1, map[int64]uint64{42: 3}, 42)
	e.srv.subscribe(s2, []int64{42}, true)
	expectSubscribed(t, c2, map[int64]uint64{42: 3}, 42)

	watches, _, reads := e.router.counts()
	if !slices.Equal(watches, []int64{42}) {
		t.Fatalf("watches %v, want one of user 42", watches)
	}
	if !slices.Equal(reads, []int64{42}) {
		t.Fatalf("reads %v, want the second subscriber to read user 42", reads)
	}
	if n := e.hub.Stats().WatchesPerformed.Load(); n != 1 {
		t.Fatalf("WatchesPerformed = %d, want 1", n)
	}
}

func TestHubUnsubscribeOfLastSessionUnwatches(t *testing.T) {
	e := newTestEnv(t)
	s1, c1 := e.open(t, 1)
	s2, c2 := e.open(t, 2)
	e.srv.subscribe(s1, []int64{42}, true)
	e.srv.subscribe(s2, []int64{42}, true)
	c1.next(t)
	c2.next(t)

	e.srv.unsubscribe(s1, []int64{42})
	if typ, ids, _, _ := frameOf(t, c1.next(t)); typ != "unsubscribed" || !slices.Equal(ids, []int64{42}) {
		t.Fatalf("got %s %v, want unsubscribed [42]", typ, ids)
	}
	if _, unwatches, _ := e.router.counts(); len(unwatches) != 0 {
		t.Fatalf("unwatched %v while a session still watches", unwatches)
	}
	e.srv.unsubscribe(s2, []int64{42})
	c2.next(t)
	if _, unwatches, _ := e.router.counts(); !slices.Equal(unwatches, []int64{42}) {
		t.Fatalf("unwatches %v, want [42]", unwatches)
	}
	// A session never drops its own user.
	e.srv.subscribe(s1, []int64{1}, false)
	e.srv.unsubscribe(s1, []int64{1})
	if _, unwatches, _ := e.router.counts(); slices.Contains(unwatches, 1) {
		t.Fatal("a session's own user was unwatched")
	}
}

func TestHubUpdateFansOutToEveryLocalSession(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[42] = state(42, 3) })
	var conns []*fakeConn
	for uid := int64(1); uid <= 3; uid++ {
		s, c := e.open(t, uid)
		e.srv.subscribe(s, []int64{42}, true)
		expectSubscribed(t, c, map[int64]uint64{42: 3}, 42)
		conns = append(conns, c)
	}
	_, other := e.open(t, 4) // not subscribed

	e.update(busyState(42, 4))
	for _, c := range conns {
		expectUpdate(t, c, 42, 4)
	}
	e.update(busyState(42, 4)) // a version already sent is dropped
	e.update(state(42, 5))
	for _, c := range conns {
		expectUpdate(t, c, 42, 5)
	}
	other.none(t)
	if n := e.hub.Stats().StaleDropped.Load(); n != 3 {
		t.Fatalf("StaleDropped = %d, want 3", n)
	}
}

func TestHubResyncRewatchesOnOwnerChange(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[42] = state(42, 3); r.owners[42] = "a" })
	s, c := e.open(t, 1)
	e.srv.subscribe(s, []int64{42}, true)
	expectSubscribed(t, c, map[int64]uint64{42: 3}, 42)

	e.hub.Resync(context.Background()) // nothing changed
	if watches, _, _ := e.router.counts(); len(watches) != 1 {
		t.Fatalf("watches %v after a Resync with no change", watches)
	}
	// The new owner knows the user at a newer version (the old one died
	// before pushing it).
	e.router.set(func(r *fakeRouter) { r.owners[42] = "b"; r.states[42] = busyState(42, 7) })
	e.hub.Resync(context.Background())
	if watches, _, _ := e.router.counts(); !slices.Equal(watches, []int64{42, 42}) {
		t.Fatalf("watches %v, want user 42 watched again", watches)
	}
	expectUpdate(t, c, 42, 7)
}

func TestHubFailedWatchRetriedByResync(t *testing.T) {
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[42] = state(42, 3); r.failWatch[42] = true })
	s, c := e.open(t, 1)
	e.srv.subscribe(s, []int64{42}, true)
	if typ, _, _, _ := frameOf(t, c.next(t)); typ != "subscribed" {
		t.Fatalf("got %s, want subscribed", typ)
	}
	c.none(t) // no state: the Watch did not take

	e.router.set(func(r *fakeRouter) { r.failWatch[42] = false })
	e.hub.Resync(context.Background())
	if watches, _, _ := e.router.counts(); !slices.Equal(watches, []int64{42}) {
		t.Fatalf("watches %v, want the failed Watch sent again", watches)
	}
	expectUpdate(t, c, 42, 3)
}

func TestHubCloseAll(t *testing.T) {
	e := newTestEnv(t)
	_, c1 := e.open(t, 1)
	_, c2 := e.open(t, 1)
	if n := e.hub.SessionCount(1); n != 2 {
		t.Fatalf("SessionCount = %d, want 2", n)
	}
	e.srv.CloseAll(CloseDraining, "server draining")
	for _, c := range []*fakeConn{c1, c2} {
		select {
		case code := <-c.closes:
			if code != CloseDraining {
				t.Fatalf("close code %d, want %d", code, CloseDraining)
			}
		case <-time.After(time.Second):
			t.Fatal("no close frame")
		}
	}
	s := newSession(newFakeConn(t), e.hubUser(3), nil, &sessionOptions{queue: 4, stats: e.hub.Stats()})
	if err := e.hub.attach(context.Background(), s); !errors.Is(err, errDraining) {
		t.Fatalf("attach after CloseAll: %v, want errDraining", err)
	}
}

func TestHubSessionCap(t *testing.T) {
	e := newTestEnv(t)
	for range e.srv.cfg.MaxSessionsPerUser {
		e.open(t, 1)
	}
	s := newSession(newFakeConn(t), e.hubUser(1), nil, &sessionOptions{queue: 4, stats: e.hub.Stats()})
	if err := e.hub.attach(context.Background(), s); !errors.Is(err, errTooManySessions) {
		t.Fatalf("attach over the cap: %v, want errTooManySessions", err)
	}
	if n := e.router.sessionsOf(1); n != int32(e.srv.cfg.MaxSessionsPerUser) {
		t.Fatalf("actor told %d sessions, want %d", n, e.srv.cfg.MaxSessionsPerUser)
	}
}
