package api

import (
	"sync/atomic"
	"time"
)

// rateMeter counts events per clock second without a lock: the hot path
// is one atomic load and one compare-and-swap of a word holding both the
// second being counted and its count, so an event is always counted in the
// second it was marked in. The first event of a new second closes the
// previous one and hands its count to onClose.
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

// countBits holds a second's count: up to 16.7 million events a second.
const countBits = 24

const countMask = 1<<countBits - 1

// mark counts one event now.
func (m *rateMeter) mark() {
	sec := m.now().Unix()
	for {
		v := m.state.Load()
		w, n := v>>countBits, v&countMask
		if w == sec {
			if n == countMask || m.state.CompareAndSwap(v, v+1) {
				return // (a full count saturates)
			}
			continue
		}
		if w > sec {
			return // a clock stepped back: counted as part of the newer second's
		}
		if m.state.CompareAndSwap(v, sec<<countBits|1) {
			if v != 0 {
				m.close(w, n)
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
