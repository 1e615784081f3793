package actors

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// testRoute reads presence from one host the way the routing package
// does (routing has the real reader and its own tests; this one exercises
// the activator's side of the protocol): a GetPresenceBatch to the host's
// activator, or to target when set, then the per-user path for what the
// batch could not answer, asking again while the answer is NotOwner. It
// records which users it had to read one by one.
type testRoute struct {
	h       *Host
	target  *actor.PID
	noBatch bool
	// batchTimeout bounds the wait for the batch's answer (default 1s).
	batchTimeout time.Duration

	mu         sync.Mutex
	perUser    []int64
	unanswered int
}

func (r *testRoute) pid() *actor.PID {
	if r.target != nil {
		return r.target
	}
	return r.h.Activator()
}

// request sends env to pid and waits for the answer until ctx ends.
func request(ctx context.Context, h *Host, pid *actor.PID, env *messages.Envelope) (*messages.Envelope, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	res, err := h.system.Root.RequestFuture(pid, env, timeout).Result()
	if err != nil {
		return nil, err
	}
	return res.(*messages.Envelope), nil
}

// readPresence reads ids: one batch, then the users it did not settle one
// by one. A failure answer is an error.
func (r *testRoute) readPresence(ctx context.Context, ids []int64) ([]*messages.UserState, error) {
	out := make([]*messages.UserState, len(ids))
	settled := make([]bool, len(ids))
	if !r.noBatch {
		timeout := r.batchTimeout
		if timeout == 0 {
			timeout = time.Second
		}
		bctx, cancel := context.WithTimeout(ctx, timeout)
		reply, err := request(bctx, r.h, r.pid(), &messages.Envelope{Body: &messages.Envelope_GetPresenceBatch{GetPresenceBatch: &messages.GetPresenceBatch{UserIds: ids}}})
		cancel()
		if err != nil {
			r.mu.Lock()
			r.unanswered++
			r.mu.Unlock()
		}
		if b := reply.GetPresenceBatchReply(); b != nil && len(b.GetOutcomes()) == len(ids) {
			states := b.GetStates()
			for i, o := range b.GetOutcomes() {
				switch o {
				case messages.PresenceOutcome_PRESENCE_OUTCOME_FOUND:
					out[i], states, settled[i] = states[0], states[1:], true
				case messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND:
					settled[i] = true
				}
			}
		}
	}
	var envs []*messages.Envelope
	var at []int
	seen := map[int64]bool{}
	for i, id := range ids {
		if !settled[i] && !seen[id] {
			seen[id] = true
			envs = append(envs, &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: id}}})
			at = append(at, i)
		}
	}
	if len(envs) == 0 {
		return out, nil
	}
	replies, errs := r.RequestAll(ctx, envs)
	for k, i := range at {
		if errs[k] != nil {
			return nil, errs[k]
		}
		if f := replies[k].GetFailure(); f != nil {
			return nil, &failureError{userID: ids[i], f: f}
		}
		for j, id := range ids {
			if id == ids[i] && !settled[j] {
				out[j] = replies[k].GetStateReply().GetState()
			}
		}
	}
	return out, nil
}

// failureError is a Failure answer as an error.
type failureError struct {
	userID int64
	f      *messages.Failure
}

func (e *failureError) Error() string { return e.f.GetDetail() }

func (r *testRoute) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	replies, errs := make([]*messages.Envelope, len(envs)), make([]error, len(envs))
	for i, env := range envs {
		r.mu.Lock()
		r.perUser = append(r.perUser, UserID(env))
		r.mu.Unlock()
		for {
			replies[i], errs[i] = request(ctx, r.h, r.pid(), env)
			if errs[i] != nil || replies[i].GetNotOwner() == nil {
				break
			}
			select {
			case <-ctx.Done():
				replies[i], errs[i] = nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
				continue // the owner may have changed: ask again
			}
			break
		}
	}
	return replies, errs
}

