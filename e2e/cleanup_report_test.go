package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

func (c *client) cleanupQuery(rawQuery string) *response {
	return c.do(http.MethodPost, "/admin/cleanup-presence?"+rawQuery, nil)
}

// cleanupDryRun is POST /admin/cleanup-presence?<rawQuery>, a dry run that
// must answer 200.
func (c *client) cleanupDryRun(rawQuery string) Cleanup {
	c.t.Helper()
	r := decodeCleanup(c.t, expectOK(c.t, c.cleanupQuery(rawQuery)).Body)
	if !r.DryRun {
		c.t.Fatalf("cleanup with %s: dry_run false in %+v", rawQuery, r)
	}
	return r
}

// TestCleanupDryRunListsWhatCleanupChanges: on a node whose timers never
// fire, users past their deadlines are listed by a dry run, which changes
// nothing (reads, versions, pushes to a watcher); a second dry run says
// the same; the real run then changes exactly the users the dry run
// listed, with the same flags and times, and lists them too.
func TestCleanupDryRunListsWhatCleanupChanges(t *testing.T) {
	clock := testkit.NewFakeClock(time.Now())
	n := startNode(t, node.Config{Clock: clock})
	admin := n.admin(t)
	hbAt := map[int64]time.Time{}
	for id := int64(1); id <= 3; id++ {
		n.user(t, id, "online").heartbeat()
		hbAt[id] = *n.user(t, id, "online").getStatus().LastSeen
	}
	until := micro(time.Now().Add(time.Hour))
	n.user(t, 4, "busy").putStatus(`{"is_online": false, "busy_until": "` + rfc3339(until) + `"}`)
	both := n.user(t, 5, "both").putStatus(`{"is_online": true, "busy_until": "` + rfc3339(until) + `"}`)
	n.user(t, 6, "busy forever").putStatus(`{"is_online": false, "is_busy": true}`)

	ids := []int64{1, 2, 3, 4, 5, 6}
	w := wsDialUser(t, n, 100, "watcher", "1,2,3,4,5,6")
	w.expectSubscribed(ids...)
	for range ids {
		w.expectType("presence_update")
	}
	w.sync()

	if r := admin.cleanupDryRun("dry_run=true"); r.UsersMarkedOffline != 0 || r.BusyStatusCleared != 0 || len(r.Users) != 0 || r.Truncated {
		t.Fatalf("dry run before any deadline: %+v, want nothing", r)
	}
	clock.Jump(2 * time.Hour)
	reader := n.user(t, 101, "reader")
	before := reader.batch("1,2,3,4,5,6")

	dry := admin.cleanupDryRun("dry_run=true")
	want := []wire.CleanupUser{
		{UserID: 1, MarkOffline: true, LastSeen: ptr(hbAt[1])},
		{UserID: 2, MarkOffline: true, LastSeen: ptr(hbAt[2])},
		{UserID: 3, MarkOffline: true, LastSeen: ptr(hbAt[3])},
		{UserID: 4, ClearBusy: true, LastSeen: before[3].LastSeen, BusyUntil: ptr(until)},
		{UserID: 5, MarkOffline: true, ClearBusy: true, LastSeen: both.LastSeen, BusyUntil: ptr(until)},
	}
	checkCleanupReport(t, "dry run", dry, 4, 2, want)
	if after := reader.batch("1,2,3,4,5,6"); !reflect.DeepEqual(after, before) {
		t.Fatalf("a dry run changed what reads return:\n before %+v\n after  %+v", before, after)
	}
	w.expectNothing()
	// Again, spelled 1: the same answer, still nothing changed.
	checkCleanupReport(t, "second dry run", admin.cleanupDryRun("dry_run=1"), 4, 2, want)
	if after := reader.batch("1,2,3,4,5,6"); !reflect.DeepEqual(after, before) {
		t.Fatalf("a second dry run changed what reads return:\n before %+v\n after  %+v", before, after)
	}

	real := decodeCleanup(t, expectOK(t, admin.cleanupQuery("dry_run=false")).Body)
	if real.DryRun {
		t.Fatalf("dry_run=false answered dry_run true: %+v", real)
	}
	checkCleanupReport(t, "real run", real, 4, 2, want)
	after := reader.batch("1,2,3,4,5,6")
	for i, p := range after {
		changed := i < 5
		if (p.Version != before[i].Version) != changed || (changed && (p.IsOnline || (i >= 3 && p.IsBusy))) {
			t.Errorf("user %d after the real run: %+v (before %+v)", p.UserID, p, before[i])
		}
	}
	pushed := map[int64]Presence{}
	for range 5 {
		p, err := w.expectType("presence_update").Presence()
		if err != nil {
			t.Fatal(err)
		}
		pushed[p.UserID] = p
	}
	for i, id := range ids[:5] {
		if p, ok := pushed[id]; !ok || p.Version != after[i].Version || p.IsOnline || (id >= 4 && p.IsBusy) {
			t.Errorf("push of user %d after the real run: %+v (%v), want its new state %+v", id, p, ok, after[i])
		}
	}
	w.expectNothing()
	checkCleanupReport(t, "dry run after the real run", admin.cleanupDryRun("dry_run=true"), 0, 0, nil)
}

