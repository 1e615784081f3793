package ws

import (
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// expectClose waits for the close frame a session writes.
func expectClose(t *testing.T, c *fakeConn, code int, within time.Duration) {
	t.Helper()
	select {
	case got := <-c.closes:
		if got != code {
			t.Fatalf("close code %d, want %d", got, code)
		}
	case <-time.After(within):
		t.Fatalf("no close frame within %v", within)
	}
}

// The hub's pinger closes a session once its deadline passes (4001), and
// only that one; a session with no deadline, or a later one, stays.
func TestPingerClosesExpiredSessions(t *testing.T) {
	e := newTestEnv(t)
	short, c1 := e.open(t, 1)
	long, c2 := e.open(t, 1)
	_, c3 := e.open(t, 2) // no deadline
	short.setExpiry(time.Now().Add(100*time.Millisecond), 0)
	long.setExpiry(time.Now().Add(time.Hour), 0)
	// The default ping interval makes the pinger look every second.
	expectClose(t, c1, wire.CloseTokenExpired, 3*time.Second)
	time.Sleep(1200 * time.Millisecond) // another pinger pass
	for _, c := range []*fakeConn{c2, c3} {
		select {
		case code := <-c.closes:
			t.Fatalf("a session not expired was closed with %d", code)
		default:
		}
	}
	// A refresh to an earlier time takes effect at the next pass.
	long.setExpiry(time.Now(), 0)
	expectClose(t, c2, wire.CloseTokenExpired, 3*time.Second)
}

// setExpiry adds the leeway, and a zero exp means no deadline.
func TestSessionExpiry(t *testing.T) {
	s := newSession(newFakeConn(t), auth.Identity{UserID: 1}, nil, &sessionOptions{queue: 4, stats: &HubStats{}})
	now := time.Now()
	if s.expiredAt(now.Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("a session without a token exp expires")
	}
	s.setExpiry(now, 30*time.Second)
	if s.expiredAt(now.Add(29*time.Second)) || !s.expiredAt(now.Add(30*time.Second)) {
		t.Fatal("the deadline is not exp plus the leeway")
	}
	s.setExpiry(time.Time{}, time.Second)
	if s.expiredAt(now.Add(time.Hour)) {
		t.Fatal("a zero exp did not clear the deadline")
	}
}

// A DisconnectUser message to the hub actor closes the user's sessions on
// this node with 4003 and answers their count; other users' stay.
func TestHubDisconnectUser(t *testing.T) {
	e := newTestEnv(t)
	_, c1 := e.open(t, 1)
	_, c2 := e.open(t, 1)
	_, c3 := e.open(t, 2)
	ask := func(uid int64) int64 {
		t.Helper()
		res, err := e.system.Root.RequestFuture(e.hub.PID(), &messages.Envelope{Body: &messages.Envelope_DisconnectUser{
			DisconnectUser: &messages.DisconnectUser{UserId: uid},
		}}, time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		dc := res.(*messages.Envelope).GetDisconnectCount()
		if dc == nil || dc.GetUserId() != uid {
			t.Fatalf("answer %v, want a DisconnectCount of user %d", res, uid)
		}
		return dc.GetSessionsClosed()
	}
	if n := ask(1); n != 2 {
		t.Fatalf("sessions closed %d, want 2", n)
	}
	expectClose(t, c1, wire.CloseDisconnected, time.Second)
	expectClose(t, c2, wire.CloseDisconnected, time.Second)
	select {
	case code := <-c3.closes:
		t.Fatalf("another user's session closed with %d", code)
	case <-time.After(50 * time.Millisecond):
	}
	if n := ask(1); n != 0 {
		t.Fatalf("second disconnect closed %d, want 0 (the sessions are closing already)", n)
	}
	if n := ask(77); n != 0 {
		t.Fatalf("disconnect of a user with no session closed %d", n)
	}
}