// takePerUser returns (and forgets) the users read one by one, sorted.
func (r *testRoute) takePerUser() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.perUser
	r.perUser = nil
	slices.Sort(out)
	return out
}

func (e *env) route() *testRoute { return &testRoute{h: e.host} }

// read is a ReadPresence through route that must succeed.
func (e *env) read(route *testRoute, ids ...int64) []*messages.UserState {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	states, err := route.readPresence(ctx, ids)
	if err != nil {
		e.tb.Fatalf("ReadPresence(%v): %v", ids, err)
	}
	if len(states) != len(ids) {
		e.tb.Fatalf("ReadPresence(%v) returned %d states", ids, len(states))
	}
	return states
}

// batch sends GetPresenceBatch straight to the activator.
func (e *env) batch(ids ...int64) *messages.PresenceBatchReply {
	e.tb.Helper()
	reply := e.req(&messages.Envelope{Body: &messages.Envelope_GetPresenceBatch{GetPresenceBatch: &messages.GetPresenceBatch{UserIds: ids}}})
	b := reply.GetPresenceBatchReply()
	if b == nil {
		e.tb.Fatalf("GetPresenceBatch(%v) = %v, want a PresenceBatchReply", ids, reply)
	}
	return b
}

// wantState is one expected entry of a ReadPresence result; id 0 means
// "no record".
type wantState struct {
	id int64
	v  view
}

func checkStates(tb testing.TB, what string, got []*messages.UserState, want []wantState) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d states, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		if w.id == 0 {
			if got[i] != nil {
				tb.Fatalf("%s: [%d] = %v, want no record", what, i, got[i])
			}
			continue
		}
		if got[i].GetUserId() != w.id {
			tb.Fatalf("%s: [%d] is user %d, want %d (%v)", what, i, got[i].GetUserId(), w.id, got)
		}
		checkView(tb, what, got[i], w.v)
	}
}

// stored7 is a record that exists only in the store until someone reads it.
func stored7(e *env) {
	e.put(&messages.UserState{UserId: 7, Username: "stored", IsBusy: true, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 4}, 0)
}

