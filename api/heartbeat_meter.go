package api

import (
	"sync/atomic"
	"time"
)

// rateMeter counts events per clock second without a lock: the hot path
// is one atomic load and one atomic add. The first event of a new second
// closes the previous one (a compare-and-swap decides which caller does),
// and hands its count to onClose. An event racing with the close may be
// counted in the neighbouring second; a meter of load needs no more.
type rateMeter struct {
	now func() time.Time
	// window is the Unix second being counted, count its events so far.
	window atomic.Int64
	count  atomic.Int64
	// last is the count of the last closed second, lastWindow that second.
	last       atomic.Int64
	lastWindow atomic.Int64
	// onClose, when set, receives each closed second and its count, one
	// call at a time in the order of the seconds.
	onClose func(second, count int64)
}

// mark counts one event now.
func (m *rateMeter) mark() {
	sec := m.now().Unix()
	if w := m.window.Load(); w != sec && m.window.CompareAndSwap(w, sec) {
		m.close(w, m.count.Swap(0))
	}
	m.count.Add(1)
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
	switch {
	case m.window.Load() == sec-1:
		return float64(m.count.Load())
	case m.lastWindow.Load() == sec-1 && m.window.Load() == sec:
		return float64(m.last.Load())
	}
	return 0
}
