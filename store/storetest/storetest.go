// Package storetest is the conformance suite every store.Store must pass.
// The user actors rely on the compare-and-set and last_seen rules to stay
// correct when two activations of a user briefly coexist, so each
// implementation (memory, bbolt, PostgreSQL) runs the same checks instead of
// its own approximation of them.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// Run runs the suite. open must return a new, empty store for each subtest
// (for a shared database: truncate first); Run closes it when the subtest
// ends, possibly after the subtest already did, so Close must tolerate a
// second call.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"SaveNew", testSaveNew},
		{"ClockBasedVersions", testClockBasedVersions},
		{"AppearOffline", testAppearOffline},
		{"Visibility", testVisibility},
		{"SaveConflicts", testSaveConflicts},
		{"SaveCorrectPrevVersion", testSaveCorrectPrevVersion},
		{"SaveVersionMustRise", testSaveVersionMustRise},
		{"SaveKeepsLargerLastSeen", testSaveKeepsLargerLastSeen},
		{"TouchLastSeen", testTouchLastSeen},
		{"TouchThenStaleSave", testTouchThenStaleSave},
		{"ScanLive", testScanLive},
		{"ScanLiveStopsOnError", testScanLiveStopsOnError},
		{"UserIDRange", testUserIDRange},
		{"NoAliasing", testNoAliasing},
		{"ConcurrentCompareAndSet", testConcurrentCompareAndSet},
		{"CanceledContext", testCanceledContext},
		{"UseAfterClose", testUseAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

// Microsecond timestamps in a realistic range.
const (
	t0 = int64(1_750_000_000_000_000)
	ms = int64(1000)
)

func user(id int64, version uint64) *messages.UserState {
	return &messages.UserState{
		UserId:    id,
		Username:  fmt.Sprintf("user-%d", id),
		IsOnline:  true,
		LastSeen:  t0 + 100*ms,
		CreatedAt: t0,
		UpdatedAt: t0 + 100*ms,
		Version:   version,
	}
}

func clone(st *messages.UserState) *messages.UserState {
	return proto.Clone(st).(*messages.UserState)
}

func mustSave(t *testing.T, s store.Store, st *messages.UserState, prev uint64) {
	t.Helper()
	if err := s.Save(context.Background(), st, prev); err != nil {
		t.Fatalf("Save(user %d, version %d, prev %d): %v", st.GetUserId(), st.GetVersion(), prev, err)
	}
}

func mustLoad(t *testing.T, s store.Store, id int64) *messages.UserState {
	t.Helper()
	st, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load(%d): %v", id, err)
	}
	if st == nil {
		t.Fatalf("Load(%d) returned nil record and nil error", id)
	}
	return st
}

func wantStored(t *testing.T, s store.Store, want *messages.UserState) {
	t.Helper()
	got := mustLoad(t, s, want.GetUserId())
	if !proto.Equal(got, want) {
		t.Fatalf("stored record of user %d:\n got  %v\n want %v", want.GetUserId(), got, want)
	}
}

func wantNotFound(t *testing.T, s store.Store, id int64) {
	t.Helper()
	st, err := s.Load(context.Background(), id)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load(%d) = %v, %v; want ErrNotFound", id, st, err)
	}
}

func testLoadMissing(t *testing.T, s store.Store) {
	st, err := s.Load(context.Background(), 42)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load of missing user: err = %v, want ErrNotFound", err)
	}
	if st != nil {
		t.Fatalf("Load of missing user returned a record: %v", st)
	}
}

func testSaveNew(t *testing.T, s store.Store) {
	st := user(1, 1)
	st.IsBusy = true
	st.BusyUntil = t0 + 3600_000*ms
	st.SessionsHeld = true
	mustSave(t, s, st, 0)
	wantStored(t, s, st)
	wantNotFound(t, s, 2)
}

