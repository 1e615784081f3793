//go:build !race

package clustere2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// presenceEverywhere asserts that GET /users/{id}/presence answers want
// through every node.
func presenceEverywhere(t *testing.T, nodes []*tnode, id int64, want func(Presence) error) Presence {
	t.Helper()
	var first Presence
	for i, n := range nodes {
		p, err := n.API.Presence(testkit.AdminID, id)
		if err != nil {
			t.Fatalf("GET /users/%d/presence through %s: %v", id, n.label, err)
		}
		if err := want(p); err != nil {
			t.Fatalf("GET /users/%d/presence through %s: %v: %s", id, n.label, err, p)
		}
		if i == 0 {
			first = p
		} else if !testkit.SamePresence(p, first) {
			t.Fatalf("user %d: %s answers %s, %s answers %s", id, nodes[0].label, first, n.label, p)
		}
	}
	return first
}

// TestThreeNodesServeEveryEndpoint: every REST endpoint answers through
// every node for users owned by every node, the batch mixes owners, a
// WebSocket subscriber on one node sees changes made through another to a
// user owned by a third, GET /admin/cluster lists the members and the
// actors each hosts, and an admin cleanup sums the counts of all nodes.
//
// The nodes run on a clock whose timers never fire, so the cleanup, and
// nothing else, settles the deadlines the test makes overdue.
func TestThreeNodesServeEveryEndpoint(t *testing.T) {
	clock := &testkit.LateClock{}
	c := newCluster(t, node.Config{Clock: clock})
	a, b, cc := c.Start("A"), c.Start("B"), c.Start("C")
	nodes := []*tnode{a, b, cc}
	took := c.waitConverged(nodes, nil, 15*time.Second)
	t.Logf("3 nodes converged %v after the last start", took)

	// Two users owned by each node.
	var users []int64
	ownerOf := map[int64]*tnode{}
	for i, n := range nodes {
		for _, id := range c.usersOwnedBy(n, 2, int64(1000*(i+1))) {
			users = append(users, id)
			ownerOf[id] = n
		}
	}
	t.Logf("users %v owned by %s %s %s", users, ownerOf[users[0]].label, ownerOf[users[2]].label, ownerOf[users[4]].label)

	// Every /users/me endpoint through every node, for every user.
	for _, u := range users {
		var cur uint64
		for i, via := range nodes {
			st := via.API.Must(t).GetStatus(u)
			if i == 0 {
				// A new record's version is its creation's clock (µs).
				if st.CreatedAt == nil || st.Version != uint64(st.CreatedAt.UnixMicro()) || st.IsOnline || st.IsBusy || st.UserID != u {
					t.Fatalf("first GET /users/me/status of %d through %s: %s, want a new offline record at the version of its created_at", u, via.label, st)
				}
			} else if st.Version != cur {
				t.Fatalf("GET /users/me/status of %d through %s: version %d, want %d", u, via.label, st.Version, cur)
			}
			cur = st.Version

			st = via.API.Must(t).PutStatus(u, `{"is_busy": true}`)
			if !st.IsBusy || st.BusyUntil != nil || st.Version != cur+1 {
				t.Fatalf("PUT is_busy of %d through %s: %s, want busy at version %d", u, via.label, st, cur+1)
			}
			cur = st.Version
			presenceEverywhere(t, nodes, u, func(p Presence) error {
				if !p.IsBusy || p.Version != cur {
					return fmt.Errorf("want busy at version %d", cur)
				}
				return nil
			})

			if err := via.API.Heartbeat(u); err != nil {
				t.Fatalf("heartbeat of %d through %s: %v", u, via.label, err)
			}
			if i == 0 {
				cur++ // the first heartbeat makes the user online
			}
			presenceEverywhere(t, nodes, u, func(p Presence) error {
				if !p.IsOnline || !p.IsBusy || p.Version != cur || p.LastSeen == nil {
					return fmt.Errorf("want online and busy at version %d", cur)
				}
				return nil
			})

			st = via.API.Must(t).PutStatus(u, `{"is_busy": false}`)
			if st.IsBusy || st.BusyUntil != nil || !st.IsOnline || st.Version != cur+1 {
				t.Fatalf("PUT is_busy false of %d through %s: %s, want online, not busy, version %d", u, via.label, st, cur+1)
			}
			cur = st.Version
			// GET /users/me/status through the next node sees it too.
			next := nodes[(i+1)%len(nodes)]
			if st2 := next.API.Must(t).GetStatus(u); st2.Version != cur || st2.IsBusy || !st2.IsOnline {
				t.Fatalf("GET /users/me/status of %d through %s after a PUT through %s: %s, want version %d", u, next.label, via.label, st2, cur)
			}
		}
	}

	// The batch mixes owners, keeps the request's order and leaves out an
	// unknown user, through every node.
	const unknown = 999_999
	ask := []int64{users[5], users[0], unknown, users[3], users[1], users[4], users[2]}
	for _, via := range nodes {
		got := via.API.Must(t).Batch(testkit.AdminID, ask)
		want := []int64{users[5], users[0], users[3], users[1], users[4], users[2]}
		if len(got) != len(want) {
			t.Fatalf("batch through %s: %d records %v, want %d", via.label, len(got), got, len(want))
		}
		for i, p := range got {
			single := via.API.Must(t).Presence(testkit.AdminID, want[i])
			if !testkit.SamePresence(p, single) {
				t.Fatalf("batch through %s, record %d: %s, single GET says %s", via.label, i, p, single)
			}
		}
	}

	// WebSocket: a subscriber on every node, each watching every user.
	subs := map[string]*testkit.WSConn{}
	watchers := map[string]int64{"A": 8001, "B": 8002, "C": 8003}
	for _, n := range nodes {
		subs[n.label] = testkit.MustDialUser(t, n.HTTPAddr(), c.tok, watchers[n.label], users)
	}
	for _, n := range nodes {
		s := subs[n.label]
		for _, u := range users {
			want := n.API.Must(t).Presence(testkit.AdminID, u)
			if !s.WaitFor(10*time.Second, func() bool { p, ok := s.Last(u); return ok && testkit.SamePresence(p, want) }) {
				t.Fatalf("subscriber on %s: no snapshot %s of user %d:\n%s", n.label, want, u, s.Dump(20))
			}
		}
	}
	// A change through every node to every user reaches every subscriber;
	// among them, a subscriber on A sees a change to a user owned by C made
	// through B.
	sawACB := false
	for _, u := range users {
		for _, via := range nodes {
			until := time.Now().Add(time.Hour).Add(time.Duration(u) * time.Microsecond).Truncate(time.Microsecond)
			st := via.API.Must(t).PutStatus(u, `{"busy_until": "`+testkit.RFC3339(until)+`"}`)
			if !st.IsBusy || st.BusyUntil == nil || !st.BusyUntil.Equal(until) {
				t.Fatalf("PUT busy_until of %d through %s: %s, want busy until %s", u, via.label, st, testkit.RFC3339(until))
			}
			for _, n := range nodes {
				s := subs[n.label]
				if !s.WaitFor(10*time.Second, func() bool {
					p, ok := s.Last(u)
					return ok && p.Version == st.Version && p.IsBusy && p.BusyUntil != nil && p.BusyUntil.Equal(until)
				}) {
					t.Fatalf("subscriber on %s did not get the change %s of user %d (owned by %s) made through %s:\n%s",
						n.label, st, u, ownerOf[u].label, via.label, s.Dump(20))
				}
				if n == a && ownerOf[u] == cc && via == b {
					sawACB = true
				}
			}
		}
	}
	if !sawACB {
		t.Fatal("no change to a user of C made through B was checked on A")
	}

	// GET /admin/cluster through every node: 3 alive members, and each
	// hosts exactly the actors of the users (and watchers) it owns.
	wantHosted := map[string]int64{}
	for _, id := range append(append([]int64(nil), users...), 8001, 8002, 8003) {
		wantHosted[c.owner(a, id).label]++
	}
	for _, via := range nodes {
		testkit.Eventually(t, 10*time.Second, "actors_hosted through "+via.label, func() error {
			st, err := via.API.Cluster()
			if err != nil {
				return err
			}
			if st.Standalone || len(st.Members) != 3 || testkit.AliveOwners(st) != 3 {
				return fmt.Errorf("%s", st)
			}
			selves := 0
			for _, m := range st.Members {
				if m.Self {
					selves++
					if m.Name != via.member || st.Node != via.member {
						return fmt.Errorf("self is %s, want %s", m.Name, via.member)
					}
				}
				if m.ActorsHosted == nil || *m.ActorsHosted != wantHosted[m.NodeName] {
					return fmt.Errorf("%s: want actors_hosted %v", st, wantHosted)
				}
			}
			if sum, _ := testkit.HostedSum(st); sum != int64(len(users)+3) || selves != 1 {
				return fmt.Errorf("%s: sum %d, want %d active users", st, sum, len(users)+3)
			}
			return nil
		})
	}

	// Admin cleanup: nothing is overdue yet.
	for _, via := range nodes {
		if cl := via.API.Must(t).Cleanup(); cl.UsersMarkedOffline != 0 || cl.BusyStatusCleared != 0 || cl.Message != "Presence cleanup completed" {
			t.Fatalf("cleanup through %s before any deadline: %+v, want zero counts", via.label, cl)
		}
	}
	before := map[int64]Presence{}
	for _, u := range users {
		before[u] = a.API.Must(t).Presence(testkit.AdminID, u)
	}
	// Two hours later (timers late): every user's inactivity deadline
	// (5 minutes) and busy_until (1 hour) have passed; the watchers stay
	// online (their WebSocket is open). The counts of all three nodes add
	// up: each owns two of the six users.
	clock.Jump(2 * time.Hour)
	cl := b.API.Must(t).Cleanup()
	if cl.UsersMarkedOffline != int64(len(users)) || cl.BusyStatusCleared != int64(len(users)) {
		t.Fatalf("cleanup through B after the deadlines: %+v, want %d marked offline and %d busy cleared (two per node)", cl, len(users), len(users))
	}
	for _, u := range users {
		p := presenceEverywhere(t, nodes, u, func(p Presence) error {
			if p.IsOnline || p.IsBusy || p.BusyUntil != nil || p.Version != before[u].Version+1 {
				return fmt.Errorf("want offline, not busy, version %d (one change for both transitions)", before[u].Version+1)
			}
			return nil
		})
		for _, n := range nodes {
			s := subs[n.label]
			if !s.WaitFor(10*time.Second, func() bool { q, ok := s.Last(u); return ok && testkit.SamePresence(q, p) }) {
				t.Fatalf("subscriber on %s did not get the cleanup's change %s:\n%s", n.label, p, s.Dump(20))
			}
		}
	}
	for _, w := range []int64{8001, 8002, 8003} {
		if p := a.API.Must(t).Presence(testkit.AdminID, w); !p.IsOnline {
			t.Errorf("watcher %d with an open WebSocket: %s, want online", w, p)
		}
	}
	if cl := cc.API.Must(t).Cleanup(); cl.UsersMarkedOffline != 0 || cl.BusyStatusCleared != 0 {
		t.Fatalf("second cleanup through C: %+v, want zero counts", cl)
	}
}

