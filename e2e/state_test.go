package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/node"
)

// TestRecordCreatedByFirstMeCall: before a user's first /users/me call its
// presence is 404 and the batch omits it; each /users/me endpoint creates
// it.
func TestRecordCreatedByFirstMeCall(t *testing.T) {
	n := startNode(t, node.Config{})
	watcher := n.user(t, 1, "watcher")
	for _, tc := range []struct {
		name   string
		id     int64
		call   func(c *client)
		online bool
		busy   bool
	}{
		{"GET status", 11, func(c *client) { c.getStatus() }, false, false},
		{"heartbeat", 12, func(c *client) { c.heartbeat() }, true, false},
		{"PUT is_busy", 13, func(c *client) { c.putStatus(`{"is_busy": true}`) }, false, true},
		{"PUT is_online false", 14, func(c *client) { c.putStatus(`{"is_online": false}`) }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watcher := watcher.on(t)
			id := fmt.Sprint(tc.id)
			expectDetail(t, watcher.presenceRaw(id), http.StatusNotFound, "User status not found")
			if got := watcher.batch(id + ",1"); len(got) != 0 {
				t.Fatalf("batch before creation: %+v", got)
			}
			// A refused call creates nothing.
			u := n.user(t, tc.id, "name"+id)
			expectDetail(t, u.putStatusRaw(`{}`), http.StatusBadRequest, "No status fields to update")
			expectDetail(t, watcher.presenceRaw(id), http.StatusNotFound, "User status not found")

			tc.call(u)
			p := watcher.presence(tc.id)
			if p.UserID != tc.id || p.Username != "name"+id || p.IsOnline != tc.online || p.IsBusy != tc.busy || !isNth(t, tc.id, p.Version, 1) {
				t.Fatalf("presence after %s = %+v, want online=%v busy=%v version 1", tc.name, p, tc.online, tc.busy)
			}
			if got := watcher.batch(id); len(got) != 1 || !samePresence(got[0], p) {
				t.Fatalf("batch after creation = %+v, want [%+v]", got, p)
			}
		})
	}
}

// step is one call in a state-rule scenario and what the record must look
// like after it.
type step struct {
	name  string
	do    func(u *client) // the call; PUT bodies use put()
	put   string          // PUT body, when do is nil
	delta uint64          // how much version must have risen
	// expected state after the call
	online, busy bool
	until        *time.Time // busy_until, nil for null
	lastSeenMove bool       // last_seen must be later than before
}

