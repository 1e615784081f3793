package clustere2e

// What the tests of this package share beyond internal/testkit: the JSON
// types under their short names, a watcher that waits for its snapshot and
// a heartbeat loop.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// The API's JSON bodies.
type (
	Status        = testkit.Status
	Presence      = testkit.Presence
	Cleanup       = testkit.Cleanup
	ClusterStatus = testkit.ClusterStatus
)

// newTokens is the token cache of the test clusters' secret.
func newTokens() *testkit.Tokens { return testkit.NewTokens([]byte(testkit.ProcSecret)) }

// watchUsers dials a session of uid through addr subscribed to users and
// waits (10s at most) until it holds a state of every one of them: the
// snapshot a watcher starts from.
func watchUsers(t *testing.T, addr string, tok *testkit.Tokens, uid int64, users []int64) *testkit.WSConn {
	t.Helper()
	s := testkit.MustDialUser(t, addr, tok, uid, users)
	if !s.WaitFor(10*time.Second, func() bool {
		for _, u := range users {
			if _, ok := s.Last(u); !ok {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("no snapshot of every user:\n%s", s.Dump(20))
	}
	return s
}

// ---------------------------------------------------------------- heartbeats

// heartbeater heartbeats users every interval through the given nodes (in
// turn), one goroutine per user, and records failures and the longest gap
// between two answered heartbeats of a user.
type heartbeater struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	lastOK   map[int64]time.Time
	maxGap   map[int64]time.Duration
	failures map[int64][]string
}

func startHeartbeats(users []int64, via []*testkit.REST, every time.Duration) *heartbeater {
	h := &heartbeater{stop: make(chan struct{}), lastOK: map[int64]time.Time{}, maxGap: map[int64]time.Duration{}, failures: map[int64][]string{}}
	for i, u := range users {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for k := i; ; k++ {
				r := via[k%len(via)]
				start := time.Now()
				err := r.Heartbeat(u)
				now := time.Now()
				h.mu.Lock()
				if err != nil {
					h.failures[u] = append(h.failures[u], fmt.Sprintf("%s after %v via %s: %v", start.Format("15:04:05.000"), now.Sub(start).Round(time.Millisecond), r.Base, err))
				} else {
					if last, ok := h.lastOK[u]; ok && now.Sub(last) > h.maxGap[u] {
						h.maxGap[u] = now.Sub(last)
					}
					h.lastOK[u] = now
				}
				h.mu.Unlock()
				select {
				case <-h.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return h
}

func (h *heartbeater) halt() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.wg.Wait()
}

// errNotYet is what a poll condition returns while it is not met yet.
var errNotYet = errors.New("not yet")