// TestWholeClusterRestart: three nodes leave users online and busy in the
// shared store and all crash; once the deadlines have passed, three new
// nodes start on the same store. The stored records are settled by the
// new nodes (startup re-arm), whatever node each user lands on, and the
// transitions are counted exactly once, by the startup re-arms' logs or by
// a later admin cleanup (each node's re-arm covers the users it owns in its
// view at that moment; a later cleanup finds nothing left).
func TestWholeClusterRestart(t *testing.T) {
	clock := &testkit.LateClock{}
	c := newCluster(t, node.Config{Clock: clock})
	old := []*tnode{c.Start("A"), c.Start("B"), c.Start("C")}
	c.waitConverged(old, nil, 15*time.Second)
	var users []int64
	for i, n := range old {
		users = append(users, c.usersOwnedBy(n, 2, int64(1000*(i+1)))...)
	}
	before := map[int64]Status{}
	for i, u := range users {
		via := old[i%3]
		if err := via.API.Heartbeat(u); err != nil {
			t.Fatal(err)
		}
		before[u] = via.API.Must(t).PutStatus(u, `{"busy_until": "`+testkit.RFC3339(time.Now().Add(time.Hour))+`"}`)
		if !before[u].IsOnline || !before[u].IsBusy {
			t.Fatalf("user %d: %s, want online and busy", u, before[u])
		}
	}
	for _, n := range old {
		c.kill(n)
	}
	clock.Jump(2 * time.Hour)

	fresh := []*tnode{c.Start("A2"), c.Start("B2"), c.Start("C2")}
	c.waitConverged(fresh, users, 15*time.Second)

	t.Run("stored_records_settled", func(t *testing.T) {
		for _, u := range users {
			testkit.Eventually(t, 10*time.Second, fmt.Sprintf("user %d settled", u), func() error {
				for _, n := range fresh {
					p, err := n.API.Presence(testkit.AdminID, u)
					if err != nil {
						return fmt.Errorf("through %s: %v", n.label, err)
					}
					if p.IsOnline || p.IsBusy || p.BusyUntil != nil || p.Version != before[u].Version+1 {
						return fmt.Errorf("through %s: %s, want offline, not busy, version %d", n.label, p, before[u].Version+1)
					}
				}
				return nil
			})
		}
	})

	t.Run("transitions_counted", func(t *testing.T) {
		// Every new node has re-armed at least once (at start).
		testkit.Eventually(t, 10*time.Second, "startup re-arm of every new node", func() error {
			for _, n := range fresh {
				if runs, _, _ := rearmCounts(n.logs); runs == 0 {
					return fmt.Errorf("node %s has not logged \"stored timers re-armed\"", n.label)
				}
			}
			return nil
		})
		cl := fresh[0].API.Must(t).Cleanup()
		var offline, busy int64
		for _, n := range fresh {
			_, o, b := rearmCounts(n.logs)
			offline += o
			busy += b
		}
		t.Logf("startup re-arms counted %d offline / %d busy cleared; cleanup afterwards %+v", offline, busy, cl)
		offline += cl.UsersMarkedOffline
		busy += cl.BusyStatusCleared
		if offline != int64(len(users)) || busy != int64(len(users)) {
			t.Errorf("the restart settled %d users offline and %d busy, but the startup re-arms and the admin cleanup together counted %d offline and %d busy cleared",
				len(users), len(users), offline, busy)
		}
	})
}

