package webhook

import (
	"sync"

	"github.com/presence-cluster/presence/messages"
)

// item is one event waiting for a receiver. check marks the current state
// of a user that was just activated: it is sent only if the ledger shows it
// undelivered (another node may have crashed before delivering it).
type item struct {
	st    *messages.UserState
	check bool
}

// queue holds the events of one receiver: a bounded ring in arrival order
// and, past the bound, the latest state of each user that overflowed
// (catch-up). A user with a catch-up entry gets no ring entry until the
// entry is taken, so its events still leave in version order.
type queue struct {
	mu      sync.Mutex
	ring    []item
	head, n int
	catchup map[int64]item
	// wake has room for one signal: a push after the sender looked finds
	// it there.
	wake chan struct{}
}

func newQueue(limit int) *queue {
	return &queue{ring: make([]item, limit), catchup: make(map[int64]item), wake: make(chan struct{}, 1)}
}

// push adds it without blocking. overflowed reports that it went to the
// catch-up set (the ring was full, or the user already had an entry there);
// first reports the queue turning from normal to overflowing.
func (q *queue) push(it item) (overflowed, first bool) {
	id := it.st.GetUserId()
	q.mu.Lock()
	if old, ok := q.catchup[id]; ok {
		if it.st.GetVersion() >= old.st.GetVersion() {
			q.catchup[id] = item{st: it.st, check: it.check && old.check}
		}
		q.mu.Unlock()
		return true, false
	}
	if q.n == len(q.ring) {
		first = len(q.catchup) == 0
		q.catchup[id] = it
		q.mu.Unlock()
		q.signal()
		return true, first
	}
	q.ring[(q.head+q.n)%len(q.ring)] = it
	q.n++
	q.mu.Unlock()
	q.signal()
	return false, false
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// depth is the number of events waiting (ring and catch-up).
func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + len(q.catchup)
}

// take moves up to max events into dst, ring first; catch-up entries are
// taken only once the ring is empty, so each comes after every older event
// of its user. caughtUp reports that the catch-up set was emptied.
func (q *queue) take(dst []item, max int) (_ []item, caughtUp bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 && len(dst) < max {
		dst = append(dst, q.ring[q.head])
		q.ring[q.head] = item{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	if q.n > 0 || len(q.catchup) == 0 {
		return dst, false
	}
	for id, it := range q.catchup {
		if len(dst) >= max {
			break
		}
		dst = append(dst, it)
		delete(q.catchup, id)
	}
	return dst, len(q.catchup) == 0
}
