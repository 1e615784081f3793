package ws

import (
	"context"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// discardConn is a client that reads everything at once.
type discardConn struct{ *fakeConn }

func (discardConn) Write(b []byte) (int, error)    { return len(b), nil }
func (discardConn) tryWrite(b []byte) (int, error) { return len(b), nil }

// BenchmarkHubFanOut1000 measures one change reaching the queues of 1,000
// local sessions and their writers, in process (BenchmarkFanout1000 in
// package api measures the same through real sockets).
func BenchmarkHubFanOut1000(b *testing.B) {
	const hot = int64(42)
	e := newTestEnv(b)
	sessions := make([]*session, 0, 1000)
	for uid := int64(1); uid <= 1000; uid++ {
		c := discardConn{newFakeConn(b)}
		s := newSession(c, auth.Identity{UserID: uid}, sessionOptions{queue: 256, writeTimeout: time.Second, stats: e.hub.Stats()})
		if err := e.hub.attach(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		s.reserve([]int64{hot}, 0)
		if _, err := e.hub.subscribe(context.Background(), s, []int64{hot}); err != nil {
			b.Fatal(err)
		}
		s.markReady(hot, 0)
		sessions = append(sessions, s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.hub.deliver(state(hot, uint64(i+1)))
	}
	b.StopTimer()
	e.srv.CloseAll(CloseDraining, "bench over")
	for _, s := range sessions {
		s.wait()
	}
}
