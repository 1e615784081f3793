package webhook

import (
	"testing"

	"github.com/presence-cluster/presence/messages"
)

func st(id int64, v uint64) *messages.UserState {
	return &messages.UserState{UserId: id, Version: v}
}

type ev struct {
	id int64
	v  uint64
}

func drainAll(q *queue, batch int) []ev {
	var out []ev
	for {
		items, _ := q.take(nil, batch)
		if len(items) == 0 {
			return out
		}
		for _, it := range items {
			out = append(out, ev{it.st.GetUserId(), it.st.GetVersion()})
		}
	}
}

func TestQueueOrderAndOverflow(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		push      []ev
		want      []ev
		overflows int
	}{
		{"fits", 4, []ev{{1, 1}, {2, 1}, {1, 2}}, []ev{{1, 1}, {2, 1}, {1, 2}}, 0},
		{
			// Past the bound only the latest state of user 1 is kept, and
			// it comes after user 1's queued events.
			"overflow keeps latest per user after older ones", 2,
			[]ev{{1, 1}, {2, 1}, {1, 2}, {1, 3}, {2, 2}},
			[]ev{{1, 1}, {2, 1}, {1, 3}, {2, 2}}, 3,
		},
		{
			// A user waiting in catch-up gets no ring entry even when the
			// ring has room again, so its order holds.
			"catch-up user stays in catch-up", 1,
			[]ev{{1, 1}, {1, 2}, {1, 3}},
			[]ev{{1, 1}, {1, 3}}, 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(tc.limit)
			overflows := 0
			for _, e := range tc.push {
				if o, _ := q.push(item{st: st(e.id, e.v)}); o {
					overflows++
				}
			}
			if overflows != tc.overflows {
				t.Errorf("overflows %d, want %d", overflows, tc.overflows)
			}
			got := drainAll(q, 10)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// Catch-up entries of different users come in any order;
			// per user the order must be the wanted one.
			last := map[int64]uint64{}
			for _, e := range got {
				if e.v <= last[e.id] {
					t.Fatalf("user %d: version %d after %d in %v", e.id, e.v, last[e.id], got)
				}
				last[e.id] = e.v
			}
			for _, e := range tc.want {
				if last[e.id] < e.v {
					t.Fatalf("user %d: latest %d missing from %v", e.id, e.v, got)
				}
			}
		})
	}
}

func TestQueueCatchupNotTakenBeforeRing(t *testing.T) {
	q := newQueue(2)
	q.push(item{st: st(1, 1)})
	q.push(item{st: st(2, 1)})
	q.push(item{st: st(1, 2)}) // overflow
	items, caughtUp := q.take(nil, 1)
	if len(items) != 1 || items[0].st.GetVersion() != 1 || caughtUp {
		t.Fatalf("first take %v caughtUp %v", items, caughtUp)
	}
	items, caughtUp = q.take(nil, 5)
	if len(items) != 2 || items[1].st.GetVersion() != 2 || !caughtUp {
		t.Fatalf("second take %+v caughtUp %v", items, caughtUp)
	}
	if q.depth() != 0 {
		t.Fatalf("depth %d", q.depth())
	}
}

func TestBackoffCappedWithJitter(t *testing.T) {
	const lo, hi = 100, 1000
	for attempt, want := range []int{100, 200, 400, 800, 1000, 1000, 1000} {
		for range 50 {
			d := int(backoff(attempt, lo, hi))
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %d outside [%d, %d]", attempt, d, want/2, want)
			}
		}
	}
}
