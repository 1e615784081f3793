package api

import (
	"sync/atomic"
	"time"
)

// rateMeter counts events per clock second without a lock: the hot path
// is one atomic load and one atomic add on a word holding both the second
// being counted and its count, so an event is counted in the second it was
// marked in (unless the clock moves on between the two, at the boundary).
// The first event of a new second closes the previous one, with a
// compare-and-swap that decides which caller does, and hands its count to
// onClose.
type rateMeter struct {
	now func() time.Time
	// state is the Unix second being counted (above countBits) and its
	// events so far (the low countBits).
	state atomic.Int64
	// last is the count of the last closed second, lastWindow that second.
	last       atomic.Int64
	lastWindow atomic.Int64
	// onClose, when set, receives each closed second and its count, one
	// call at a time in the order of the seconds.
	onClose func(second, count int64)
}

// countBits holds a second's count: up to 16.7 million events a second,
// far beyond what a node answers.
const countBits = 24

const countMask = 1<<countBits - 1

// mark counts one event now.
func (m *rateMeter) mark() {
	sec := m.now().Unix()
	for {
		v := m.state.Load()
		w := v >> countBits
		if w == sec || w > sec { // (w > sec: a clock stepped back)
			m.state.Add(1) // a count of 2^24 a second would carry into the second
			return
		}
		if m.state.CompareAndSwap(v, sec<<countBits|1) {
			if v != 0 {
				m.close(w, v&countMask)
			}
			return
		}
	}
}

// close records the count of second w.
func (m *rateMeter) close(w, n int64) {
	m.last.Store(n)
	m.lastWindow.Store(w)
	if m.onClose != nil {
		m.onClose(w, n)
	}
}

// rate is the events per second of the last whole second: the count of
// the second before now, 0 when nothing was counted in it.
func (m *rateMeter) rate() float64 {
	sec := m.now().Unix()
	v := m.state.Load()
	w := v >> countBits
	switch {
	case w == sec-1:
		return float64(v & countMask)
	case m.lastWindow.Load() == sec-1 && w == sec:
		return float64(m.last.Load())
	}
	return 0
}