func TestReadPresence(t *testing.T) {
	online1 := view{Online: true, Version: 1}
	tests := []struct {
		name  string
		opts  []envOption
		setup func(t *testing.T, e *env)
		ids   []int64
		want  []wantState
		// perUser are the users the batch could not answer (read one by
		// one); anyPerUser: it depends on timing (a timer's message and the
		// read race), only the result is checked.
		perUser    []int64
		anyPerUser bool
		// again, when set, reads ids a second time and wants these users
		// read one by one then.
		again []int64
		check func(t *testing.T, got []*messages.UserState)
	}{
		{
			name: "a PUT is in the next read, from the snapshot",
			setup: func(t *testing.T, e *env) {
				e.first(heartbeat(1))
				e.req(update(1, busy))
			},
			ids:  []int64{1},
			want: []wantState{{1, view{Online: true, Busy: true, Version: 2}}},
		},
		{
			name: "a heartbeat's last_seen is in the next read",
			setup: func(t *testing.T, e *env) {
				e.first(heartbeat(1))
				e.clock.Advance(time.Second)
				e.req(heartbeat(1))
			},
			ids:  []int64{1},
			want: []wantState{{1, online1}},
			check: func(t *testing.T, got []*messages.UserState) {
				if got[0].GetLastSeen() != at(time.Second) {
					t.Fatalf("last_seen %d, want %d", got[0].GetLastSeen(), at(time.Second))
				}
			},
		},
		{
			name:       "the inactivity timer's offline",
			setup:      func(t *testing.T, e *env) { e.first(heartbeat(1)); e.clock.Advance(testOfflineAfter) },
			ids:        []int64{1},
			want:       []wantState{{1, view{Version: 2}}},
			anyPerUser: true,
		},
		{
			name: "the busy timer's expiry",
			setup: func(t *testing.T, e *env) {
				e.first(update(1, busyUntil(at(time.Minute))))
				e.clock.Advance(time.Minute)
			},
			ids:        []int64{1},
			want:       []wantState{{1, view{Version: 2}}},
			anyPerUser: true,
		},
		{
			name: "the disconnect grace's offline",
			setup: func(t *testing.T, e *env) {
				e.first(getStatus(1, "", true))
				e.req(sessions(1, "h", 1, 1))
				e.req(sessions(1, "h", 0, 2))
				e.clock.Advance(testGrace)
			},
			ids:        []int64{1},
			want:       []wantState{{1, view{Version: 3}}},
			anyPerUser: true,
		},
		{
			name: "a due timer that has not fired sends the read to the actor",
			setup: func(t *testing.T, e *env) {
				e.first(heartbeat(1))
				e.clock.Skip(testOfflineAfter)
			},
			ids:     []int64{1},
			want:    []wantState{{1, online1}},
			perUser: []int64{1},
		},
		{
			name: "order kept, users without record left out",
			setup: func(t *testing.T, e *env) {
				e.first(heartbeat(3))
				e.first(heartbeat(1))
				e.first(heartbeat(2))
			},
			ids:     []int64{3, 99, 1, 2},
			want:    []wantState{{3, online1}, {}, {1, online1}, {2, online1}},
			perUser: []int64{99},
		},
		{
			name:    "a user not active is activated from the store, then read from its snapshot",
			setup:   func(t *testing.T, e *env) { stored7(e) },
			ids:     []int64{7},
			want:    []wantState{{7, view{Busy: true, Version: 4}}},
			perUser: []int64{7},
			again:   []int64{},
		},
		{
			name: "duplicates",
			setup: func(t *testing.T, e *env) {
				e.first(heartbeat(1))
				stored7(e)
			},
			ids:     []int64{1, 7, 1, 7},
			want:    []wantState{{1, online1}, {7, view{Busy: true, Version: 4}}, {1, online1}, {7, view{Busy: true, Version: 4}}},
			perUser: []int64{7},
		},
		{
			name: "a watched user without record is answered from the snapshot",
			setup: func(t *testing.T, e *env) {
				e.first(watch(5, newCollector(t, e.system).pid, 1))
			},
			ids:  []int64{5},
			want: []wantState{{}},
		},
		{
			name: "the creation of a watched user's record is in the next read",
			setup: func(t *testing.T, e *env) {
				e.first(watch(5, newCollector(t, e.system).pid, 1))
				e.read(e.route(), 5)
				e.req(getStatus(5, "", true))
			},
			ids:  []int64{5},
			want: []wantState{{5, view{Version: 1}}},
		},
		{
			name: "a passivated user is read from the store",
			opts: []envOption{withPassivateAfter(50 * time.Millisecond)},
			setup: func(t *testing.T, e *env) {
				e.first(update(1, busy))
				e.waitInactive(1)
			},
			ids:     []int64{1},
			want:    []wantState{{1, view{Busy: true, Version: 1}}},
			perUser: []int64{1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			tc.setup(t, e)
			route := e.route()
			route.takePerUser() // what the setup read
			got := e.read(route, tc.ids...)
			checkStates(t, "read", got, tc.want)
			if tc.check != nil {
				tc.check(t, got)
			}
			if per := route.takePerUser(); !tc.anyPerUser && !slices.Equal(per, tc.perUser) {
				t.Fatalf("read one by one %v, want %v", per, tc.perUser)
			}
			if tc.again != nil {
				checkStates(t, "again", e.read(route, tc.ids...), tc.want)
				if per := route.takePerUser(); !slices.Equal(per, tc.again) {
					t.Fatalf("again: read one by one %v, want %v", per, tc.again)
				}
			}
		})
	}
}

