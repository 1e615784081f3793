package api

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepClock is a clock the test moves.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRateMeter(t *testing.T) {
	tests := []struct {
		name string
		// marks[i] events are counted in second i; rate is read after
		// moving readAfter past the last second's start.
		marks     []int
		readAfter time.Duration
		want      float64
	}{
		{"nothing yet", nil, 0, 0},
		{"current second only: not whole yet", []int{5}, 0, 0},
		{"previous second", []int{7, 3}, 0, 7},
		{"second just over, nothing since", []int{4}, time.Second, 4},
		{"a second still counting after a busy one", []int{9, 0}, 0, 9},
		{"idle second in between", []int{9, 0, 0}, 0, 0},
		{"idle for long", []int{9}, 5 * time.Second, 0},
		{"several seconds: the last whole one", []int{10, 20, 30, 1}, 0, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &stepClock{now: time.Unix(1_000_000, 0)}
			var closed []int64
			m := &rateMeter{now: clock.Now, onClose: func(_, n int64) { closed = append(closed, n) }}
			for i, n := range tc.marks {
				if i > 0 {
					clock.add(time.Second)
				}
				for range n {
					m.mark()
				}
			}
			clock.add(tc.readAfter)
			if got := m.rate(); got != tc.want {
				t.Fatalf("rate = %v, want %v", got, tc.want)
			}
			// Every second with an event that a later event closed was
			// handed over with its count (the first close is the zero
			// window).
			var want []int64
			for i, n := range tc.marks {
				if n > 0 && slices.ContainsFunc(tc.marks[i+1:], func(m int) bool { return m > 0 }) {
					want = append(want, int64(n))
				}
			}
			var got []int64
			for _, n := range closed {
				if n > 0 {
					got = append(got, n)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("closed seconds %v, want counts %v", got, want)
			}
		})
	}
}

func TestRateMeterConcurrent(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_000_000, 0)}
	var mu sync.Mutex
	total := int64(0)
	m := &rateMeter{now: clock.Now, onClose: func(_, n int64) { mu.Lock(); total += n; mu.Unlock() }}
	const workers, each = 8, 1000
	for s := range 3 {
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					m.mark()
				}
			}()
		}
		wg.Wait()
		if s < 2 {
			clock.add(time.Second)
		}
	}
	clock.add(time.Second)
	m.mark() // closes the last busy second
	mu.Lock()
	defer mu.Unlock()
	if total != 3*workers*each {
		t.Fatalf("counted %d events, want %d", total, 3*workers*each)
	}
}

// Every event is counted in its own second, also when several callers
// mark the first events of a new second at once (one of them closes the
// previous second): the heartbeat rate a node reports is exact.
func TestRateMeterCountsEachSecondExactly(t *testing.T) {
	clock := &stepClock{now: time.Unix(2_000_000, 0)}
	var mu sync.Mutex
	var closed []int64
	m := &rateMeter{now: clock.Now, onClose: func(_, n int64) { mu.Lock(); closed = append(closed, n); mu.Unlock() }}
	const seconds, workers, each = 200, 4, 25
	for range seconds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range each {
					m.mark()
				}
			}()
		}
		close(start)
		wg.Wait()
		clock.add(time.Second)
	}
	m.mark()
	mu.Lock()
	defer mu.Unlock()
	if len(closed) != seconds {
		t.Fatalf("%d seconds closed, want %d", len(closed), seconds)
	}
	for s, n := range closed {
		if n != workers*each {
			t.Fatalf("second %d counted %d events, want %d (closed: %v)", s, n, workers*each, closed)
		}
	}
}

func TestNextAdviceFactor(t *testing.T) {
	tests := []struct {
		name                 string
		factor, rate, budget float64
		want                 float64
	}{
		{"no budget", 3, 500, 0, 1},
		{"under budget at base", 1, 10, 20, 1},
		{"at budget: keep", 2, 20, 20, 2},
		{"over budget: in proportion", 1, 40, 20, 2},
		{"over budget again: compounds", 2, 30, 20, 3},
		{"capped", 1, 1000, 20, maxAdviceFactor},
		{"inside the band: keep", 4, 15, 20, 4},
		{"below the band: shorten to the target", 4, 10, 20, 4 * 10 / 17.0},
		{"idle: back to base", 4, 0, 20, 1},
		{"never below base", 1.2, 1, 20, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextAdviceFactor(tc.factor, tc.rate, tc.budget); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("nextAdviceFactor(%v, %v, %v) = %v, want %v", tc.factor, tc.rate, tc.budget, got, tc.want)
			}
		})
	}
}

