package clustere2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestPGKillRestartKeepsAnsweredChanges: three presenced processes share a
// PostgreSQL schema. 60 users get busy statuses through random nodes (half
// of them with busy_until a few seconds ahead), every answer recorded; one
// node is SIGKILLed and started again on the same ports. Every answered
// change is still there, read through any node and in the database, and
// every busy timer fires on time on whichever node owns the user now,
// including the users the killed node owned: within 1.5s of busy_until, or
// for deadlines that fell while the dead node still owned the user (before
// the survivors declared it dead), within 1.5s of the users being served
// again.
func TestPGKillRestartKeepsAnsweredChanges(t *testing.T) {
	pc := startPGCluster(t, map[string]string{
		"PRESENCE_OFFLINE_AFTER":    "10m",
		"PRESENCE_DISCONNECT_GRACE": "3s",
	}, false)
	c, conn := pc.c, pc.conn

	const n = 60
	users := testkit.UserIDs(5101, n)
	rng := rand.New(rand.NewPCG(5, 1))
	last := map[int64]Status{}
	owner := map[int64]string{}

	// Pass 1, one user at a time: a first heartbeat creates the user on
	// its owner, whose actors_hosted grows by one (the actor stays: its
	// inactivity timer runs), then a PUT makes it busy.
	prev, err := c.Hosted(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		c.Proc(rng.IntN(3)).API.Must(t).Heartbeat(u)
		p := c.Proc(rng.IntN(3))
		st := p.API.Must(t).PutOwn(u, `{"is_busy": true}`)
		if !st.IsBusy || !st.IsOnline || st.CreatedAt == nil || st.Version != uint64(st.CreatedAt.UnixMicro())+1 {
			t.Fatalf("PUT through %s: %s", p.Name(), st)
		}
		last[u] = st
		cur, err := c.Hosted(0)
		if err != nil {
			t.Fatal(err)
		}
		var grew []string
		moved := 0
		for name, k := range cur {
			if k != prev[name] {
				moved++
			}
			if k == prev[name]+1 {
				grew = append(grew, name)
			}
		}
		if len(grew) == 1 && moved == 1 {
			owner[u] = grew[0]
		}
		prev = cur
	}
	count := map[string]int{}
	for _, u := range users {
		count[owner[u]]++
	}
	t.Logf("owners before the kill (by actors_hosted): %v", count)

	// Pass 2, concurrent, through random nodes: kinds by index.
	//   0 mod 4: online=false, busy with no end   (state must stay)
	//   2 mod 4: busy until an hour from now       (state must stay)
	//   1, 3 mod 4: busy until about kill + 2.5s..17s (timer must fire)
	const victim = 2 // p3
	timerUsers := []int64{}
	for i, u := range users {
		if i%2 == 1 {
			timerUsers = append(timerUsers, u)
		}
	}
	// Deadlines 500ms apart from about 2.5s after the kill on, in random order,
	// so the killed node's users have some before and some after the
	// survivors take over.
	rng.Shuffle(len(timerUsers), func(a, b int) { timerUsers[a], timerUsers[b] = timerUsers[b], timerUsers[a] })
	anchor := time.Now().Add(time.Second)
	due := map[int64]time.Time{}
	for k, u := range timerUsers {
		due[u] = anchor.Add(1500*time.Millisecond + time.Duration(k)*500*time.Millisecond).Truncate(time.Microsecond)
	}
	victimTimers := 0
	for _, u := range timerUsers {
		if owner[u] == c.Name(victim) {
			victimTimers++
		}
	}
	if victimTimers == 0 {
		t.Fatalf("%s owns no timer user (owners %v): the test needs some", c.Name(victim), count)
	}
	hour := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, u := range users {
		var body string
		switch i % 4 {
		case 0:
			body = `{"is_online": false, "is_busy": true}`
		case 2:
			body = `{"busy_until": "` + testkit.RFC3339(hour) + `"}`
		default:
			body = `{"is_busy": true, "busy_until": "` + testkit.RFC3339(due[u]) + `"}`
		}
		p := c.Proc(rng.IntN(3))
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := p.API.PutOwn(u, body)
			if err != nil {
				t.Errorf("PUT %s as %d through %s: %v", body, u, p.Name(), err)
				return
			}
			mu.Lock()
			last[u] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, u := range timerUsers {
		if st := last[u]; st.BusyUntil == nil || !st.BusyUntil.Equal(due[u]) {
			t.Fatalf("user %d: answered %s, want busy_until %s", u, st, due[u].Format(time.RFC3339Nano))
		}
	}

	killed := time.Now()
	c.Kill9(victim)
	time.Sleep(time.Second) // down for a second before the restart (not an assertion)
	restarted := time.Now()
	c.Start(victim)

	// acceptable: the last answered state, or for a timer user whose
	// deadline passed, that state with the busy status cleared by one more
	// version.
	acceptable := func(u int64, got Presence, now time.Time) error {
		want := last[u]
		if testkit.SamePresence(got, Presence{UserID: u, IsOnline: want.IsOnline, IsBusy: want.IsBusy, BusyUntil: want.BusyUntil, Version: want.Version}) {
			return nil
		}
		if d, ok := due[u]; ok && !now.Before(d) &&
			testkit.SamePresence(got, Presence{UserID: u, IsOnline: want.IsOnline, Version: want.Version + 1}) {
			return nil
		}
		return fmt.Errorf("user %d (owner was %s): got %s, answered %s", u, owner[u], got, want)
	}
	// Served: every user through every node, with an acceptable state.
	servedAfter := testkit.Eventually(t, 45*time.Second, "every user served through every node after the kill and restart", func() error {
		c.CheckAlive()
		for i := range 3 {
			p := c.Proc(i)
			for lo := 0; lo < n; lo += 50 {
				ids := users[lo:min(lo+50, n)]
				got, err := p.API.Batch(testkit.AdminID, ids)
				if err != nil {
					return fmt.Errorf("batch through %s: %v", p.Name(), err)
				}
				if len(got) != len(ids) {
					return fmt.Errorf("batch through %s: %d records, want %d", p.Name(), len(got), len(ids))
				}
				now := time.Now()
				for _, g := range got {
					if err := acceptable(g.UserID, g, now); err != nil {
						return fmt.Errorf("through %s: %v", p.Name(), err)
					}
				}
			}
		}
		return nil
	})
	served := time.Now()
	servedKill := served.Sub(killed)
	t.Logf("kill-to-served: %v (restart %v after the kill; check loop %v); every answered change read back through p1, p2, p3",
		servedKill.Round(time.Millisecond), restarted.Sub(killed).Round(time.Millisecond), servedAfter.Round(time.Millisecond))
	c.WaitFormed(30*time.Second, "the restarted node rejoins")
	t.Logf("cluster of 3 again (every node ready, 3 alive owners) %v after the kill", time.Since(killed).Round(time.Millisecond))

	// Wait for the last deadline, then read every user as itself through
	// every node (GET /users/me/status carries updated_at: when the timer
	// applied the change).
	var lastDue time.Time
	for _, d := range due {
		if d.After(lastDue) {
			lastDue = d
		}
	}
	time.Sleep(time.Until(lastDue.Add(1500 * time.Millisecond)))
	c.CheckAlive()

	final := map[int64]Status{}
	type late struct {
		u     int64
		delay time.Duration
		class string
	}
	var lates []late
	for _, u := range users {
		var first Status
		for i := range 3 {
			p := c.Proc(i)
			st, err := p.API.GetOwn(u)
			if err != nil {
				t.Errorf("GET status of %d through %s: %v", u, p.Name(), err)
				continue
			}
			if i == 0 {
				first = st
			} else if !testkit.SameStatus(st, first) {
				t.Errorf("user %d: %s answers %s, p1 answers %s", u, p.Name(), st, first)
			}
		}
		final[u] = first
		want := last[u]
		d, timed := due[u]
		if !timed {
			if !testkit.SameStatus(first, want) {
				t.Errorf("user %d (owner was %s): answered change lost: now %s, last answered %s", u, owner[u], first, want)
			}
			continue
		}
		if first.IsBusy || first.BusyUntil != nil || first.Version != want.Version+1 || first.IsOnline != want.IsOnline {
			t.Errorf("user %d (owner was %s): busy timer due %s did not fire as one change: now %s, answered %s",
				u, owner[u], d.Format("15:04:05.000"), first, want)
			continue
		}
		if first.UpdatedAt == nil {
			t.Errorf("user %d: no updated_at in %s", u, first)
			continue
		}
		delay := first.UpdatedAt.Sub(d)
		class := "survivor-owned"
		limit := d.Add(1500 * time.Millisecond)
		switch owner[u] {
		case "":
			// Owner not identified (actors_hosted moved by other than one):
			// judged as if the killed node owned it.
			class = "owner unknown"
			if d.Before(served) {
				limit = served.Add(1500 * time.Millisecond)
			}
		case c.Name(victim):
			class = "killed-node-owned, due after served"
			if d.Before(served) {
				class = "killed-node-owned, due before served"
				limit = served.Add(1500 * time.Millisecond)
			}
		}
		lates = append(lates, late{u, delay, class})
		if first.UpdatedAt.Before(d) || first.UpdatedAt.After(limit) {
			t.Errorf("user %d (%s): busy timer due %s fired at %s (%v late; limit %s)", u, class,
				d.Format("15:04:05.000"), first.UpdatedAt.Local().Format("15:04:05.000"), delay.Round(time.Millisecond),
				limit.Format("15:04:05.000"))
		}
	}
	byClass := map[string][]time.Duration{}
	for _, l := range lates {
		byClass[l.class] = append(byClass[l.class], l.delay)
	}
	var report []string
	for class, ds := range byClass {
		slices.Sort(ds)
		report = append(report, fmt.Sprintf("%s: %d timers, delay after busy_until min %v median %v max %v", class, len(ds),
			ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond)))
	}
	sort.Strings(report)
	t.Logf("busy timers (kill at %s, served at %s):\n  %s", killed.Format("15:04:05.000"), served.Format("15:04:05.000"),
		strings.Join(report, "\n  "))

	// And the database holds exactly what the nodes answer.
	rows := pgRows(t, conn, users)
	for _, u := range users {
		if r, ok := rows[u]; !ok || !pgRowMatches(r, final[u]) {
			t.Errorf("user %d: database row %+v, nodes answer %s", u, rows[u], final[u])
		}
	}
	c.CheckLogs()
}