// TestConcurrentSubscribersSeeEveryone: users come online by connecting
// their WebSockets, all at once, each subscribing to all of them through
// the node it connected to. Every session must see every user online.
// Regression: a session that subscribed while its hub's first Watch of a
// user was on its way read the user's snapshot, which could predate the
// change the actor made before it took the Watch (so pushed to nobody on
// that node); such a session never saw the user online.
func TestConcurrentSubscribersSeeEveryone(t *testing.T) {
	c := newCluster(t, node.Config{})
	nodes := []*tnode{c.Start("A"), c.Start("B"), c.Start("C")}
	c.waitConverged(nodes, nil, 15*time.Second)

	const users, rounds = 12, 5
	for round := range rounds {
		ids := make([]int64, users)
		for i := range ids {
			ids[i] = int64(70000 + 100*round + i)
		}
		subs := make([]*testkit.WSConn, users)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := testkit.DialUser(nodes[i%3].HTTPAddr(), c.tok, id, ids)
				if err != nil {
					t.Error(err)
					return
				}
				subs[i] = s
			}()
		}
		wg.Wait()
		for _, s := range subs {
			if s != nil {
				t.Cleanup(s.Close)
			}
		}
		if t.Failed() {
			return
		}
		for i, s := range subs {
			missing := func() []int64 {
				var out []int64
				for _, id := range ids {
					if p, _ := s.Last(id); !p.IsOnline {
						out = append(out, id)
					}
				}
				return out
			}
			if !s.WaitFor(10*time.Second, func() bool { return len(missing()) == 0 }) {
				t.Fatalf("round %d: session of %d (node %s) never saw %v online\n%s", round, ids[i], nodes[i%3].label, missing(), s.Dump(40))
			}
		}
	}
}
