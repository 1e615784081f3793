package testkit

import (
	"sync"
	"sync/atomic"
	"time"
)

// FakeClock is a clock (actors.Clock) whose time moves only when the test
// says so and whose timers never fire: jumping it makes every deadline
// look overdue, as if the timers were late, which is what an admin
// cleanup re-checks.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock standing at now.
func NewFakeClock(now time.Time) *FakeClock { return &FakeClock{now: now} }

// Now is the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms nothing: the timers of a fake clock never fire.
func (c *FakeClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

// Jump moves the clock forward by d.
func (c *FakeClock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// LateClock is real time plus an offset the test moves forward, with
// timers that never fire: jumping it makes deadlines overdue without any
// actor noticing, which is what an admin cleanup (or a restart) settles.
type LateClock struct{ off atomic.Int64 }

// Now is real time plus the offset.
func (c *LateClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// AfterFunc arms nothing: the timers of a late clock never fire.
func (c *LateClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

// Jump moves the offset forward by d.
func (c *LateClock) Jump(d time.Duration) { c.off.Add(int64(d)) }