func ptr[T any](v T) *T { return &v }

// checkCleanupReport compares a cleanup answer with the counts and the
// users wanted (times compared as instants).
func checkCleanupReport(t *testing.T, what string, got Cleanup, offline, busy int64, want []wire.CleanupUser) {
	t.Helper()
	if got.UsersMarkedOffline != offline || got.BusyStatusCleared != busy || got.Truncated {
		t.Fatalf("%s: %d offline, %d busy, truncated %v; want %d, %d, false (%+v)", what, got.UsersMarkedOffline, got.BusyStatusCleared, got.Truncated, offline, busy, got)
	}
	if len(got.Users) != len(want) {
		t.Fatalf("%s: users %s, want %s", what, fmtUsers(got.Users), fmtUsers(want))
	}
	for i, u := range got.Users {
		w := want[i]
		if u.UserID != w.UserID || u.MarkOffline != w.MarkOffline || u.ClearBusy != w.ClearBusy || !timesEqual(u.LastSeen, w.LastSeen) || !timesEqual(u.BusyUntil, w.BusyUntil) {
			t.Fatalf("%s: users %s, want %s", what, fmtUsers(got.Users), fmtUsers(want))
		}
	}
}

func fmtUsers(us []wire.CleanupUser) string {
	var b strings.Builder
	for _, u := range us {
		fmt.Fprintf(&b, "{%d offline=%v busy=%v last_seen=%s busy_until=%s} ", u.UserID, u.MarkOffline, u.ClearBusy, fmtTime(u.LastSeen), fmtTime(u.BusyUntil))
	}
	return b.String()
}

// TestCleanupDryRunBadValue: dry_run other than true, false, 1 or 0 is a
// 422 naming it, and nothing runs.
func TestCleanupDryRunBadValue(t *testing.T) {
	clock := testkit.NewFakeClock(time.Now())
	n := startNode(t, node.Config{Clock: clock})
	admin := n.admin(t)
	n.user(t, 1, "u").heartbeat()
	clock.Jump(time.Hour)
	for _, q := range []string{"dry_run=yes", "dry_run=", "dry_run", "dry_run=TRUE", "dry_run=2", "dry_run=%20true"} {
		detail := expectSomeDetail(t, admin.cleanupQuery(q), http.StatusUnprocessableEntity)
		if !strings.Contains(detail, "dry_run") {
			t.Errorf("?%s: detail %q does not name dry_run", q, detail)
		}
	}
	if p := n.user(t, 2, "reader").presence(1); !p.IsOnline {
		t.Fatalf("a refused cleanup changed user 1: %+v", p)
	}
	// Refused before the admin check? No: a user without admin rights
	// still gets 403 first.
	expectDetail(t, n.user(t, 3, "not admin").cleanupQuery("dry_run=yes"), http.StatusForbidden, "Admin privileges required")
}

// TestCleanupReportTruncates: 1,005 users past their deadline: the dry run
// and the real run count all of them and list the first 1,000 by user id,
// with truncated: true.
func TestCleanupReportTruncates(t *testing.T) {
	clock := testkit.NewFakeClock(time.Now())
	n := startNode(t, node.Config{Clock: clock})
	admin := n.admin(t)
	const users = 1005
	rest := testkit.NewREST(n.Addr(), testkit.NewTokens([]byte(testSecret)))
	work := make(chan int64)
	errs := make(chan error, users)
	for range 8 {
		go func() {
			for id := range work {
				errs <- rest.Heartbeat(id)
			}
		}()
	}
	go func() {
		// Descending, so the list's order is the server's doing.
		for id := int64(users); id >= 1; id-- {
			work <- id
		}
		close(work)
	}()
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	clock.Jump(time.Hour)
	for _, r := range []Cleanup{admin.cleanupDryRun("dry_run=true"), admin.cleanup()} {
		if r.UsersMarkedOffline != users || !r.Truncated || len(r.Users) != wire.CleanupReportLimit {
			t.Fatalf("cleanup (dry_run %v): %d offline, truncated %v, %d users listed; want %d, true, %d",
				r.DryRun, r.UsersMarkedOffline, r.Truncated, len(r.Users), users, wire.CleanupReportLimit)
		}
		for i, u := range r.Users {
			if u.UserID != int64(i+1) || !u.MarkOffline || u.ClearBusy {
				t.Fatalf("cleanup (dry_run %v): users[%d] = %+v, want user %d marked offline", r.DryRun, i, u, i+1)
			}
		}
	}
}
