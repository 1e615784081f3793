package ws

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// discardConn is a client that takes everything at once, counting the
// batches written to it.
type discardConn struct {
	*fakeConn
	written *atomic.Int64
}

func (c discardConn) Write(b []byte) (int, error)    { c.written.Add(1); return len(b), nil }
func (c discardConn) tryWrite(b []byte) (int, error) { return c.Write(b) }

// BenchmarkHubFanOut measures one change reaching n local sessions, from
// the hub's fan-out to the last write, in process: with the writer
// workers (as a node runs) and with a goroutine per session (what each
// write cost before the workers). The sockets take every write at once
// without a system call, so this is the server's own cost around the
// write(2); BenchmarkFanout1000 in package api measures the same through
// real sockets, and BENCHMARKS.md the whole node.
func BenchmarkHubFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, mode := range []string{"workers", "goroutines"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				benchFanOut(b, n, mode == "workers")
			})
		}
	}
}

func benchFanOut(b *testing.B, n int, workers bool) {
	const hot = int64(42)
	e := newTestEnv(b)
	var pool *writerPool
	if workers {
		pool = newWriterPool(runtime.GOMAXPROCS(0))
		defer pool.stop()
	}
	var written atomic.Int64
	sessions := make([]*session, 0, n)
	for uid := int64(1); uid <= int64(n); uid++ {
		c := discardConn{newFakeConn(b), &written}
		s := newSession(c, auth.Identity{UserID: uid}, nil, &sessionOptions{queue: 256, writeTimeout: time.Second, stats: e.hub.Stats(), pool: pool})
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
	for written.Load() < int64(n) { // the subscribe answers
		time.Sleep(time.Millisecond)
	}
	written.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.hub.deliver(state(hot, uint64(i+1)))
		for written.Load() < int64(n)*int64(i+1) {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
	e.srv.CloseAll(CloseDraining, "bench over")
	for _, s := range sessions {
		s.wait()
	}
}
