package actors

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when a test says so. Timers
// registered with AfterFunc fire, in deadline order, when Advance moves the
// clock past their deadline; their f is called on the goroutine of Advance
// (for a user actor, f only posts a message to the actor's mailbox).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*fakeTimer
}

type fakeTimer struct {
	at  time.Time
	seq uint64 // registration order, to break deadline ties
	f   func()
}

var _ Clock = (*fakeClock)(nil)

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

// Now returns the fake current time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run once the clock reaches Now()+d. Like
// time.AfterFunc, a non-positive d makes f run at once (here: before
// AfterFunc returns, which for a user actor only queues a message).
func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	if d <= 0 {
		f()
		return func() bool { return false }
	}
	c.mu.Lock()
	c.seq++
	t := &fakeTimer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.remove(t)
	}
}

// remove drops t from the armed timers; it reports whether t was armed.
// c.mu must be held.
func (c *fakeClock) remove(t *fakeTimer) bool {
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	return true
}

// Advance moves the clock forward by d and fires every timer due by then,
// earliest deadline first. While a timer's f runs the clock reads that
// timer's deadline; at the end it reads the old time plus d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if t.at.After(target) {
				continue
			}
			if next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.remove(next)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
}

// Skip moves the clock forward by d without firing any timer, as if the
// timers' goroutines were late: deadlines have passed, nothing was delivered.
func (c *fakeClock) Skip(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Deadlines returns the deadlines of the armed timers, earliest first.
func (c *fakeClock) Deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t.at)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func TestFakeClock(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newFakeClock(start)
	var fired []string
	var seenAt []time.Time
	rec := func(name string) func() {
		return func() {
			fired = append(fired, name)
			seenAt = append(seenAt, c.Now())
		}
	}
	c.AfterFunc(3*time.Second, rec("c"))
	c.AfterFunc(time.Second, rec("a"))
	stopB := c.AfterFunc(2*time.Second, rec("b"))
	c.AfterFunc(time.Second, rec("a2"))
	c.AfterFunc(0, rec("now"))

	if got := c.Deadlines(); len(got) != 4 || !got[0].Equal(start.Add(time.Second)) || !got[3].Equal(start.Add(3*time.Second)) {
		t.Fatalf("Deadlines = %v", got)
	}
	if !stopB() {
		t.Fatal("stop of an armed timer returned false")
	}
	if stopB() {
		t.Fatal("second stop returned true")
	}
	c.Advance(time.Second - time.Nanosecond)
	if want := []string{"now"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v before the first deadline, want %v", fired, want)
	}
	c.Advance(5 * time.Second)
	if want := []string{"now", "a", "a2", "c"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	wantAt := []time.Time{start, start.Add(time.Second), start.Add(time.Second), start.Add(3 * time.Second)}
	if !slices.EqualFunc(seenAt, wantAt, time.Time.Equal) {
		t.Fatalf("clock read %v while firing, want %v", seenAt, wantAt)
	}
	if got, want := c.Now(), start.Add(6*time.Second-time.Nanosecond); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
	c.Skip(time.Hour)
	if got, want := c.Now(), start.Add(time.Hour+6*time.Second-time.Nanosecond); !got.Equal(want) {
		t.Fatalf("after Skip Now = %v, want %v", got, want)
	}
}