// testClockBasedVersions: a record created with no stored predecessor
// starts at a clock-derived version (microseconds since the epoch, about
// 2^51 today, below 2^53 until the year 2255) and rises by one per change;
// the store keeps such versions exactly and fences on them. A record lost
// and created again gets a higher base, so it is saved with prevVersion 0
// over nothing, and Load never answers a version below the base.
func testClockBasedVersions(t *testing.T, s store.Store) {
	const base = uint64(1_780_000_000_000_000) // 2026 in µs
	const near53 = uint64(1)<<53 - 2
	for _, tc := range []struct {
		id   int64
		base uint64
	}{{1, base}, {2, near53}} {
		v1 := user(tc.id, tc.base)
		mustSave(t, s, v1, 0)
		wantStored(t, s, v1)
		v2 := clone(v1)
		v2.Version, v2.IsBusy = tc.base+1, true
		mustSave(t, s, v2, tc.base)
		wantStored(t, s, v2)
		stale := clone(v1)
		stale.Version = tc.base + 1
		if err := s.Save(context.Background(), stale, tc.base); !errors.Is(err, store.ErrVersionConflict) {
			t.Fatalf("user %d: Save with superseded clock-based prevVersion = %v, want ErrVersionConflict", tc.id, err)
		}
		wantStored(t, s, v2)
	}
}

// testAppearOffline: the user's choice to appear offline while sessions
// are open is stored with the record and can be cleared.
func testAppearOffline(t *testing.T, s store.Store) {
	v1 := user(1, 1)
	v1.IsOnline, v1.SessionsHeld, v1.AppearOffline = false, true, true
	mustSave(t, s, v1, 0)
	wantStored(t, s, v1)
	v2 := clone(v1)
	v2.Version, v2.IsOnline, v2.AppearOffline = 2, true, false
	mustSave(t, s, v2, 1)
	wantStored(t, s, v2)
}

// testVisibility: the visibility setting is stored with the record (on
// insert and on update, every mode, a full allowlist) and can be set back
// to the default, which loads as no setting or an equal default one.
func testVisibility(t *testing.T, s store.Store) {
	allow := make([]int64, 1000)
	for i := range allow {
		allow[i] = int64(i)*7 + 1
	}
	v1 := user(1, 1)
	v1.Visibility = &messages.Visibility{
		Presence: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST,
		LastSeen: messages.VisibilityMode_VISIBILITY_MODE_NOBODY,
		Allow:    allow,
	}
	mustSave(t, s, v1, 0)
	wantStored(t, s, v1)
	v2 := clone(v1)
	v2.Version = 2
	v2.Visibility = &messages.Visibility{Presence: messages.VisibilityMode_VISIBILITY_MODE_NOBODY, Allow: []int64{5}}
	mustSave(t, s, v2, 1)
	wantStored(t, s, v2)
	v3 := clone(v2)
	v3.Version, v3.Visibility = 3, nil
	mustSave(t, s, v3, 2)
	got := mustLoad(t, s, 1)
	if vis := got.GetVisibility(); vis.GetPresence() != 0 || vis.GetLastSeen() != 0 || len(vis.GetAllow()) != 0 {
		t.Fatalf("visibility after reset to default: %v", vis)
	}
}

func testSaveConflicts(t *testing.T, s store.Store) {
	orig := user(1, 1)
	mustSave(t, s, orig, 0)

	tests := []struct {
		name    string
		userID  int64
		version uint64
		prev    uint64
	}{
		{"PrevAheadOfStored", 1, 3, 2},
		{"PrevZeroOverExisting", 1, 5, 0},
		{"PrevNonZeroOnMissing", 2, 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := user(tc.userID, tc.version)
			st.IsOnline = false
			st.Username = "overwritten"
			st.LastSeen = t0 + 999*ms
			err := s.Save(context.Background(), st, tc.prev)
			if !errors.Is(err, store.ErrVersionConflict) {
				t.Fatalf("Save(version %d, prev %d) = %v, want ErrVersionConflict", tc.version, tc.prev, err)
			}
			wantStored(t, s, orig)
			wantNotFound(t, s, 2)
		})
	}
}