// Every answered write is in the read that follows it: the snapshot is
// published before the answer leaves the actor.
func TestReadYourWritesFromSnapshots(t *testing.T) {
	const id = 1
	e := newEnv(t)
	route := e.route()
	e.first(heartbeat(id))
	for i := range 50 {
		var st *messages.UserState
		switch i % 3 {
		case 0:
			st = e.state(update(id, busy))
		case 1:
			st = e.state(update(id, notBusy))
		case 2:
			e.clock.Advance(time.Millisecond)
			st = e.state(heartbeat(id))
		}
		got := e.read(route, id)
		checkEqual(t, "read after the answer", got[0], st)
	}
	if per := route.takePerUser(); len(per) != 0 {
		t.Fatalf("read one by one %v, want every read from the snapshot", per)
	}
}

// The activator's own answer, outcome by outcome.
func TestPresenceBatchOutcomes(t *testing.T) {
	const notOwned = 2
	e := newEnv(t, withOwner(func(id int64) bool { return id != notOwned }))
	e.first(heartbeat(1))
	e.first(watch(5, newCollector(t, e.system).pid, 1))
	stored7(e) // stored, not active

	b := e.batch(1, 5, 7, 0, notOwned, 1)
	want := []messages.PresenceOutcome{
		messages.PresenceOutcome_PRESENCE_OUTCOME_FOUND,
		messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND,
		messages.PresenceOutcome_PRESENCE_OUTCOME_MISS,
		messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND,
		messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_OWNER,
		messages.PresenceOutcome_PRESENCE_OUTCOME_FOUND,
	}
	if !slices.Equal(b.GetOutcomes(), want) {
		t.Fatalf("outcomes %v, want %v", b.GetOutcomes(), want)
	}
	if len(b.GetStates()) != 2 || b.GetStates()[0].GetUserId() != 1 || b.GetStates()[1].GetUserId() != 1 {
		t.Fatalf("states %v, want user 1 twice", b.GetStates())
	}
	if got := e.active(); !slices.Equal(got, []int64{1, 5}) {
		t.Fatalf("active %v after the batch, want [1 5]: a batch activates nobody", got)
	}
}

// A user this node does not own is answered NotOwner by the batch, and
// read through the per-user path, which asks again until an owner answers.
func TestReadPresenceReroutesNotOwned(t *testing.T) {
	const moving = 2
	var away atomic.Bool
	e := newEnv(t, withOwner(func(id int64) bool { return id != moving || !away.Load() }))
	e.first(heartbeat(1))
	e.first(update(moving, busy))

	// The user moves away: its actor stops (handoff), its cell with it.
	away.Store(true)
	e.host.ViewChanged(func(string) bool { return true }, false)
	e.waitInactive(moving)
	b := e.batch(1, moving)
	if got := b.GetOutcomes(); len(got) != 2 || got[1] != messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_OWNER {
		t.Fatalf("outcomes %v, want [FOUND NOT_OWNER]", got)
	}

	// The sender's retry finds the owner (here: the user moved back).
	time.AfterFunc(30*time.Millisecond, func() { away.Store(false) })
	route := e.route()
	loads := e.store.loads.Load()
	got := e.read(route, moving, 1)
	checkStates(t, "read", got, []wantState{{moving, view{Busy: true, Version: 1}}, {1, view{Online: true, Version: 1}}})
	if per := route.takePerUser(); !slices.Equal(per, []int64{moving}) {
		t.Fatalf("read one by one %v, want [%d]", per, moving)
	}
	if n := e.store.loads.Load() - loads; n != 1 {
		t.Fatalf("%d loads, want 1: the new owner activates the user from the store", n)
	}
}

