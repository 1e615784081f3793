package ws

import (
	"context"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
)

// discardConn is a client that reads everything at once.
type discardConn struct{ *fakeConn }

func (discardConn) WriteMessage(int, []byte) error { return nil }

// benchHub attaches n sessions (users 1..n) subscribed to user hot.
func benchHub(b *testing.B, hot int64, n int) (*testEnv, []*session) {
	e := newTestEnv(b)
	sessions := make([]*session, 0, n)
	for uid := int64(1); uid <= int64(n); uid++ {
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
	allow := make([]int64, 0, 500)
	for uid := int64(1); uid <= 1000; uid += 2 {
		allow = append(allow, uid)
	}
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
	allow := make([]int64, 0, 500)
	for uid := int64(1); uid <= 1000; uid += 2 {
		allow = append(allow, uid)
	}
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
				s := newSession(discardConn{newFakeConn(b)}, auth.Identity{UserID: uid}, sessionOptions{queue: 256, writeTimeout: time.Second, stats: e.hub.Stats()})
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