func testSaveCorrectPrevVersion(t *testing.T, s store.Store) {
	v1 := user(1, 1)
	mustSave(t, s, v1, 0)

	v2 := clone(v1)
	v2.Version = 2
	v2.IsOnline = false
	v2.SessionsHeld = true
	v2.LastSeen += ms
	v2.UpdatedAt += ms
	mustSave(t, s, v2, 1)
	wantStored(t, s, v2)

	// Versions need not be consecutive, only rising.
	v7 := clone(v2)
	v7.Version = 7
	v7.IsBusy = true
	mustSave(t, s, v7, 2)
	wantStored(t, s, v7)

	// The superseded version is now stale.
	stale := clone(v2)
	stale.Version = 3
	if err := s.Save(context.Background(), stale, 2); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("Save with superseded prevVersion = %v, want ErrVersionConflict", err)
	}
	wantStored(t, s, v7)
}

func testSaveVersionMustRise(t *testing.T, s store.Store) {
	v1 := user(1, 1)
	mustSave(t, s, v1, 0)

	same := clone(v1)
	same.IsOnline = false
	if err := s.Save(context.Background(), same, 1); err == nil {
		t.Fatal("Save with version == prevVersion succeeded; two writers could then both win")
	}
	lower := clone(v1)
	lower.Version = 0
	if err := s.Save(context.Background(), lower, 1); err == nil {
		t.Fatal("Save with version < prevVersion succeeded")
	}
	if err := s.Save(context.Background(), user(2, 0), 0); err == nil {
		t.Fatal("Save of a new record with version 0 succeeded")
	}
	if err := s.Save(context.Background(), nil, 0); err == nil {
		t.Fatal("Save(nil) succeeded")
	}
	wantStored(t, s, v1)
	wantNotFound(t, s, 2)
}

func testSaveKeepsLargerLastSeen(t *testing.T, s store.Store) {
	v1 := user(1, 1)
	v1.LastSeen = t0 + 500*ms
	mustSave(t, s, v1, 0)

	// An older last_seen is not written, but the rest of the record is.
	v2 := clone(v1)
	v2.Version = 2
	v2.IsOnline = false
	v2.LastSeen = t0 + 200*ms
	v2.UpdatedAt = t0 + 600*ms
	mustSave(t, s, v2, 1)
	want := clone(v2)
	want.LastSeen = t0 + 500*ms
	wantStored(t, s, want)

	// A newer one is.
	v3 := clone(v2)
	v3.Version = 3
	v3.LastSeen = t0 + 900*ms
	mustSave(t, s, v3, 2)
	wantStored(t, s, v3)

	// Zero ("none") does not erase it either.
	v4 := clone(v3)
	v4.Version = 4
	v4.LastSeen = 0
	mustSave(t, s, v4, 3)
	want = clone(v4)
	want.LastSeen = v3.LastSeen
	wantStored(t, s, want)
}

func testTouchLastSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := user(1, 5)
	a.LastSeen = t0 + 100*ms
	b := user(2, 3)
	b.LastSeen = t0 + 300*ms
	b.IsOnline = false
	mustSave(t, s, a, 0)
	mustSave(t, s, b, 0)

	if err := s.TouchLastSeen(ctx, nil); err != nil {
		t.Fatalf("TouchLastSeen(nil) = %v", err)
	}
	err := s.TouchLastSeen(ctx, []store.Touch{
		{UserID: 1, LastSeen: t0 + 150*ms},
		{UserID: 1, LastSeen: t0 + 120*ms}, // lower duplicate in the same batch
		{UserID: 2, LastSeen: t0 + 200*ms}, // lower than stored
		{UserID: 3, LastSeen: t0 + 500*ms}, // missing user
	})
	if err != nil {
		t.Fatalf("TouchLastSeen: %v", err)
	}
	wantA := clone(a)
	wantA.LastSeen = t0 + 150*ms // version and updated_at untouched
	wantStored(t, s, wantA)
	wantStored(t, s, b)
	wantNotFound(t, s, 3)

	// The touch did not change the version, so the owner's next CAS works.
	next := clone(a)
	next.Version = 6
	mustSave(t, s, next, 5)
}

