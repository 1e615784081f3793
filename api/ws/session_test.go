package ws

import (
	"net"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// blockedConn is a client that never reads: every write blocks until the
// session cuts the connection.
type blockedConn struct {
	*fakeConn
	unblock chan struct{}
}

func (c *blockedConn) Write([]byte) (int, error) {
	<-c.unblock
	return 0, net.ErrClosed
}

// tryWrite: the socket buffer is full.
func (c *blockedConn) tryWrite([]byte) (int, error) { return 0, nil }

func TestSessionSlowConsumerIsCutOff(t *testing.T) {
	stats := &HubStats{}
	fc := newFakeConn(t)
	c := &blockedConn{fakeConn: fc, unblock: make(chan struct{})}
	var reset bool
	s := newSession(c, auth.Identity{UserID: 1}, nil, &sessionOptions{
		queue: 4, writeTimeout: time.Second, stats: stats,
		reset: func(net.Addr) { reset = true },
	})
	s.reserve([]int64{42}, 0)
	s.markReady(42, 0)
	// The writer takes the first batch and blocks on it; 4 more wait; the
	// next one finds the queue full.
	s.push(42, 1, []byte("1"))
	deadline := time.Now().Add(time.Second)
	for {
		s.mu.Lock()
		n := s.queue.len()
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not take the first frame")
		}
		time.Sleep(time.Millisecond)
	}
	for v := uint64(2); v <= 6; v++ {
		s.push(42, v, []byte("x"))
	}
	if !s.isClosing() {
		t.Fatal("a session 2x its queue behind is still open")
	}
	if got := stats.SlowDisconnects.Load(); got != 1 {
		t.Fatalf("SlowDisconnects = %d, want 1", got)
	}
	if !reset {
		t.Fatal("the slow consumer's connection was not reset")
	}
	close(c.unblock)
	s.wait()
	select {
	case code := <-fc.closes:
		t.Fatalf("an aborted session wrote close frame %d", code)
	default:
	}
}

// TestSessionHoldsPushesUntilReady: a push that arrives while the subscribe
// answer is on its way follows the snapshot, newest wins, and an older
// snapshot is never sent after a newer push.
func TestSessionHoldsPushesUntilReady(t *testing.T) {
	c := newFakeConn(t)
	s := newSession(c, auth.Identity{UserID: 1}, nil, &sessionOptions{queue: 16, writeTimeout: time.Second, stats: &HubStats{}})
	defer s.wait()
	defer s.close(1000, "")
	s.reserve([]int64{42}, 0)
	s.push(42, 5, []byte("v5"))
	s.push(42, 6, []byte("v6"))
	s.push(42, 4, []byte("v4"))
	c.none(t)
	live, fresh, pending := s.admitSnapshot(42, 3)
	if !live || !fresh || !pending {
		t.Fatalf("admitSnapshot = %v %v %v, want live, fresh, pending", live, fresh, pending)
	}
	s.send([]byte("v3"))
	s.markReady(42, 3)
	for _, want := range []string{"v3", "v6"} {
		if got := c.next(t); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	s.push(42, 6, []byte("v6 again"))
	c.none(t)
	if _, fresh, _ := s.admitSnapshot(42, 5); fresh {
		t.Fatal("a snapshot older than what was sent is fresh")
	}
}

func TestSessionReserveLimit(t *testing.T) {
	s := newSession(newFakeConn(t), auth.Identity{UserID: 1}, nil, &sessionOptions{queue: 4, stats: &HubStats{}})
	if !s.reserve([]int64{1, 2, 3}, 3) {
		t.Fatal("3 users refused with limit 3")
	}
	if s.reserve([]int64{3, 4}, 3) {
		t.Fatal("a 4th user accepted with limit 3")
	}
	if !s.reserve([]int64{2, 3}, 3) {
		t.Fatal("users already watched refused")
	}
	if got := len(s.subscribedIDs()); got != 3 {
		t.Fatalf("%d subscriptions, want 3", got)
	}
	if got := s.drop([]int64{1, 2, 9}); len(got) != 1 || got[0] != 2 {
		t.Fatalf("drop = %v, want [2] (own user kept, unknown ignored)", got)
	}
}
