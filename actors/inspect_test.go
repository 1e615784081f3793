package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

func inspect(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Inspect{Inspect: &messages.Inspect{UserId: id}}}
}

// TestInspect: the actor answers GET /admin/users/{id} with its true
// record, the node it runs on, and the hubs and sessions it counts.
func TestInspect(t *testing.T) {
	e := newEnv(t, func(_ *env, c *Config) { c.NodeName = "n1" })
	const id = 42
	if r := e.req(inspect(id)); r.GetNotFound() == nil {
		t.Fatalf("inspect of a user without a record = %v, want NotFound", r)
	}
	e.state(heartbeat(id))
	hubA, hubB := actor.NewPID("a:1", "hub"), actor.NewPID("b:1", "hub")
	steps := []struct {
		name               string
		msg                *messages.Envelope
		watchers, sessions int32
	}{
		{"no watcher", nil, 0, 0},
		{"one hub watches", watch(id, hubA, 1), 1, 0},
		{"a second hub", watch(id, hubB, 1), 2, 0},
		{"the same hub again", watch(id, hubB, 2), 2, 0},
		{"sessions on two hubs", sessions(id, "a:1/hub", 2, 1), 2, 2},
		{"and more", sessions(id, "b:1/hub", 1, 1), 2, 3},
		{"a hub unwatches", unwatch(id, hubA, 2), 1, 3},
	}
	for _, s := range steps {
		if s.msg != nil {
			e.req(s.msg)
		}
		in := e.req(inspect(id)).GetInspection()
		if in == nil {
			t.Fatalf("%s: no Inspection", s.name)
		}
		if in.GetNode() != "n1" || in.GetState().GetUserId() != id || !in.GetState().GetIsOnline() {
			t.Errorf("%s: inspection %v, want node n1 and user %d online", s.name, in, id)
		}
		if in.GetWatchers() != s.watchers || in.GetSessions() != s.sessions {
			t.Errorf("%s: watchers %d sessions %d, want %d and %d", s.name, in.GetWatchers(), in.GetSessions(), s.watchers, s.sessions)
		}
	}
}

// TestNodeCounters: a NodeInfo asking for counters gets the filler's
// values (and the node name); one that does not gets the cheap answer.
func TestNodeCounters(t *testing.T) {
	calls := 0
	e := newEnv(t, func(_ *env, c *Config) {
		c.NodeName = "n1"
		c.NodeCounters = func(st *messages.NodeStats) { calls++; st.HttpRequests = 7 }
	})
	e.first(heartbeat(1)) // settled: a new user's first activation may be passivating
	for _, counters := range []bool{false, true} {
		r := e.req(&messages.Envelope{Body: &messages.Envelope_NodeInfo{NodeInfo: &messages.NodeInfo{Counters: counters}}})
		st := r.GetNodeStats()
		if st.GetActiveActors() != 1 || st.GetNodeName() != "n1" {
			t.Errorf("counters=%v: %v, want 1 active actor on n1", counters, st)
		}
		if want := map[bool]int64{false: 0, true: 7}[counters]; st.GetHttpRequests() != want {
			t.Errorf("counters=%v: http_requests %d, want %d", counters, st.GetHttpRequests(), want)
		}
	}
	if calls != 1 {
		t.Errorf("the filler ran %d times, want 1", calls)
	}
}
