//go:build !race

package clustere2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/node"
)

// wsMarker is a frame the server answers with one error frame: its answer
// marks a point in the session's outbound stream.
const wsMarker = `{"type":"cluster-test-marker"}`

// drainToMarker sends the marker and returns every frame before its answer.
func drainToMarker(t *testing.T, w *testkit.WSConn) []*testkit.Frame {
	t.Helper()
	if err := w.SendText(wsMarker); err != nil {
		t.Fatal(err)
	}
	var out []*testkit.Frame
	for {
		m, err := w.Next(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "error" {
			return out
		}
		out = append(out, m)
	}
}

// TestClusterCleanupDryRun: three nodes share a store on a clock whose
// timers never fire; each owns two online users, one of them busy. Node C
// crashes (A and B re-arm its users), and records no actor holds are put
// in the store, as a previous run of the cluster leaves them. Once every
// deadline has passed, a dry run through A lists all nine users, from A's
// and B's actors and from the stored records, and changes nothing: store
// contents, versions, the actors each node hosts (the stored records are
// not activated), pushes to a watcher. A real run through B then changes
// and lists exactly the same users.
func TestClusterCleanupDryRun(t *testing.T) {
	clock := testkit.NewFakeClock(time.Now())
	c := newCluster(t, node.Config{Clock: clock, Actors: actors.Config{OfflineAfter: time.Minute}})
	c.fence = true // the killed node's leftover actors cannot write
	a, b, cc := c.Start("A"), c.Start("B"), c.Start("C")
	c.waitConverged([]*tnode{a, b, cc}, nil, 15*time.Second)

	var users []int64
	for i, n := range []*tnode{a, b, cc} {
		users = append(users, c.usersOwnedBy(n, 2, int64(1000*(i+1)))...)
	}
	slices.Sort(users)
	until := time.Now().Add(time.Hour)
	busy := map[int64]bool{}
	for i, u := range users {
		a.API.Must(t).Heartbeat(u)
		if i%2 == 1 {
			a.API.Must(t).PutStatus(u, `{"busy_until": "`+testkit.RFC3339(until)+`"}`)
			busy[u] = true
		}
	}
	// A watcher on A of A's and B's users (a watch of C's users would
	// activate them on their new owners once C is gone).
	var watched []int64
	for _, u := range users {
		if o := c.owner(a, u); o != cc {
			watched = append(watched, u)
		}
	}
	w, err := testkit.DialWS(a.HTTPAddr(), testkit.WSQuery(c.tok.Of(7000), testkit.JoinIDs(watched, false)), testkit.WSOptions{Name: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	drainToMarker(t, w)

	c.kill(cc)
	// Records no actor holds, as a previous run of the cluster leaves
	// them: written straight to the store, one owned by A, two by B.
	c.waitConverged([]*tnode{a, b}, users, 30*time.Second)
	now := clock.Now().UnixMicro()
	left := append(c.usersOwnedBy(a, 1, 5000), c.usersOwnedBy(b, 2, 6000)...)
	for i, u := range left {
		st := &messages.UserState{UserId: u, Username: "left", IsOnline: true, LastSeen: now, CreatedAt: now, UpdatedAt: now, Version: 7}
		if i == 0 {
			st.IsBusy, st.BusyUntil = true, until.UnixMicro()
			busy[u] = true
		}
		if err := c.store.Save(t.Context(), st, 0); err != nil {
			t.Fatal(err)
		}
	}
	users = append(users, left...)
	slices.Sort(users)
	clock.Jump(2 * time.Hour)

	stored := storedStates(t, c, users)
	hostedBefore, err := a.API.Hosted()
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, v := range hostedBefore {
		sum += v
	}
	if sum != 7 {
		// The six users (C's re-armed on A and B when C left) and the
		// watcher; the records left in the store have no actor.
		t.Fatalf("actors hosted before the dry run %v, want 7 in all", hostedBefore)
	}
	dry := a.API.Must(t).CleanupDryRun()
	if !dry.DryRun {
		t.Fatalf("dry run answered dry_run false: %+v", dry)
	}
	checkClusterReport(t, "dry run", dry, users, busy)
	if after := storedStates(t, c, users); !sameStates(after, stored) {
		t.Fatalf("a dry run changed the store:\n before %v\n after  %v", stored, after)
	}
	if h, err := a.API.Hosted(); err != nil || !equalHosted(h, hostedBefore) {
		t.Fatalf("a dry run changed the actors hosted: %v -> %v (%v)", hostedBefore, h, err)
	}
	if got := drainToMarker(t, w); len(got) != 0 {
		t.Fatalf("a dry run pushed %v", got)
	}

	real := b.API.Must(t).Cleanup()
	if real.DryRun {
		t.Fatalf("real run answered dry_run true: %+v", real)
	}
	checkClusterReport(t, "real run", real, users, busy)
	for i, u := range dry.Users {
		if r := real.Users[i]; !r.LastSeen.Equal(*u.LastSeen) || !timesEqual(r.BusyUntil, u.BusyUntil) {
			t.Errorf("user %d: real run reports %+v, dry run %+v", u.UserID, r, u)
		}
	}
	for _, u := range users {
		p := a.API.Must(t).Presence(testkit.AdminID, u)
		if p.IsOnline || p.IsBusy || p.Version != stored[u].GetVersion()+1 {
			t.Errorf("user %d after the real run: %+v, want offline, not busy, version %d", u, p, stored[u].GetVersion()+1)
		}
	}
	if again := a.API.Must(t).CleanupDryRun(); len(again.Users) != 0 || again.UsersMarkedOffline != 0 {
		t.Fatalf("dry run after the real run: %+v, want nothing", again)
	}
}

func checkClusterReport(t *testing.T, what string, got testkit.Cleanup, users []int64, busy map[int64]bool) {
	t.Helper()
	if got.UsersMarkedOffline != int64(len(users)) || got.BusyStatusCleared != int64(len(busy)) || got.Truncated || len(got.Users) != len(users) {
		t.Fatalf("%s: %+v, want %d offline, %d busy cleared, all of %v listed", what, got, len(users), len(busy), users)
	}
	for i, u := range got.Users {
		if u.UserID != users[i] || !u.MarkOffline || u.ClearBusy != busy[u.UserID] || u.LastSeen == nil || (u.BusyUntil != nil) != busy[u.UserID] {
			t.Fatalf("%s: users[%d] = %+v, want user %d offline, busy cleared %v", what, i, u, users[i], busy[users[i]])
		}
	}
}

// storedStates reads users' records straight from the cluster's store.
func storedStates(t *testing.T, c *tcluster, users []int64) map[int64]*messages.UserState {
	t.Helper()
	out := map[int64]*messages.UserState{}
	for _, u := range users {
		st, err := c.store.Load(t.Context(), u)
		if err != nil {
			t.Fatalf("load user %d: %v", u, err)
		}
		out[u] = st
	}
	return out
}

func sameStates(x, y map[int64]*messages.UserState) bool {
	if len(x) != len(y) {
		return false
	}
	for id, s := range x {
		if !proto.Equal(s, y[id]) {
			return false
		}
	}
	return true
}

func equalHosted(x, y map[string]int64) bool { return fmt.Sprint(x) == fmt.Sprint(y) }

func timesEqual(x, y *time.Time) bool {
	if x == nil || y == nil {
		return x == y
	}
	return x.Equal(*y)
}
