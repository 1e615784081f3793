//go:build !race

package clustere2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestHeartbeatAdviceSurvivesAnOwnerMove: node A, over its heartbeat
// budget, advises a longer interval and its users stay online for as much
// longer. When the owner of some of them (B) drains, A activates them; a
// client following the advice must not go offline in the move, although
// the longer deadline lived in B's actors and the store has only
// last_seen.
func TestHeartbeatAdviceSurvivesAnOwnerMove(t *testing.T) {
	const offlineAfter = 3 * time.Second // base advice 1 s
	c := newCluster(t, node.Config{
		Actors:    actors.Config{OfflineAfter: offlineAfter},
		API:       api.Config{HeartbeatBudget: 5, WriteRate: -1},
		DrainWait: 300 * time.Millisecond,
	})
	a, b := c.Start("A"), c.Start("B")
	c.waitConverged([]*tnode{a, b}, nil, 15*time.Second)
	users := c.usersOwnedBy(b, 10, 1000)

	// Ten users heartbeating through A every 0.3 s: about 33 a second
	// against a budget of 5, until A advises at least three times the base.
	var advised time.Duration
	var last time.Time
	if _, err := testkit.Poll(20*time.Second, 300*time.Millisecond, func() error {
		for _, u := range users {
			h, err := a.API.HeartbeatAdvice(u)
			if err != nil {
				return err
			}
			advised = time.Duration(h.HeartbeatIntervalSeconds) * time.Second
		}
		last = time.Now()
		if advised < 3*time.Second {
			return fmt.Errorf("advice %v", advised)
		}
		return nil
	}); err != nil {
		t.Fatalf("A never advised a longer interval: %v", err)
	}
	stayOnline := actors.AdvisedOfflineAfter(offlineAfter, advised)
	t.Logf("A advises %v: users stay online %v after a heartbeat", advised, stayOnline)

	// The clients follow the advice: no heartbeat for advised. Meanwhile
	// B drains and its users move to A.
	if err := c.shutdown(b); err != nil {
		t.Fatal(err)
	}
	c.waitConverged([]*tnode{a}, nil, 15*time.Second)
	for time.Since(last) < advised {
		for _, u := range users {
			p, err := a.API.Presence(testkit.AdminID, u)
			if err != nil {
				t.Fatal(err)
			}
			if !p.IsOnline {
				t.Fatalf("user %d went offline %v after its last heartbeat, within the advised interval %v (offline_after %v)",
					u, time.Since(last).Round(time.Millisecond), advised, offlineAfter)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