// After a join, an actor adopts a newer stored record (another activation
// wrote it while views disagreed) and publishes it.
func TestReadPresenceAfterRefresh(t *testing.T) {
	const id = 1
	e := newEnv(t)
	e.first(heartbeat(id))
	st := e.stored(id)
	prev := st.Version
	st.IsBusy, st.Version = true, prev+4 // the 5th change
	e.put(st, prev)
	e.host.ViewChanged(func(string) bool { return true }, true)
	route := e.route()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := e.read(route, id)
		if relVersion(got[0]) == 5 {
			checkView(t, "refreshed", got[0], view{Online: true, Busy: true, Version: 5})
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %v 3s after the refresh, want version 5", got[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reads served from the snapshot are not messages to the actor, so they
// do not keep an idle actor in memory; the next read activates it again.
func TestSnapshotReadsDoNotPreventPassivation(t *testing.T) {
	const id = 1
	e := newEnv(t, withPassivateAfter(50*time.Millisecond))
	e.first(update(id, busy)) // busy without expiry: no timer, idle
	route := e.route()
	deadline := time.Now().Add(3 * time.Second)
	for slices.Contains(e.active(), id) {
		checkStates(t, "while active", e.read(route, id), []wantState{{id, view{Busy: true, Version: 1}}})
		if time.Now().After(deadline) {
			t.Fatal("an idle actor read from its snapshot did not passivate in 3s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	route.takePerUser()
	checkStates(t, "after passivation", e.read(route, id), []wantState{{id, view{Busy: true, Version: 1}}})
	if per := route.takePerUser(); !slices.Equal(per, []int64{id}) {
		t.Fatalf("read one by one %v, want [%d] (re-activation)", per, id)
	}
}

// A node older than GetPresenceBatch ignores it: the read waits at most the
// batch timeout, tells the route, and reads every user one by one.
func TestReadPresenceFromOlderNode(t *testing.T) {
	e := newEnv(t)
	e.first(heartbeat(1))
	activator := e.host.Activator()
	// What an older activator does with this version's messages: it
	// forwards those about a user and ignores the rest.
	legacy, err := e.system.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if env, ok := ctx.Message().(*messages.Envelope); ok && UserID(env) > 0 {
			ctx.Forward(activator)
		}
	}), "legacy-activator")
	if err != nil {
		t.Fatal(err)
	}
	route := &testRoute{h: e.host, target: legacy, batchTimeout: 50 * time.Millisecond}
	start := time.Now()
	got := e.read(route, 1, 99)
	checkStates(t, "read", got, []wantState{{1, view{Online: true, Version: 1}}, {}})
	if per := route.takePerUser(); !slices.Equal(per, []int64{1, 99}) {
		t.Fatalf("read one by one %v, want [1 99]", per)
	}
	if route.unanswered != 1 {
		t.Fatalf("BatchUnanswered called %d times, want 1", route.unanswered)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("read took %v", d)
	}
}

// A route that sends no batch (an owner known to ignore them) reads
// everything one by one, with the same result.
func TestReadPresenceWithoutBatches(t *testing.T) {
	e := newEnv(t)
	e.first(heartbeat(1))
	route := &testRoute{h: e.host, noBatch: true}
	checkStates(t, "read", e.read(route, 99, 1), []wantState{{}, {1, view{Online: true, Version: 1}}})
	if per := route.takePerUser(); !slices.Equal(per, []int64{1, 99}) {
		t.Fatalf("read one by one %v, want [1 99]", per)
	}
}

// An actor that cannot load its record publishes nothing: the read goes to
// it and its refusal, UNAVAILABLE, comes back.
func TestReadPresenceRefusal(t *testing.T) {
	const broken = 64
	e := newEnv(t)
	e.first(heartbeat(1))
	e.put(&messages.UserState{UserId: broken, IsBusy: true, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 3}, 0)
	e.store.failLoad.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.route().readPresence(ctx, []int64{1, broken})
	var refused *failureError
	if !errors.As(err, &refused) || refused.userID != broken || refused.f.GetKind() != messages.FailureKind_FAILURE_KIND_UNAVAILABLE || refused.f.GetDetail() != detailStoreUnavailable {
		t.Fatalf("err = %v, want an UNAVAILABLE failure of user %d", err, broken)
	}
}
