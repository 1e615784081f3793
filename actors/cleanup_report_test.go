package actors

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
)

// storedRecords reads every record of ids from the store.
func (e *env) storedRecords(ids []int64) map[int64]*messages.UserState {
	e.tb.Helper()
	out := make(map[int64]*messages.UserState, len(ids))
	for _, id := range ids {
		out[id] = e.stored(id)
	}
	return out
}

// TestPreviewCleanupMatchesCleanup: a dry run over active actors whose
// deadlines passed and over stored records no actor holds lists exactly
// what the real cleanup then changes, and changes nothing itself (store,
// versions, pushes, which users are active).
func TestPreviewCleanupMatchesCleanup(t *testing.T) {
	e := newEnv(t)
	c := newCollector(t, e.system)
	e.first(heartbeat(1))
	e.req(watch(1, c.pid, 1))
	e.req(update(1, busyUntil(at(time.Minute)))) // online, busy until +1m
	e.first(heartbeat(2))                        // online
	e.first(update(3, busyUntil(at(time.Hour)))) // busy past the skip: nothing
	// Records a previous run left; no actor holds them.
	e.put(&messages.UserState{UserId: 100, IsOnline: true, LastSeen: at(-10 * time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-10 * time.Minute), Version: 5}, 0)
	e.put(&messages.UserState{UserId: 101, IsBusy: true, BusyUntil: at(-time.Minute), LastSeen: at(-time.Hour), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Hour), Version: 2}, 0)
	e.put(&messages.UserState{UserId: 102, IsOnline: true, LastSeen: at(9 * time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Minute), Version: 1}, 0)
	// Sessions held it online: its activation gives them the grace first.
	e.put(&messages.UserState{UserId: 103, IsOnline: true, SessionsHeld: true, LastSeen: at(-time.Hour), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Hour), Version: 3}, 0)
	c.take()

	e.clock.Skip(10 * time.Minute) // deadlines pass, no timer is delivered
	ids := []int64{1, 2, 3, 100, 101, 102, 103}
	before := e.storedRecords(ids)
	activeBefore := e.active()

	preview, err := e.host.PreviewCleanup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []*messages.CleanupUser{
		{UserId: 1, MarkOffline: true, ClearBusy: true, LastSeen: at(0), BusyUntil: at(time.Minute)},
		{UserId: 2, MarkOffline: true, LastSeen: at(0)},
		{UserId: 100, MarkOffline: true, LastSeen: at(-10 * time.Minute)},
		{UserId: 101, ClearBusy: true, LastSeen: at(-time.Hour), BusyUntil: at(-time.Minute)},
	}
	checkReport(t, "dry run", preview, 3, 2, want)
	for _, id := range ids {
		if after := e.stored(id); !proto.Equal(after, before[id]) {
			t.Errorf("dry run changed stored user %d: %v -> %v", id, before[id], after)
		}
	}
	if pushed := c.take(); len(pushed) != 0 {
		t.Errorf("dry run pushed %v", pushed)
	}
	if got := e.active(); !sameIDs(got, activeBefore) {
		t.Errorf("dry run changed the active users: %v -> %v", activeBefore, got)
	}

	got, err := e.host.Cleanup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, "real run", got, 3, 2, want)
	checkView(t, "user 1 after the real run", e.mustPresence(1), view{Version: 3})
	checkView(t, "stored 100 after the real run", e.stored(100), view{Version: 6})
	// Nothing is left for either.
	preview, err = e.host.PreviewCleanup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, "dry run after the real run", preview, 0, 0, nil)
}

func sameIDs(a, b []int64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func checkReport(t *testing.T, what string, got *messages.CleanupCount, offline, busy int64, users []*messages.CleanupUser) {
	t.Helper()
	if got.GetUsersMarkedOffline() != offline || got.GetBusyStatusCleared() != busy || got.GetTruncated() {
		t.Errorf("%s: counts %d offline, %d busy, truncated %v; want %d, %d, false", what,
			got.GetUsersMarkedOffline(), got.GetBusyStatusCleared(), got.GetTruncated(), offline, busy)
	}
	if !slices.EqualFunc(got.GetUsers(), users, func(a, b *messages.CleanupUser) bool { return proto.Equal(a, b) }) {
		t.Errorf("%s: users\n got  %v\n want %v", what, got.GetUsers(), users)
	}
}

func TestDryRecheckDoesNotActivate(t *testing.T) {
	e := newEnv(t)
	e.put(&messages.UserState{UserId: 7, IsOnline: true, LastSeen: at(-time.Hour), Version: 1}, 0)
	r := e.req(&messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: 7, DryRun: true}}})
	if r.GetNotFound() == nil {
		t.Fatalf("dry Recheck of a user no actor holds = %v, want NotFound", r)
	}
	if slices.Contains(e.active(), 7) {
		t.Fatal("a dry Recheck activated the user")
	}
	checkView(t, "stored 7", e.stored(7), view{Online: true, Version: 1})
}

