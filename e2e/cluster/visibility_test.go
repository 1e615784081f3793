//go:build !race

package clustere2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// visCluster starts three in-process nodes and picks the visibility
// scenarios' users: the watched user owned by A and writing through C,
// every viewer reading and connecting through B, so the hub that masks
// pushes is on neither the owner nor the writer's node.
func visCluster(t *testing.T, start int64) (*tcluster, []*tnode, testkit.VisibilityParties) {
	c := newCluster(t, node.Config{})
	a, b, cc := c.Start("A"), c.Start("B"), c.Start("C")
	nodes := []*tnode{a, b, cc}
	c.waitConverged(nodes, nil, 15*time.Second)
	user := c.usersOwnedBy(a, 1, start)[0]
	viewers := c.usersOwnedBy(b, 2, start+1000)
	offline := c.usersOwnedBy(cc, 1, start+2000)[0]
	c.waitConverged(nodes, []int64{user, viewers[0], viewers[1], offline}, 15*time.Second)
	return c, nodes, testkit.VisibilityParties{
		Tokens: c.tok, UserAPI: cc.API, ViewerAPI: b.API, ViewerAddr: b.HTTPAddr(),
		User: user, Allowed: viewers[0], Refused: viewers[1], Offline: offline,
	}
}

// TestClusterVisibilityMatrix is the single-node matrix with the viewers
// on another node than the user's owner: the setting travels in the
// pushed state, and the viewers' hub masks it.
func TestClusterVisibilityMatrix(t *testing.T) {
	_, _, p := visCluster(t, 10_000)
	testkit.RunVisibilityMatrix(t, p)
}

// TestClusterVisibilityHiddenLooksOffline: no difference between a hidden
// and an offline user across nodes either.
func TestClusterVisibilityHiddenLooksOffline(t *testing.T) {
	_, _, p := visCluster(t, 20_000)
	testkit.RunHiddenLooksOffline(t, p)
}

// TestClusterVisibilitySurvivesOwnerMove: when the user's owner leaves,
// the new owner loads the setting with the record: reads and pushes stay
// masked, and the change of the setting made after the move reaches the
// watchers.
func TestClusterVisibilitySurvivesOwnerMove(t *testing.T) {
	c, nodes, p := visCluster(t, 30_000)
	u := p.User
	p.UserAPI.Must(t).Heartbeat(u)
	set, err := p.UserAPI.PutVisibility(u, fmt.Sprintf(`{"presence":"allowlist","allow":[%d]}`, p.Allowed))
	if err != nil {
		t.Fatal(err)
	}
	allowed := testkit.MustDialUser(t, p.ViewerAddr, p.Tokens, p.Allowed, []int64{u})
	refused := testkit.MustDialUser(t, p.ViewerAddr, p.Tokens, p.Refused, []int64{u})
	for _, s := range []*testkit.WSConn{allowed, refused} {
		if _, err := testkit.UpdatesUntilMarker(s, u, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.shutdown(nodes[0]); err != nil { // the owner leaves
		t.Fatal(err)
	}
	rest := nodes[1:]
	c.waitConverged(rest, []int64{u}, 20*time.Second)
	if got, err := p.UserAPI.Visibility(u); err != nil || got.Presence != "allowlist" || got.Version < set.Version {
		t.Fatalf("after the move: %+v, %v; want the setting of %+v", got, err, set)
	}
	st := p.UserAPI.Must(t).PutStatus(u, `{"is_busy":true}`)
	if err := testkit.WaitUpdate(allowed, u, st.Version, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if pr, _ := allowed.Last(u); !pr.IsBusy || !pr.IsOnline {
		t.Fatalf("the allowed viewer was pushed %+v after the move", pr)
	}
	got, err := testkit.UpdatesUntilMarker(refused, u, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range got {
		if pr.IsOnline || pr.IsBusy || pr.LastSeen != nil || pr.BusyUntil != nil {
			t.Fatalf("the refused viewer was pushed %+v after the move", pr)
		}
	}
	if pr, err := p.ViewerAPI.Presence(p.Refused, u); err != nil || pr.IsOnline || pr.IsBusy || pr.Version != st.Version {
		t.Fatalf("the refused viewer reads %+v (%v) after the move", pr, err)
	}
	// Opening up after the move pushes the true record to the refused
	// viewer at once.
	open, err := p.UserAPI.PutVisibility(u, `{"presence":"everyone"}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := testkit.WaitUpdate(refused, u, open.Version, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if pr, _ := refused.Last(u); !pr.IsOnline || !pr.IsBusy || pr.LastSeen == nil {
		t.Fatalf("after opening up the refused viewer was pushed %+v", pr)
	}
}