// TestHeartbeatAdvisorFollowers simulates clients that follow the advice:
// a load four times the budget makes the advice four times longer within
// one base interval, the rate then settles at the budget, and the advice
// stays put (no flapping) while the load does. When most clients leave,
// the advice comes back to the base.
func TestHeartbeatAdvisorFollowers(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_000_000, 0)}
	// offline_after 30 s: base interval 10 s. 200 clients: 20/s.
	a := newHeartbeatAdvisor(clock.Now, 30*time.Second, 5)
	next := make([]int64, 200)
	for i := range next {
		next[i] = int64(i % 10) // spread over the first base interval
	}
	var advice []int64
	run := func(seconds int, clients int) (perSecond []int) {
		for range seconds {
			sec := clock.Now().Unix() - 1_000_000
			n := 0
			for i := range clients {
				if next[i] <= sec {
					interval, offlineAfter := a.heartbeat()
					if offlineAfter < 3*interval {
						t.Fatalf("advice %v with offline_after %v: fewer than three chances", interval, offlineAfter)
					}
					next[i] = sec + int64(interval/time.Second)
					n++
				}
			}
			perSecond = append(perSecond, n)
			advice = append(advice, int64(a.interval()/time.Second))
			clock.add(time.Second)
		}
		return perSecond
	}
	first := run(11, 200)[:10]
	if got := a.interval(); got != 40*time.Second {
		t.Fatalf("advice after 10 s at 20/s with budget 5/s = %v, want 40s", got)
	}
	later := run(120, 200)
	if got := a.interval(); got != 40*time.Second {
		t.Fatalf("advice after the load settled = %v, want 40s (advice per second: %v)", got, advice)
	}
	for i, v := range advice[10:] {
		if v != 40 {
			t.Fatalf("advice changed to %ds at second %d under a steady load (no hysteresis?): %v", v, 10+i, advice)
		}
	}
	if avg(first) != 20 || avg(later[40:]) > 5.5 {
		t.Fatalf("heartbeats per second: %v at first, %v once settled; want 20 then about 5", avg(first), avg(later[40:]))
	}
	// 180 of the 200 leave: 0.5/s, well under the budget.
	run(200, 20)
	if got := a.interval(); got != 10*time.Second {
		t.Fatalf("advice after the load left = %v, want the base 10s", got)
	}
}

func avg(xs []int) float64 {
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return float64(sum) / float64(len(xs))
}

func TestHeartbeatAdvisorWithoutBudget(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_000_000, 0)}
	a := newHeartbeatAdvisor(clock.Now, 5*time.Minute, 0)
	for range 100 {
		for range 1000 {
			if interval, offlineAfter := a.heartbeat(); interval != 100*time.Second || offlineAfter != 5*time.Minute {
				t.Fatalf("advice without a budget = %v, %v; want 100s, 5m", interval, offlineAfter)
			}
		}
		clock.add(time.Second)
	}
	if got := a.rate(); got != 1000 {
		t.Fatalf("rate = %v, want 1000 (measured even without a budget)", got)
	}
}

func TestParseDryRun(t *testing.T) {
	tests := []struct {
		present bool
		q       string
		want    bool
		ok      bool
	}{
		{false, "", false, true},
		{true, "true", true, true},
		{true, "1", true, true},
		{true, "false", false, true},
		{true, "0", false, true},
		{true, "", false, false},
		{true, "yes", false, false},
		{true, "TRUE", false, false},
		{true, "2", false, false},
	}
	for _, tc := range tests {
		got, err := parseDryRun(tc.present, tc.q)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDryRun(%v, %q) = %v, %v; want %v, ok %v", tc.present, tc.q, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "dry_run") {
			t.Errorf("error %q does not name dry_run", err)
		}
	}
}

func BenchmarkHeartbeatAdvice(b *testing.B) {
	a := newHeartbeatAdvisor(time.Now, 5*time.Minute, 1000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.heartbeat()
		}
	})
}

func BenchmarkHeartbeatAdviceSerial(b *testing.B) {
	a := newHeartbeatAdvisor(time.Now, 5*time.Minute, 1000)
	b.ReportAllocs()
	for b.Loop() {
		a.heartbeat()
	}
}
