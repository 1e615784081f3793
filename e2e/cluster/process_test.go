package clustere2e

// Multi-process test: three presenced processes form a cluster over
// loopback. Each process has one protoactor-go remote, so this file runs
// under -race as well.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestProcessesSurviveSIGKILL: three presenced processes (memory store
// each, shared JWT secret, seed lists) serve REST and WebSocket; one is
// SIGKILLed while users heartbeat every 200ms through the two others. The
// survivors keep answering for every user, the dead node's included: with
// a memory store its users' records die with it, and the next heartbeat
// creates them again on their new owner, so a GET after a heartbeat
// succeeds. Users that keep heartbeating stay online: their subscribers
// never see is_online false.
func TestProcessesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cmd/presenced")
	}
	const offlineAfter = 3 * time.Second
	bin := testkit.BuildPresenced(t)
	tok := newTokens()

	c := testkit.NewProcCluster(t, bin, tok, 3, map[string]string{
		"PRESENCE_STORE":            "memory",
		"PRESENCE_OFFLINE_AFTER":    offlineAfter.String(),
		"PRESENCE_DISCONNECT_GRACE": "2s",
	})
	procs := make([]*testkit.Proc, 3)
	for i := range procs {
		procs[i] = c.Start(i)
	}
	p1, p2 := procs[0], procs[1]

	// All three up and agreeing on three alive members.
	took := testkit.Eventually(t, 30*time.Second, "three processes form a cluster", func() error {
		var views []string
		bad := false
		for _, p := range procs {
			select {
			case <-p.Exited():
				t.Fatalf("%s exited:\n    %s", p.Name(), p.Tail(40))
			default:
			}
			st, err := p.API.Cluster()
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", p.Name(), err))
				bad = true
				continue
			}
			views = append(views, fmt.Sprintf("%s (gossip %s) sees %s", p.Name(), p.Gossip, st))
			if len(st.Members) != 3 || testkit.AliveOwners(st) != 3 {
				bad = true
			}
		}
		if bad {
			return fmt.Errorf("\n  %s", strings.Join(views, "\n  "))
		}
		return nil
	})
	t.Logf("cluster of 3 processes formed %v after the starts", took.Round(time.Millisecond))

	var users []int64
	for u := int64(3401); u <= 3412; u++ {
		users = append(users, u)
	}
	// REST through every process, for every user.
	for i, u := range users {
		p := procs[i%3]
		p.API.Must(t).Heartbeat(u)
		st := p.API.Must(t).PutStatus(u, `{"is_busy": true}`)
		if !st.IsBusy || !st.IsOnline {
			t.Fatalf("PUT through %s: %s", p.Name(), st)
		}
		st = procs[(i+1)%3].API.Must(t).PutStatus(u, `{"is_busy": false}`)
		if st.IsBusy || st.Version < 3 {
			t.Fatalf("PUT through %s: %s", procs[(i+1)%3].Name(), st)
		}
		for _, q := range procs {
			if got := q.API.Must(t).Presence(testkit.AdminID, u); !testkit.SamePresence(got, Presence{UserID: u, IsOnline: true, Version: st.Version}) {
				t.Fatalf("GET presence of %d through %s: %s, want %s", u, q.Name(), got, st)
			}
		}
	}
	if got := p2.API.Must(t).Batch(testkit.AdminID, users); len(got) != len(users) {
		t.Fatalf("batch through p2: %d records, want %d", len(got), len(users))
	}
	h, err := p1.API.Hosted()
	if err != nil {
		t.Fatal(err)
	}
	if h["p3"] == 0 {
		t.Fatalf("p3 hosts no user (actors_hosted %v): the test needs users owned by the node it kills", h)
	}
	t.Logf("actors hosted before the kill: %v", h)

	subs := []*testkit.WSConn{
		testkit.MustDialUser(t, p1.HTTP, tok, 8301, users),
		testkit.MustDialUser(t, p2.HTTP, tok, 8302, users),
	}
	for _, s := range subs {
		if !s.WaitFor(10*time.Second, func() bool {
			for _, u := range users {
				if p, ok := s.Last(u); !ok || !p.IsOnline {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("no online snapshot of every user:\n%s", s.Dump(20))
		}
	}

	hb := startHeartbeats(users, []*testkit.REST{p1.API, p2.API}, 200*time.Millisecond)
	t.Cleanup(hb.halt)
	time.Sleep(500 * time.Millisecond) // heartbeats run (not an assertion)

	killed := time.Now()
	c.Kill9(2)

	// Every user is answered again through both survivors (a heartbeat
	// re-creates the users p3 held).
	failover := testkit.Eventually(t, 30*time.Second, "every user served by the survivors", func() error {
		for _, p := range []*testkit.Proc{p1, p2} {
			for _, u := range users {
				got, err := p.API.Presence(testkit.AdminID, u)
				if err != nil {
					return fmt.Errorf("user %d through %s: %v", u, p.Name(), err)
				}
				if !got.IsOnline {
					return fmt.Errorf("user %d through %s: %s", u, p.Name(), got)
				}
			}
		}
		return nil
	})
	t.Logf("every user served through p1 and p2 %v after SIGKILL of p3", failover.Round(time.Millisecond))
	testkit.Eventually(t, 30*time.Second, "survivors see 2 members", func() error {
		for _, p := range []*testkit.Proc{p1, p2} {
			st, err := p.API.Cluster()
			if err != nil {
				return err
			}
			if len(st.Members) != 2 || testkit.AliveOwners(st) != 2 {
				return fmt.Errorf("%s sees %s", p.Name(), st)
			}
		}
		return nil
	})
	t.Logf("survivors report 2 members %v after the kill", time.Since(killed).Round(time.Millisecond))

	// Keep heartbeating past offline_after (not an assertion), then check
	// that no subscriber ever saw a heartbeating user offline.
	time.Sleep(offlineAfter + time.Second)
	hb.halt()
	for _, s := range subs {
		for _, u := range users {
			for _, p := range s.Updates(u) {
				if !p.IsOnline {
					t.Errorf("%s: heartbeating user %d pushed offline: %s at %s (kill at %s)", s.Name, u, p,
						p.At.Format("15:04:05.000"), killed.Format("15:04:05.000"))
				}
			}
		}
	}
	hb.mu.Lock()
	var report bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&report, "\n  user %d: longest gap %v, %d failed heartbeats", u, hb.maxGap[u].Round(time.Millisecond), len(hb.failures[u]))
		for _, f := range hb.failures[u] {
			fmt.Fprintf(&report, "\n    %s", f)
		}
	}
	hb.mu.Unlock()
	t.Logf("heartbeats through the survivors:%s", report.String())
}