func testTouchThenStaleSave(t *testing.T, s store.Store) {
	// The write-behind touch lands, then the actor saves a state built
	// before it: the stored last_seen must not go back.
	v1 := user(1, 1)
	mustSave(t, s, v1, 0)
	if err := s.TouchLastSeen(context.Background(), []store.Touch{{UserID: 1, LastSeen: t0 + 5000*ms}}); err != nil {
		t.Fatalf("TouchLastSeen: %v", err)
	}
	v2 := clone(v1)
	v2.Version = 2
	v2.IsOnline = false
	mustSave(t, s, v2, 1)
	want := clone(v2)
	want.LastSeen = t0 + 5000*ms
	wantStored(t, s, want)
}

func testScanLive(t *testing.T, s store.Store) {
	records := map[int64]struct{ online, busy bool }{
		1: {false, false},
		2: {true, false},
		3: {false, true},
		4: {true, true},
		5: {false, false},
		6: {true, false},
	}
	want := map[int64]*messages.UserState{}
	for id, r := range records {
		st := user(id, 1)
		st.IsOnline = r.online
		st.IsBusy = r.busy
		if r.busy {
			st.BusyUntil = t0 + 60_000*ms
		}
		mustSave(t, s, st, 0)
		if r.online || r.busy {
			want[id] = st
		}
	}
	// A record that went offline since must not be returned.
	off := user(6, 2)
	off.IsOnline = false
	mustSave(t, s, off, 1)
	delete(want, 6)

	got := map[int64]*messages.UserState{}
	err := s.ScanLive(context.Background(), func(st *messages.UserState) error {
		if _, dup := got[st.GetUserId()]; dup {
			t.Errorf("ScanLive returned user %d twice", st.GetUserId())
		}
		got[st.GetUserId()] = st
		return nil
	})
	if err != nil {
		t.Fatalf("ScanLive: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("ScanLive returned %d records, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("ScanLive missed live user %d", id)
			continue
		}
		if !proto.Equal(g, w) {
			t.Errorf("ScanLive user %d:\n got  %v\n want %v", id, g, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("ScanLive returned user %d, which is neither online nor busy", id)
		}
	}
}

func testScanLiveStopsOnError(t *testing.T, s store.Store) {
	for id := int64(1); id <= 3; id++ {
		mustSave(t, s, user(id, 1), 0)
	}
	errStop := errors.New("stop here")
	calls := 0
	err := s.ScanLive(context.Background(), func(*messages.UserState) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("ScanLive = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Fatalf("callback ran %d times after returning an error, want 1", calls)
	}
	if err := s.ScanLive(context.Background(), func(*messages.UserState) error { return nil }); err != nil {
		t.Fatalf("ScanLive after a stopped scan: %v", err)
	}
}

func testUserIDRange(t *testing.T, s store.Store) {
	ids := []int64{math.MinInt64, -1, 1, 255, 256, 1 << 40, math.MaxInt64}
	for i, id := range ids {
		st := user(id, uint64(i+1))
		mustSave(t, s, st, 0)
	}
	for i, id := range ids {
		wantStored(t, s, user(id, uint64(i+1)))
	}
	wantNotFound(t, s, 0)
	wantNotFound(t, s, 2)
}

func testNoAliasing(t *testing.T, s store.Store) {
	ctx := context.Background()
	st := user(1, 1)
	want := clone(st)
	mustSave(t, s, st, 0)
	st.Username = "mutated after save"
	st.IsOnline = false
	wantStored(t, s, want)

	a := mustLoad(t, s, 1)
	b := mustLoad(t, s, 1)
	if a == b {
		t.Fatal("two Loads returned the same pointer")
	}
	a.Username = "mutated after load"
	a.Version = 99
	wantStored(t, s, want)

	err := s.ScanLive(ctx, func(st *messages.UserState) error {
		st.Username = "mutated in scan"
		st.IsOnline = false
		return nil
	})
	if err != nil {
		t.Fatalf("ScanLive: %v", err)
	}
	wantStored(t, s, want)

	// A touch reaches the stored record, not an earlier Load's copy.
	if err := s.TouchLastSeen(ctx, []store.Touch{{UserID: 1, LastSeen: t0 + 7000*ms}}); err != nil {
		t.Fatalf("TouchLastSeen: %v", err)
	}
	if b.GetLastSeen() != want.GetLastSeen() {
		t.Fatal("TouchLastSeen changed a record returned by an earlier Load")
	}
}

func testConcurrentCompareAndSet(t *testing.T, s store.Store) {
	const (
		writers    = 8
		increments = 15
		id         = 7
	)
	ctx := context.Background()
	base := user(id, 1)
	mustSave(t, s, base, 0)

	// Each writer adds increments to a counter kept in busy_until, reloading
	// on conflict. A lost update shows as a counter below the total; a CAS
	// that lets two writers win shows as counter and version disagreeing.
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				cur, err := s.Load(ctx, id)
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				next := clone(cur)
				next.Version = cur.GetVersion() + 1
				next.BusyUntil = cur.GetBusyUntil() + 1
				next.LastSeen = t0 // older than every touch below
				err = s.Save(ctx, next, cur.GetVersion())
				switch {
				case err == nil:
					done++
				case errors.Is(err, store.ErrVersionConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
				default:
					t.Errorf("Save: %v", err)
					return
				}
			}
		}()
	}
	// Meanwhile last_seen is raised by touches; stale Saves must not lower it.
	const touches = 20
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(1); i <= touches; i++ {
			if err := s.TouchLastSeen(ctx, []store.Touch{{UserID: id, LastSeen: t0 + 1000*ms + i}}); err != nil {
				t.Errorf("TouchLastSeen: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}

	got := mustLoad(t, s, id)
	total := uint64(writers * increments)
	if got.GetBusyUntil() != int64(total) {
		t.Errorf("counter = %d after %d successful increments: updates were lost", got.GetBusyUntil(), total)
	}
	if got.GetVersion() != 1+total {
		t.Errorf("version = %d, want %d", got.GetVersion(), 1+total)
	}
	if want := t0 + 1000*ms + touches; got.GetLastSeen() != want {
		t.Errorf("last_seen = %d, want %d (the largest touch)", got.GetLastSeen(), want)
	}
	t.Logf("%d increments, %d conflicts", total, conflicts)
}

func testCanceledContext(t *testing.T, s store.Store) {
	v1 := user(1, 1)
	mustSave(t, s, v1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if _, err := s.Load(ctx, 1); err == nil {
		t.Error("Load with canceled context succeeded")
	}
	if err := s.Save(ctx, user(2, 1), 0); err == nil {
		t.Error("Save with canceled context succeeded")
	}
	if err := s.TouchLastSeen(ctx, []store.Touch{{UserID: 1, LastSeen: t0 + 9000*ms}}); err == nil {
		t.Error("TouchLastSeen with canceled context succeeded")
	}
	calls := 0
	if err := s.ScanLive(ctx, func(*messages.UserState) error { calls++; return nil }); err == nil {
		t.Error("ScanLive with canceled context succeeded")
	}
	if calls != 0 {
		t.Errorf("ScanLive with canceled context called fn %d times", calls)
	}
	wantNotFound(t, s, 2)
	wantStored(t, s, v1)
}

func testUseAfterClose(t *testing.T, s store.Store) {
	mustSave(t, s, user(1, 1), 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.Load(ctx, 1); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load after Close = %v, want an error other than ErrNotFound", err)
	}
	if err := s.Save(ctx, user(2, 1), 0); err == nil {
		t.Error("Save after Close succeeded")
	}
}
