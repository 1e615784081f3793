//go:build !race

package clustere2e

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

// TestAdminDisconnectAcrossNodes: a user with sessions on two nodes is
// disconnected through the third: both sessions close with 4003, the
// answer counts 2, a watcher on the third node sees the user go offline
// after the disconnect grace, and a session of another user stays. Bad
// input answers as on one node: 403 for a non-admin, 422 for a malformed
// id, 200 with 0 for a user with no session.
func TestAdminDisconnectAcrossNodes(t *testing.T) {
	const grace = 500 * time.Millisecond
	c := newCluster(t, node.Config{Actors: actors.Config{DisconnectGrace: grace}})
	a, b, cc := c.Start("A"), c.Start("B"), c.Start("C")
	nodes := []*tnode{a, b, cc}
	c.waitConverged(nodes, nil, 15*time.Second)

	const user, watcherID = 4242, 4343
	onA := testkit.MustDialUser(t, a.HTTPAddr(), c.tok, user, nil)
	onB := testkit.MustDialUser(t, b.HTTPAddr(), c.tok, user, nil)
	watcher := testkit.MustDialUser(t, cc.HTTPAddr(), c.tok, watcherID, []int64{user})
	for _, s := range []*testkit.WSConn{onA, onB} {
		settle(t, s) // attached: the server reads frames only after attaching
	}
	if !watcher.WaitFor(10*time.Second, func() bool { p, ok := watcher.Last(user); return ok && p.IsOnline }) {
		t.Fatalf("watcher never saw user %d online: %s", user, watcher.Dump(5))
	}

	d, err := cc.API.Disconnect(testkit.AdminID, user)
	if err != nil || d != (wire.Disconnect{Message: wire.DisconnectMessage, SessionsClosed: 2}) {
		t.Fatalf("disconnect through C: %+v, %v; want 2 sessions closed", d, err)
	}
	for _, s := range []*testkit.WSConn{onA, onB} {
		_, err, ended := s.WaitEnd(10 * time.Second)
		var ce *websocket.CloseError
		if !ended || !errors.As(err, &ce) || ce.Code != wire.CloseDisconnected || ce.Text != wire.CloseDisconnectedReason {
			t.Fatalf("%s: ended %v with %v, want close %d %q", s.Name, ended, err, wire.CloseDisconnected, wire.CloseDisconnectedReason)
		}
	}
	start := time.Now()
	if !watcher.WaitFor(grace+10*time.Second, func() bool { p, ok := watcher.Last(user); return ok && !p.IsOnline }) {
		t.Fatalf("watcher never saw user %d offline: %s", user, watcher.Dump(5))
	}
	t.Logf("offline %v after the disconnect (grace %v)", time.Since(start), grace)
	for _, n := range nodes {
		if p, err := n.API.Presence(watcherID, user); err != nil || p.IsOnline {
			t.Fatalf("presence of %d through %s: %+v, %v; want offline", user, n.label, p, err)
		}
	}
	if closed, err := watcher.Closed(); closed {
		t.Fatalf("the watcher's session ended: %v", err)
	}

	// Nothing left to do: 0, through another node.
	if d, err := a.API.Disconnect(testkit.AdminID, user); err != nil || d.SessionsClosed != 0 {
		t.Fatalf("second disconnect: %+v, %v; want 0 sessions closed", d, err)
	}
	if _, err := b.API.Disconnect(watcherID, user); !testkit.IsHTTP(err, http.StatusForbidden) {
		t.Fatalf("non-admin disconnect: %v, want 403", err)
	}
	if err := b.API.Call(testkit.AdminID, http.MethodPost, "/admin/users/abc/disconnect", "", nil); !testkit.IsHTTP(err, http.StatusUnprocessableEntity) {
		t.Fatalf("disconnect of id abc: %v, want 422", err)
	}
}

// settle waits until the server has read a frame from s: an unknown frame
// type is answered with one error frame.
func settle(t *testing.T, s *testkit.WSConn) {
	t.Helper()
	if err := s.SendText(`{"type":"settle"}`); err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	for {
		f, err := s.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if f.Type == "error" {
			return
		}
	}
}