func TestCleanupReportTruncates(t *testing.T) {
	var r cleanupReport
	// Added in descending order, in chunks, the way nodes' workers add.
	for id := int64(2500); id > 0; id-- {
		r.add(&messages.CleanupCount{UsersMarkedOffline: 1, Users: []*messages.CleanupUser{{UserId: id, MarkOffline: true}}})
	}
	got := r.count()
	if got.GetUsersMarkedOffline() != 2500 || !got.GetTruncated() || len(got.GetUsers()) != CleanupReportLimit {
		t.Fatalf("report: %d offline, truncated %v, %d users; want 2500, true, %d", got.GetUsersMarkedOffline(), got.GetTruncated(), len(got.GetUsers()), CleanupReportLimit)
	}
	for i, u := range got.GetUsers() {
		if u.GetUserId() != int64(i+1) {
			t.Fatalf("users[%d] = %d, want the lowest ids in order", i, u.GetUserId())
		}
	}
}

func TestMergeCleanupCounts(t *testing.T) {
	users := func(ids ...int64) []*messages.CleanupUser {
		var out []*messages.CleanupUser
		for _, id := range ids {
			out = append(out, &messages.CleanupUser{UserId: id, MarkOffline: true})
		}
		return out
	}
	tests := []struct {
		name          string
		in            []*messages.CleanupCount
		offline       int64
		ids           []int64
		wantTruncated bool
	}{
		{"nothing", nil, 0, nil, false},
		{"two nodes interleave", []*messages.CleanupCount{
			{UsersMarkedOffline: 2, Users: users(1, 5)}, {UsersMarkedOffline: 2, Users: users(2, 3)},
		}, 4, []int64{1, 2, 3, 5}, false},
		{"a node truncated", []*messages.CleanupCount{
			{UsersMarkedOffline: 1, Users: users(9)}, {UsersMarkedOffline: 5000, Users: users(1), Truncated: true},
		}, 5001, []int64{1, 9}, true},
		{"an old node lists nobody", []*messages.CleanupCount{
			{UsersMarkedOffline: 1, Users: users(9)}, {UsersMarkedOffline: 3},
		}, 4, []int64{9}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeCleanupCounts(tc.in)
			var ids []int64
			for _, u := range got.GetUsers() {
				ids = append(ids, u.GetUserId())
			}
			if got.GetUsersMarkedOffline() != tc.offline || !slices.Equal(ids, tc.ids) || got.GetTruncated() != tc.wantTruncated {
				t.Fatalf("merged: %d offline, ids %v, truncated %v; want %d, %v, %v", got.GetUsersMarkedOffline(), ids, got.GetTruncated(), tc.offline, tc.ids, tc.wantTruncated)
			}
		})
	}
}

func TestAdvisedOfflineAfter(t *testing.T) {
	tests := []struct {
		offlineAfter, advised time.Duration
		wantBase, want        time.Duration
	}{
		{5 * time.Minute, 0, 100 * time.Second, 5 * time.Minute},
		{5 * time.Minute, 100 * time.Second, 100 * time.Second, 5 * time.Minute},
		{5 * time.Minute, 200 * time.Second, 100 * time.Second, 10 * time.Minute},
		{5 * time.Minute, 50 * time.Second, 100 * time.Second, 5 * time.Minute}, // never shorter
		{30 * time.Second, 40 * time.Second, 10 * time.Second, 2 * time.Minute},
		{100 * time.Second, 0, 33 * time.Second, 100 * time.Second}, // whole seconds
		{2 * time.Second, 0, time.Second, 2 * time.Second},          // at least a second
		{2 * time.Second, 3 * time.Second, time.Second, 6 * time.Second},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.offlineAfter, "/", tc.advised), func(t *testing.T) {
			if got := HeartbeatInterval(tc.offlineAfter); got != tc.wantBase {
				t.Errorf("HeartbeatInterval(%v) = %v, want %v", tc.offlineAfter, got, tc.wantBase)
			}
			if got := AdvisedOfflineAfter(tc.offlineAfter, tc.advised); got != tc.want {
				t.Errorf("AdvisedOfflineAfter(%v, %v) = %v, want %v", tc.offlineAfter, tc.advised, got, tc.want)
			}
		})
	}
}

// TestAdvisedHeartbeatExtendsDeadline: a heartbeat that carries a longer
// advised interval keeps the user online for three of them; the next
// heartbeat without advice brings the deadline back to offline_after.
func TestAdvisedHeartbeatExtendsDeadline(t *testing.T) {
	e := newEnv(t)
	advised := func(id int64, seconds uint32) *messages.Envelope {
		return &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{UserId: id, AdvisedIntervalSeconds: seconds}}}
	}
	// Base interval 100 s; advised 400 s: online for 20 minutes.
	e.first(advised(1, 400))
	checkView(t, "past offline_after", e.advance(1, testOfflineAfter+time.Minute), view{Online: true, Version: 1})
	checkView(t, "just before 3 advised intervals", e.advance(1, 20*time.Minute-testOfflineAfter-time.Minute-time.Second), view{Online: true, Version: 1})
	checkView(t, "at 3 advised intervals", e.advance(1, time.Second), view{Version: 2})

	e.req(advised(1, 400))
	e.req(heartbeat(1)) // an older node's heartbeat: no advice
	checkView(t, "offline_after after an unadvised heartbeat", e.advance(1, testOfflineAfter), view{Version: 4})
}