// TestStateRules walks one user through the rules of DESIGN.md, checking
// the full record and the version after every call.
func TestStateRules(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 10, "alice")
	watcher := n.user(t, 20, "watcher")
	f1 := micro(time.Now().Add(time.Hour))
	f2 := micro(time.Now().Add(2 * time.Hour))
	f3 := micro(time.Now().Add(3 * time.Hour))
	hb := func(u *client) { u.heartbeat() }

	steps := []step{
		{name: "first GET creates, offline", do: func(u *client) { u.getStatus() }, delta: 1},
		{name: "heartbeat makes online", do: hb, delta: 1, online: true, lastSeenMove: true},
		{name: "heartbeat that changes nothing visible", do: hb, delta: 0, online: true, lastSeenMove: true},
		{name: "GET is not a change", do: func(u *client) { u.getStatus() }, delta: 0, online: true},
		{name: "is_busy true without busy_until", put: `{"is_busy": true}`, delta: 1, online: true, busy: true, lastSeenMove: true},
		{name: "busy_until alone sets the expiry", put: `{"busy_until": "` + rfc3339(f1) + `"}`, delta: 1, online: true, busy: true, until: &f1, lastSeenMove: true},
		{name: "same busy_until again changes nothing", put: `{"busy_until": "` + rfc3339(f1) + `"}`, delta: 0, online: true, busy: true, until: &f1, lastSeenMove: true},
		{name: "busy_until null removes the expiry, keeps busy", put: `{"busy_until": null}`, delta: 1, online: true, busy: true, lastSeenMove: true},
		{name: "busy_until null when none changes nothing", put: `{"busy_until": null}`, delta: 0, online: true, busy: true, lastSeenMove: true},
		{name: "is_busy false clears busy_until sent alongside", put: `{"is_busy": false, "busy_until": "` + rfc3339(f2) + `"}`, delta: 1, online: true, lastSeenMove: true},
		{name: "busy_until alone implies is_busy", put: `{"busy_until": "` + rfc3339(f2) + `"}`, delta: 1, online: true, busy: true, until: &f2, lastSeenMove: true},
		{name: "seed example body: past busy_until with is_busy false", put: `{"is_online": true, "is_busy": false, "busy_until": "2024-01-15T11:00:00Z"}`, delta: 1, online: true, lastSeenMove: true},
		{name: "is_busy false when not busy changes nothing", put: `{"is_busy": false}`, delta: 0, online: true, lastSeenMove: true},
		{name: "is_online false is offline at once", put: `{"is_online": false}`, delta: 1, lastSeenMove: true},
		{name: "PUT without is_online keeps offline", put: `{"is_busy": true, "busy_until": "` + rfc3339(f3) + `"}`, delta: 1, busy: true, until: &f3, lastSeenMove: true},
		{name: "heartbeat brings it back", do: hb, delta: 1, online: true, busy: true, until: &f3, lastSeenMove: true},
		{name: "PUT without is_online keeps online", put: `{"busy_until": null}`, delta: 1, online: true, busy: true, lastSeenMove: true},
		{name: "is_online true when online changes nothing", put: `{"is_online": true}`, delta: 0, online: true, busy: true, lastSeenMove: true},
		{name: "everything at once", put: `{"is_online": false, "is_busy": false, "busy_until": null}`, delta: 1, lastSeenMove: true},
		{name: "is_online true", put: `{"is_online": true}`, delta: 1, online: true, lastSeenMove: true},
	}

	var prev Status
	for i, s := range steps {
		// last_seen has microsecond resolution: let the clock move.
		time.Sleep(2 * time.Millisecond)
		var st Status
		if s.do != nil {
			s.do(u)
			st = u.getStatus()
		} else {
			st = u.putStatus(s.put)
			if again := u.getStatus(); !sameStatus(again, st) {
				t.Fatalf("step %d %q: GET after PUT %+v differs from the PUT answer %+v", i, s.name, again, st)
			}
		}
		want := prev.Version + s.delta
		if i == 0 {
			want = uint64(st.CreatedAt.UnixMicro()) // the creating change: the clock
		}
		if st.Version != want {
			t.Errorf("step %d %q: version %d, want %d", i, s.name, st.Version, want)
		}
		if st.UserID != 10 || st.IsOnline != s.online || st.IsBusy != s.busy || !timesEqual(st.BusyUntil, s.until) {
			t.Errorf("step %d %q: online=%v busy=%v busy_until=%s, want online=%v busy=%v busy_until=%s",
				i, s.name, st.IsOnline, st.IsBusy, fmtTime(st.BusyUntil), s.online, s.busy, fmtTime(s.until))
		}
		if i > 0 {
			if !st.CreatedAt.Equal(*prev.CreatedAt) {
				t.Errorf("step %d %q: created_at moved from %s to %s", i, s.name, fmtTime(prev.CreatedAt), fmtTime(st.CreatedAt))
			}
			if moved := st.LastSeen.After(*prev.LastSeen); moved != s.lastSeenMove || st.LastSeen.Before(*prev.LastSeen) {
				t.Errorf("step %d %q: last_seen %s -> %s, want moved=%v", i, s.name, fmtTime(prev.LastSeen), fmtTime(st.LastSeen), s.lastSeenMove)
			}
			if changed := !st.UpdatedAt.Equal(*prev.UpdatedAt); changed != (s.delta > 0) {
				t.Errorf("step %d %q: updated_at %s -> %s, want changed=%v", i, s.name, fmtTime(prev.UpdatedAt), fmtTime(st.UpdatedAt), s.delta > 0)
			}
		}
		// Another user sees the same thing at once.
		p := watcher.presence(10)
		if p.IsOnline != st.IsOnline || p.IsBusy != st.IsBusy || !timesEqual(p.BusyUntil, st.BusyUntil) ||
			p.Version != st.Version || !p.LastSeen.Equal(*st.LastSeen) || p.Username != "alice" {
			t.Errorf("step %d %q: presence %+v disagrees with status %+v", i, s.name, p, st)
		}
		if t.Failed() {
			t.FailNow()
		}
		prev = st
	}
}

func sameStatus(a, b Status) bool {
	return a.UserID == b.UserID && a.IsOnline == b.IsOnline && a.IsBusy == b.IsBusy && a.Version == b.Version &&
		timesEqual(a.BusyUntil, b.BusyUntil) && timesEqual(a.LastSeen, b.LastSeen) &&
		timesEqual(a.CreatedAt, b.CreatedAt) && timesEqual(a.UpdatedAt, b.UpdatedAt)
}

func timesEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// TestUsernameFromToken: the name shown is the token's; a new name is a
// visible change (one version), a token without a name keeps the old one.
func TestUsernameFromToken(t *testing.T) {
	n := startNode(t, node.Config{})
	w := n.user(t, 2, "w")
	n.user(t, 1, "first").heartbeat()
	if p := w.presence(1); p.Username != "first" || !isNth(t, 1, p.Version, 1) {
		t.Fatalf("presence %+v", p)
	}
	n.user(t, 1, "second").heartbeat()
	if p := w.presence(1); p.Username != "second" || !isNth(t, 1, p.Version, 2) {
		t.Fatalf("after a heartbeat with a new name: %+v, want second, version 2", p)
	}
	n.user(t, 1, "").heartbeat()
	if p := w.presence(1); p.Username != "second" || !isNth(t, 1, p.Version, 2) {
		t.Fatalf("after a heartbeat without a name: %+v, want second, version 2", p)
	}
	// The name is JSON-escaped.
	odd := "q\"uote\\back\nline\ttab é 😀"
	n.user(t, 1, odd).heartbeat()
	if p := w.presence(1); p.Username != odd || !isNth(t, 1, p.Version, 3) {
		t.Fatalf("odd name: %+v", p)
	}
}

// TestConcurrentWritesOneUser: concurrent changes of one user are
// serialised: every visible change gets its own version, none is lost.
func TestConcurrentWritesOneUser(t *testing.T) {
	n := startNode(t, node.Config{})
	const writers = 24

	// Concurrent first calls create one record.
	var wg sync.WaitGroup
	created := make([]Status, writers)
	errs := make(chan error, 2*writers)
	tok := mint(t, 5, "conc", false)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, n.Base, n.HTTP, tok)
			r, err := c.send(http.MethodGet, "/users/me/status", nil)
			if err != nil || r.Code != http.StatusOK {
				errs <- fmt.Errorf("GET: %v %v", err, r)
				return
			}
			created[i] = decodeStatusQuiet(r.Body)
		}()
	}
	wg.Wait()
	failOn(t, errs)
	for i := range created {
		if nthOf(created[i]) != 1 || !created[i].CreatedAt.Equal(*created[0].CreatedAt) {
			t.Fatalf("concurrent creation: answer %d = %+v, answer 0 = %+v", i, created[i], created[0])
		}
	}

	// Concurrent distinct busy_until values: each is one visible change.
	base := time.Now().Add(time.Hour)
	versions := make([]uint64, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, n.Base, n.HTTP, tok)
			body := fmt.Sprintf(`{"busy_until": %q}`, rfc3339(base.Add(time.Duration(i)*time.Second)))
			r, err := c.send(http.MethodPut, "/users/me/status", []byte(body))
			if err != nil || r.Code != http.StatusOK {
				errs <- fmt.Errorf("PUT: %v %v", err, r)
				return
			}
			versions[i] = decodeStatusQuiet(r.Body).Version
		}()
	}
	wg.Wait()
	failOn(t, errs)
	seen := map[uint64]bool{}
	createdAt := n.user(t, 5, "conc").getStatus().CreatedAt
	for i, v := range versions {
		v -= uint64(createdAt.UnixMicro()) - 1 // counted from the creating change
		versions[i] = v
		if v < 2 || v > writers+1 || seen[v] {
			t.Fatalf("versions answered: %v, want each of 2..%d once", versions, writers+1)
		}
		seen[v] = true
	}
	if st := n.user(t, 5, "conc").getStatus(); nthOf(st) != writers+1 || !st.IsBusy {
		t.Fatalf("final %+v, want version %d", st, writers+1)
	}
}

// decodeStatusQuiet decodes without a *testing.T, for goroutines; a bad
// body gives a zero Status, which the caller's checks catch.
func decodeStatusQuiet(body []byte) Status {
	var s Status
	_ = json.Unmarshal(body, &s)
	return s
}

// failOn fails the test with the errors queued in errs so far.
func failOn(t *testing.T, errs chan error) {
	t.Helper()
	for {
		select {
		case err := <-errs:
			t.Error(err)
		default:
			if t.Failed() {
				t.FailNow()
			}
			return
		}
	}
}

func samePresence(a, b Presence) bool {
	return a.UserID == b.UserID && a.Username == b.Username && a.IsOnline == b.IsOnline && a.IsBusy == b.IsBusy &&
		a.Version == b.Version && timesEqual(a.BusyUntil, b.BusyUntil) && timesEqual(a.LastSeen, b.LastSeen)
}
