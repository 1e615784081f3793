package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestHeartbeatAdviceDefault: without a budget the advice is a third of
// offline_after, and offline_after_seconds is offline_after.
func TestHeartbeatAdviceDefault(t *testing.T) {
	tests := []struct {
		offlineAfter            time.Duration
		interval, offlineAfterS int64
	}{
		{0, 100, 300}, // the default 5m
		{90 * time.Second, 30, 90},
		{100 * time.Second, 33, 100},
	}
	for _, tc := range tests {
		n := startNode(t, node.Config{Actors: actors.Config{OfflineAfter: tc.offlineAfter}})
		for i := range 3 {
			h := n.user(t, int64(1+i), "u").heartbeat()
			if h.HeartbeatIntervalSeconds != tc.interval || h.OfflineAfterSeconds != tc.offlineAfterS {
				t.Errorf("offline_after %v: heartbeat answer %+v, want interval %d, offline_after %d", tc.offlineAfter, h, tc.interval, tc.offlineAfterS)
			}
		}
	}
}

// TestHeartbeatAdviceUnderOverload: 400 clients heartbeat by the advice
// on a node whose budget is 10 heartbeats per second, with offline_after
// 30 s (base advice 10 s, so 40/s at first). Time is fake and moves a
// second per step. The advice rises to 40 s, beyond offline_after, the
// heartbeats per second fall to the budget, and no client ever goes
// offline: a cleanup every few seconds finds nobody to mark offline, a
// watcher is pushed no offline state, and reads show everyone online.
func TestHeartbeatAdviceUnderOverload(t *testing.T) {
	clock := testkit.NewFakeClock(time.Now())
	n := startNode(t, node.Config{
		Clock:  clock,
		Actors: actors.Config{OfflineAfter: 30 * time.Second},
		API:    api.Config{HeartbeatBudget: 10},
	})
	admin := n.admin(t)
	rest := testkit.NewREST(n.Addr(), testkit.NewTokens([]byte(testSecret)))
	const clients = 400
	watched := "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20"
	w := wsDialUser(t, n, 1000, "watcher", watched)
	w.expectType("subscribed")
	w.sync()

	next := make([]int64, clients) // fake second of each client's next heartbeat
	for i := range next {
		next[i] = int64(i % 10) // spread over the base interval
	}
	var perSecond []int
	var advice []int64
	rateChecked := false
	for sec := int64(0); sec < 130; sec++ {
		due := []int{}
		for i := range next {
			if next[i] <= sec {
				due = append(due, i)
			}
		}
		intervals := heartbeatAll(t, rest, due)
		for k, i := range due {
			next[i] = sec + intervals[k].HeartbeatIntervalSeconds
			if intervals[k].OfflineAfterSeconds < 3*intervals[k].HeartbeatIntervalSeconds {
				t.Fatalf("second %d: advice %+v leaves fewer than three heartbeats before offline", sec, intervals[k])
			}
		}
		perSecond = append(perSecond, len(due))
		if len(intervals) > 0 {
			advice = append(advice, intervals[len(intervals)-1].HeartbeatIntervalSeconds)
		}
		clock.Jump(time.Second)
		if sec >= 50 && len(due) > 0 && !rateChecked {
			// The second just over is whole: the meter reports its count.
			if v, err := rest.Metric("presence_heartbeats_per_second"); err != nil || v != float64(len(due)) {
				t.Fatalf("heartbeat rate metric = %v, %v after a second of %d heartbeats", v, err, len(due))
			}
			rateChecked = true
		}
		if sec%5 == 4 {
			if c := admin.cleanup(); c.UsersMarkedOffline != 0 {
				t.Fatalf("second %d: a cleanup marked %d clients following the advice offline: %+v (advice so far %v)", sec, c.UsersMarkedOffline, c.Users, advice)
			}
		}
	}
	if got := maxOf(advice); got != 40 {
		t.Fatalf("advice over the run %v: want it to reach 40 s (4 x base for 4 x budget)", advice)
	}
	first, settled := mean(perSecond[:10]), mean(perSecond[60:])
	if first != 40 || settled > 11 {
		t.Fatalf("heartbeats per second: %.1f in the first 10 s, %.1f once settled; want 40, then at most about the budget of 10 (%v)", first, settled, perSecond)
	}
	if v, err := rest.Metric("presence_heartbeat_interval_advised_seconds"); err != nil || v != 40 {
		t.Fatalf("advised interval metric = %v, %v; want 40", v, err)
	}
	if !rateChecked {
		t.Fatal("no second with heartbeats after 50 s to check the rate metric on")
	}
	for _, p := range n.user(t, 2000, "reader").batch(watched) {
		if !p.IsOnline {
			t.Errorf("user %d is offline after following the advice: %+v", p.UserID, p)
		}
	}
	// Everything pushed to the watcher up to a marker: creations and
	// nothing offline.
	w.sendText(wsMarker)
	for pushes := 0; ; pushes++ {
		m := w.next()
		if m.Type == "error" {
			if pushes == 0 {
				t.Fatal("the watcher was pushed nothing: not even the users' creation")
			}
			break
		}
		if p, err := m.Presence(); err != nil || !p.IsOnline {
			t.Fatalf("watcher was pushed %s: want only online states", m)
		}
	}
}

// heartbeatAll sends one heartbeat for each of the clients (user ids
// i+1), a few at a time, and returns the answers in order.
func heartbeatAll(t *testing.T, rest *testkit.REST, clients []int) []Heartbeat {
	t.Helper()
	out := make([]Heartbeat, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				out[k], errs[k] = rest.HeartbeatAdvice(int64(clients[k] + 1))
			}
		}()
	}
	for k := range clients {
		work <- k
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func mean(xs []int) float64 {
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return float64(sum) / float64(len(xs))
}
