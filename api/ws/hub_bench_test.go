package ws

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
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
	var pool *writerPool
	if workers {
		pool = newWriterPool(runtime.GOMAXPROCS(0))
		defer pool.stop()
	}
	var written atomic.Int64
	e, sessions := benchHubOn(b, newTestEnv(b), hot, n, pool, &written)
	for written.Load() < int64(n) { // the subscribe answers
		time.Sleep(time.Millisecond)
	}
	written.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := state(hot, uint64(i+1))
		st.IsBusy = i%2 == 0 // a change every session sees (the hub pushes only changed views)
		e.hub.deliver(st)
		for written.Load() < int64(n)*int64(i+1) {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
	benchStop(e, sessions)
}

// benchHub attaches n sessions (users 1..n) subscribed to user hot.
func benchHub(b *testing.B, hot int64, n int) (*testEnv, []*session) {
	return benchHubOn(b, newTestEnv(b), hot, n, nil, new(atomic.Int64))
}

// benchHubOn is benchHub on e, with the sessions written by pool (nil: a
// goroutine per session) and their writes counted in written.
func benchHubOn(b *testing.B, e *testEnv, hot int64, n int, pool *writerPool, written *atomic.Int64) (*testEnv, []*session) {
	sessions := make([]*session, 0, n)
	for uid := int64(1); uid <= int64(n); uid++ {
		c := discardConn{newFakeConn(b), written}
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
	return e, sessions
}

func benchStop(e *testEnv, sessions []*session) {
	e.srv.CloseAll(CloseDraining, "bench over")
	for _, s := range sessions {
		s.wait()
	}
}

// BenchmarkHubFanOut1000 measures one change reaching the queues of 1,000
// local sessions and their writers, in process (BenchmarkFanout1000 in
// package api measures the same through real sockets). Every change flips
// the busy flag, so each is one every session sees.
func BenchmarkHubFanOut1000(b *testing.B) {
	const hot = int64(1_000_042)
	e, sessions := benchHub(b, hot, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := state(hot, uint64(i+1))
		st.IsBusy = i%2 == 0
		e.hub.deliver(st)
	}
	b.StopTimer()
	benchStop(e, sessions)
}

// BenchmarkHubFanOutVisibility1000 is BenchmarkHubFanOut1000 with the hot
// user's visibility set: "half-refused" allows the odd user ids only (the
// other half sees an offline user, whose view the busy flips do not
// change, so they get nothing); "switching" alternates the presence
// between everyone and nobody (every session's view changes each time,
// and the frames of two views are encoded).
func BenchmarkHubFanOutVisibility1000(b *testing.B) {
	const hot = int64(1_000_042)
	allow := oddIDs(1000)
	halfRefused := &messages.Visibility{Presence: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, Allow: allow}
	nobody := &messages.Visibility{Presence: messages.VisibilityMode_VISIBILITY_MODE_NOBODY}
	cases := []struct {
		name string
		at   func(i int) *messages.UserState
	}{
		{"half-refused", func(i int) *messages.UserState {
			st := state(hot, uint64(i+1))
			st.IsBusy, st.Visibility = i%2 == 0, halfRefused
			return st
		}},
		{"switching", func(i int) *messages.UserState {
			st := state(hot, uint64(i+1))
			if i%2 == 0 {
				st.Visibility = nobody
			}
			return st
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e, sessions := benchHub(b, hot, 1000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.hub.deliver(tc.at(i))
			}
			b.StopTimer()
			benchStop(e, sessions)
		})
	}
}

// BenchmarkHubMask1000 measures the hub's own part of one change to 1,000
// sessions: classifying each session, comparing views and encoding frames
// (at most one per view). The sessions' subscriptions are not ready, so a
// push only stores the frame as pending: no queue, no writer, and the
// allocations counted are the hub's (the delivered state is made before
// the timer runs).
func BenchmarkHubMask1000(b *testing.B) {
	const hot = int64(1_000_042)
	allow := oddIDs(1000)
	vis := map[string]*messages.Visibility{
		"unused":       nil,
		"half-refused": {Presence: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, Allow: allow},
		"last-seen-hidden": {
			LastSeen: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, Allow: allow,
		},
	}
	for _, name := range []string{"unused", "half-refused", "last-seen-hidden"} {
		b.Run(name, func(b *testing.B) {
			e := newTestEnv(b)
			for uid := int64(1); uid <= 1000; uid++ {
				s := newSession(discardConn{newFakeConn(b), new(atomic.Int64)}, auth.Identity{UserID: uid}, nil, &sessionOptions{queue: 256, writeTimeout: time.Second, stats: e.hub.Stats()})
				if err := e.hub.attach(context.Background(), s); err != nil {
					b.Fatal(err)
				}
				s.reserve([]int64{hot}, 0)
				if _, err := e.hub.subscribe(context.Background(), s, []int64{hot}); err != nil {
					b.Fatal(err)
				}
			}
			states := make([]*messages.UserState, b.N)
			for i := range states {
				st := state(hot, uint64(i+10))
				st.IsBusy, st.LastSeen, st.Visibility = i%2 == 0, int64(i+1), vis[name]
				states[i] = st
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, st := range states {
				e.hub.fanOut(st)
			}
		})
	}
}

// oddIDs returns the odd ids from 1 to n: an allowlist refusing half of
// the sessions of users 1..n.
func oddIDs(n int64) []int64 {
	ids := make([]int64, 0, n/2)
	for uid := int64(1); uid <= n; uid += 2 {
		ids = append(ids, uid)
	}
	return ids
}
