//go:build !race

package clustere2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestLastSeenFollowsAMovedUser: a user's new owner loads the user from the
// store and keeps what it read until the user's next touch, so the old
// owner must write its pending last_seen touches as soon as ownership
// moves, not at its next flush (an hour away here), and hand its newest
// last_seen to the new owner with the user. Both ways a user moves without
// a crash: a member joins, and the owner drains.
func TestLastSeenFollowsAMovedUser(t *testing.T) {
	base := node.Config{LastSeenFlush: time.Hour, DrainWait: 2 * time.Second}
	t.Run("a member joins", func(t *testing.T) {
		c := newCluster(t, base)
		a := c.Start("A")
		users := make([]int64, 40)
		for i := range users {
			users[i] = int64(i + 1)
		}
		want := touchTwice(t, a, users)
		b := c.Start("B")
		c.waitConverged([]*tnode{a, b}, users, 15*time.Second)
		// A flushes when it sees B join; B may load a user first only if a
		// request for it arrives in that moment, which this test avoids.
		testkit.Eventually(t, 5*time.Second, "A wrote its pending touches after the join", func() error {
			if n := pendingTouches(t, a); n != 0 {
				return fmt.Errorf("%v touches still pending", n)
			}
			return nil
		})
		// B may have loaded a user in the moment before A's write (its
		// start-up re-arm, or A's handoff of a user with timers running);
		// the handoff carries A's last_seen, so B shows it at the latest
		// once the handoff arrived.
		var moved []int64
		for _, u := range users {
			if c.owner(b, u) == b {
				moved = append(moved, u)
			}
		}
		testkit.Eventually(t, 5*time.Second, "B shows the moved users' last touch", func() error {
			for _, u := range moved {
				if got := b.API.Must(t).GetStatus(u).LastSeen; got == nil || !got.Equal(want[u]) {
					return fmt.Errorf("user %d read through B: last_seen %v, want %s (the old owner's last touch)", u, got, want[u])
				}
			}
			return nil
		})
		if len(moved) == 0 {
			t.Fatal("no user moved to B")
		}
		t.Logf("%d of %d users moved to B with their last_seen", len(moved), len(users))
	})
	t.Run("the owner drains", func(t *testing.T) {
		c := newCluster(t, base)
		a, b := c.Start("A"), c.Start("B")
		users := c.usersOwnedBy(a, 10, 1)
		c.waitConverged([]*tnode{a, b}, users, 15*time.Second)
		want := touchTwice(t, a, users)
		done := make(chan error, 1)
		go func() { done <- c.shutdown(a) }()
		// A writes its touches before it announces the drain: the first
		// read through B after B took the users over must show them.
		testkit.Eventually(t, 10*time.Second, "B owns A's users", func() error {
			if o := b.Router().Owner(users[0]); o != b.member {
				return fmt.Errorf("owner %s", o)
			}
			return nil
		})
		for _, u := range users {
			checkLastSeen(t, b, u, want[u])
		}
		if err := <-done; err != nil {
			t.Errorf("A's shutdown: %v", err)
		}
	})
}

// touchTwice makes users online through n, then heartbeats them again a
// moment later, which changes only last_seen: written behind. It returns
// each user's last_seen as the owner shows it after the second heartbeat,
// and checks that those touches wait in n's write-behind.
func touchTwice(t *testing.T, n *tnode, users []int64) map[int64]time.Time {
	t.Helper()
	first := make(map[int64]time.Time, len(users))
	for _, u := range users {
		n.API.Must(t).Heartbeat(u)
		first[u] = *n.API.Must(t).GetStatus(u).LastSeen
	}
	time.Sleep(50 * time.Millisecond)
	want := make(map[int64]time.Time, len(users))
	for _, u := range users {
		n.API.Must(t).Heartbeat(u)
		want[u] = *n.API.Must(t).GetStatus(u).LastSeen
		if !want[u].After(first[u]) {
			t.Fatalf("user %d: the second heartbeat left last_seen at %s", u, want[u])
		}
	}
	if p := pendingTouches(t, n); p < float64(len(users)) {
		t.Fatalf("%v touches pending in %s's write-behind, want %d", p, n.label, len(users))
	}
	return want
}

func pendingTouches(t *testing.T, n *tnode) float64 {
	t.Helper()
	v, err := n.API.Metric("presence_store_last_seen_pending")
	if err != nil {
		t.Fatalf("%s: %v", n.label, err)
	}
	return v
}

func checkLastSeen(t *testing.T, via *tnode, u int64, want time.Time) {
	t.Helper()
	st := via.API.Must(t).GetStatus(u)
	if st.LastSeen == nil || !st.LastSeen.Equal(want) {
		t.Errorf("user %d read through %s: last_seen %v, want %s (the old owner's last touch)", u, via.label, st.LastSeen, want)
	}
}
