package api

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/actors"
)

// Overload rule of the heartbeat advice (see heartbeatAdvisor).
const (
	// maxAdviceFactor caps how much longer than the base interval the
	// advice gets: a user's offline deadline grows by as much.
	maxAdviceFactor = 10
	// adviceLowWater and adviceTarget are the hysteresis band: the advice
	// shortens only once the rate falls below adviceLowWater of the
	// budget, and then to aim at adviceTarget of it, so a rate near the
	// budget does not make it flap.
	adviceLowWater = 0.7
	adviceTarget   = 0.85
)

// heartbeatAdvisor measures the node's REST heartbeats per second and
// advises clients how often to heartbeat. The advice is the base interval
// (actors.HeartbeatInterval) times a factor, 1 unless the node has a budget
// and the measured rate exceeds it. The factor is re-judged once per
// period over the period's average rate; a period lasts the longer of the
// advice before and after the last change, the time every following client
// takes to heartbeat once and so learn the advice. A heartbeat costs one
// clock read and two atomic operations (no lock, no allocation); the
// judgement runs once a second at most, on the heartbeat that closes a
// second.
type heartbeatAdvisor struct {
	meter        rateMeter
	offlineAfter time.Duration
	base         int64 // seconds
	budget       float64
	advised      atomic.Int64 // seconds

	mu          sync.Mutex
	factor      float64
	periodStart int64 // Unix second the period began; 0: no heartbeat yet
	periodCount int64
	judgeAt     int64 // Unix second the period ends
}

// newHeartbeatAdvisor returns an advisor for users going offline after
// offlineAfter, on a node allowed budget heartbeats per second (0: no
// budget, the advice is always the base interval). now is its clock.
func newHeartbeatAdvisor(now func() time.Time, offlineAfter time.Duration, budget int) *heartbeatAdvisor {
	a := &heartbeatAdvisor{
		offlineAfter: offlineAfter,
		base:         int64(actors.HeartbeatInterval(offlineAfter) / time.Second),
		budget:       float64(budget),
		factor:       1,
	}
	a.advised.Store(a.base)
	a.meter.now = now
	a.meter.onClose = a.secondClosed
	return a
}

// heartbeat counts a heartbeat and returns the advice for it: the interval
// to heartbeat at and how long the user then stays online.
func (a *heartbeatAdvisor) heartbeat() (interval, offlineAfter time.Duration) {
	a.meter.mark()
	interval = time.Duration(a.advised.Load()) * time.Second
	return interval, actors.AdvisedOfflineAfter(a.offlineAfter, interval)
}

// interval is the advice now.
func (a *heartbeatAdvisor) interval() time.Duration {
	return time.Duration(a.advised.Load()) * time.Second
}

// rate is the heartbeats per second of the last whole second.
func (a *heartbeatAdvisor) rate() float64 { return a.meter.rate() }

// secondClosed adds the count of a closed second to the period, and judges
// the factor again when the period is over.
func (a *heartbeatAdvisor) secondClosed(second, count int64) {
	if a.budget <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.periodStart == 0 {
		if count == 0 {
			return // the meter's zero window, before any heartbeat
		}
		a.periodStart, a.judgeAt = second, second+a.base
	}
	if second >= a.judgeAt {
		// The period ended in the quiet before this second.
		a.judge(a.judgeAt)
	}
	a.periodCount += count
	if second+1 >= a.judgeAt {
		a.judge(second + 1)
	}
}

// judge sets the advice from the period that ends at second end, and
// starts the next period there.
func (a *heartbeatAdvisor) judge(end int64) {
	avg := float64(a.periodCount) / float64(max(1, end-a.periodStart))
	before := a.advised.Load()
	a.factor = nextAdviceFactor(a.factor, avg, a.budget)
	after := max(a.base, int64(math.Round(float64(a.base)*a.factor)))
	a.advised.Store(after)
	a.periodStart, a.periodCount, a.judgeAt = end, 0, end+max(before, after)
}

// nextAdviceFactor is the factor for the next period, given the current
// one and the average rate the period measured against the budget: longer
// in proportion when the rate is over the budget (clients following the
// advice then bring it down to the budget), shorter only once it is well
// under it, never below 1 or above maxAdviceFactor.
func nextAdviceFactor(factor, rate, budget float64) float64 {
	switch {
	case budget <= 0:
		return 1
	case rate > budget:
		return min(maxAdviceFactor, factor*rate/budget)
	case rate < adviceLowWater*budget && factor > 1:
		return max(1, factor*rate/(adviceTarget*budget))
	}
	return factor
}

// HeartbeatAdvice is the heartbeat interval the node advises now: a third
// of offline_after, or longer while heartbeats exceed the node's budget.
func (s *Server) HeartbeatAdvice() time.Duration { return s.advice.interval() }
