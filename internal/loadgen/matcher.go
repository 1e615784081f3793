package loadgen

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// wsSess is one simulated session; kept small (the connection itself is
// held by its reader goroutine).
type wsSess struct {
	ackAt    atomic.Int64 // unix ns the "subscribed" answer arrived
	closedAt atomic.Int64 // unix ns the session ended; 0 while open
	conn     atomic.Pointer[websocket.Conn]
}

type changeKey struct {
	user    int32
	version uint64
}

type receipt struct {
	sess int32
	at   int64
}

// pendingChange is one announced or received change: receipts wait here
// until the coordinator tells when the change was sent.
type pendingChange struct {
	sendAt   int64 // 0 until announced
	seenAt   int64 // first receipt or announcement, for expiry
	expected int32
	received int32
	recvs    []receipt
}

// matcher pairs changes the coordinator made (user, version, send time)
// with frames the sessions received.
type matcher struct {
	topo        Topology
	first, cnt  int
	sess        []wsSess
	mu          sync.Mutex
	pend        map[changeKey]*pendingChange
	lat         stats.Histogram
	expected    int64
	received    int64
	missing     int64
	unmatched   int64
	lastExpired time.Time
}

func newMatcher(t Topology, first, count int, sess []wsSess) *matcher {
	return &matcher{topo: t, first: first, cnt: count, sess: sess, pend: make(map[changeKey]*pendingChange)}
}

// expects reports whether session s (global index) had subscribed before
// the change was sent and was still open.
func (m *matcher) expects(s int, sendAt int64) bool {
	ws := &m.sess[s-m.first]
	ack := ws.ackAt.Load()
	if ack == 0 || ack >= sendAt {
		return false
	}
	c := ws.closedAt.Load()
	return c == 0 || c > sendAt
}

// receive records that session s got user u at version v at time at.
func (m *matcher) receive(s, u int, v uint64, at int64) {
	if !m.topo.subscribes(s, u) {
		return // its own user, or a frame it did not ask for
	}
	k := changeKey{int32(u), v}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.topo.refused(s, u) {
		m.unmatched++ // a frame of a user hidden from this session: a leak
		return
	}
	p := m.pend[k]
	if p == nil {
		p = &pendingChange{seenAt: at}
		m.pend[k] = p
	}
	if p.sendAt == 0 {
		p.recvs = append(p.recvs, receipt{int32(s), at})
		return
	}
	m.count(p, k, s, at)
}

func (m *matcher) count(p *pendingChange, k changeKey, s int, at int64) {
	if !m.expects(s, p.sendAt) {
		return
	}
	p.received++
	m.received++
	m.lat.Record(at - p.sendAt)
	if p.received >= p.expected {
		delete(m.pend, k)
	}
}

// announce records a change the coordinator made.
func (m *matcher) announce(u int, v uint64, sendAt int64) {
	k := changeKey{int32(u), v}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pend[k]
	if p == nil {
		p = &pendingChange{seenAt: time.Now().UnixNano()}
		m.pend[k] = p
	}
	if p.sendAt != 0 {
		return // announced twice: ignore
	}
	p.sendAt = sendAt
	m.topo.forSubscribers(u, m.first, m.cnt, func(s int) {
		if m.expects(s, sendAt) {
			p.expected++
		}
	})
	m.expected += int64(p.expected)
	recvs := p.recvs
	p.recvs = nil
	if p.expected == 0 {
		delete(m.pend, k)
		return
	}
	for _, r := range recvs {
		m.count(p, k, int(r.sess), r.at)
	}
}

// expire drops receipts of changes nobody announced (connect and
// disconnect updates) once they are older than maxAge.
func (m *matcher) expire(now time.Time, maxAge time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastExpired) < time.Second {
		return
	}
	m.lastExpired = now
	cut := now.Add(-maxAge).UnixNano()
	for k, p := range m.pend {
		if p.sendAt == 0 && p.seenAt < cut {
			m.unmatched += int64(len(p.recvs))
			delete(m.pend, k)
		}
	}
}

// finish counts what never arrived.
func (m *matcher) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, p := range m.pend {
		if p.sendAt != 0 {
			m.missing += int64(p.expected - p.received)
		} else {
			m.unmatched += int64(len(p.recvs))
		}
		delete(m.pend, k)
	}
}

func (m *matcher) snapshot() (expected, received, missing, unmatched int64, lat *stats.Histogram) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.lat
	c.Counts = append([]uint64(nil), m.lat.Counts...)
	return m.expected, m.received, m.missing, m.unmatched, &c
}
