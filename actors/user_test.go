package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// t0 is where every fake clock starts: a whole second, so Unix microseconds
// and the clock agree exactly.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testOfflineAfter = 5 * time.Minute
	testGrace        = 15 * time.Second
)

func us(t time.Time) int64 { return t.UnixMicro() }

// at returns the Unix microseconds of t0+d.
func at(d time.Duration) int64 { return us(t0.Add(d)) }

// faultyStore is the memory store with failures on demand and call counts.
type faultyStore struct {
	*store.Memory
	failSave  atomic.Bool
	failLoad  atomic.Bool
	failTouch atomic.Bool
	saves     atomic.Int64
	loads     atomic.Int64
	touches   atomic.Int64
}

func (s *faultyStore) Save(ctx context.Context, st *messages.UserState, prev uint64) error {
	s.saves.Add(1)
	if s.failSave.Load() {
		return fmt.Errorf("injected save failure: %w", store.ErrUnavailable)
	}
	return s.Memory.Save(ctx, st, prev)
}

func (s *faultyStore) Load(ctx context.Context, id int64) (*messages.UserState, error) {
	s.loads.Add(1)
	if s.failLoad.Load() {
		return nil, fmt.Errorf("injected load failure: %w", store.ErrUnavailable)
	}
	return s.Memory.Load(ctx, id)
}

func (s *faultyStore) TouchLastSeen(ctx context.Context, touches []store.Touch) error {
	s.touches.Add(1)
	if s.failTouch.Load() {
		return fmt.Errorf("injected touch failure: %w", store.ErrUnavailable)
	}
	return s.Memory.TouchLastSeen(ctx, touches)
}

// countingObserver counts the Observer events.
type countingObserver struct {
	activated, passivated, flaps atomic.Int64
	cleanupOffline, cleanupBusy  atomic.Int64
	mu                           sync.Mutex
	offline                      []time.Duration
}

func (o *countingObserver) ActorActivated()  { o.activated.Add(1) }
func (o *countingObserver) ActorPassivated() { o.passivated.Add(1) }
func (o *countingObserver) FlapSuppressed()  { o.flaps.Add(1) }
func (o *countingObserver) CleanupFound(offline, busy int64) {
	o.cleanupOffline.Add(offline)
	o.cleanupBusy.Add(busy)
}
func (o *countingObserver) WentOffline(d time.Duration) {
	o.mu.Lock()
	o.offline = append(o.offline, d)
	o.mu.Unlock()
}

func (o *countingObserver) wentOffline() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.offline)
}

// env is one node: an actor system, a host, the memory store behind a
// faultyStore, and a fake clock.
type env struct {
	tb       testing.TB
	clock    *fakeClock
	store    *faultyStore
	lastSeen *store.LastSeenWriter
	obs      *countingObserver
	system   *actor.ActorSystem
	host     *Host
	owns     OwnerFunc
}

type envOption func(*env, *Config)

// withWriter configures a LastSeenWriter that flushes only when told (its
// interval is an hour).
func withWriter() envOption {
	return func(e *env, c *Config) {
		e.lastSeen = store.NewLastSeenWriter(e.store, time.Hour, nil)
		c.LastSeen = e.lastSeen
	}
}

// withStore makes the env's store the memory store m (another env's: a
// second node sharing the store).
func withStore(m *store.Memory) envOption {
	return func(e *env, _ *Config) { e.store.Memory = m }
}

func withPassivateAfter(d time.Duration) envOption {
	return func(_ *env, c *Config) { c.PassivateAfter = d }
}

func withClock(clk Clock) envOption {
	return func(_ *env, c *Config) { c.Clock = clk }
}

// withOwner makes the activator own only the users owns says.
func withOwner(owns OwnerFunc) envOption {
	return func(e *env, _ *Config) { e.owns = owns }
}

func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	e := &env{
		tb:     tb,
		clock:  newFakeClock(t0),
		store:  &faultyStore{Memory: store.NewMemory()},
		obs:    &countingObserver{},
		system: actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet })),
	}
	cfg := Config{
		Store:           e.store,
		OfflineAfter:    testOfflineAfter,
		DisconnectGrace: testGrace,
		// Long enough that no test passivates unless it asks to.
		PassivateAfter: time.Minute,
		StoreTimeout:   5 * time.Second,
		Clock:          e.clock,
		Logger:         quiet,
		Observer:       e.obs,
		Shards:         testShards,
	}
	for _, o := range opts {
		o(e, &cfg)
	}
	h, err := NewHost(e.system, cfg, e.owns)
	if err != nil {
		tb.Fatalf("NewHost: %v", err)
	}
	e.host = h
	tb.Cleanup(func() {
		if err := h.Stop(); err != nil {
			tb.Errorf("host.Stop: %v", err)
		}
		e.system.Shutdown()
		if e.lastSeen != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.lastSeen.Close(ctx); err != nil {
				tb.Errorf("LastSeenWriter.Close: %v", err)
			}
		}
	})
	return e
}

// req sends env through the activator and returns the answer.
func (e *env) req(m *messages.Envelope) *messages.Envelope {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := request(ctx, e.host, e.host.Activator(), m)
	if err != nil {
		e.tb.Fatalf("Request(%v): %v", m, err)
	}
	return reply
}

// state sends m and requires a StateReply.
func (e *env) state(m *messages.Envelope) *messages.UserState {
	e.tb.Helper()
	reply := e.req(m)
	st := reply.GetStateReply().GetState()
	if st == nil {
		e.tb.Fatalf("Request(%v) = %v, want a StateReply", m, reply)
	}
	return st
}

// presence returns the user's presence, or nil for NotFound.
func (e *env) presence(id int64) *messages.UserState {
	e.tb.Helper()
	reply := e.req(getPresence(id))
	if reply.GetNotFound() != nil {
		return nil
	}
	st := reply.GetStateReply().GetState()
	if st == nil {
		e.tb.Fatalf("GetPresence(%d) = %v", id, reply)
	}
	return st
}

func (e *env) mustPresence(id int64) *messages.UserState {
	e.tb.Helper()
	st := e.presence(id)
	if st == nil {
		e.tb.Fatalf("GetPresence(%d) = NotFound", id)
	}
	return st
}

// advance moves the fake clock and then waits, with a request round trip,
// until the user's actor has handled whatever the fired timers sent it
// (timers post straight to the actor's mailbox, ahead of the request).
func (e *env) advance(id int64, d time.Duration) *messages.UserState {
	e.tb.Helper()
	e.clock.Advance(d)
	return e.presence(id)
}

// first sends m, the message that creates id's record, and then settles:
// it waits with a round trip until the actor that will handle id's next
// messages is in place. An actor activated for a user without a record
// starts its passivation at once and may stop (or hand over to a fresh
// activation) right after the creating message; the round trip makes the
// tests that are not about that (TestFirstMessageToNewUser is) start from a
// settled actor, deterministically.
func (e *env) first(m *messages.Envelope) *messages.Envelope {
	e.tb.Helper()
	reply := e.req(m)
	e.presence(UserID(m))
	return reply
}

// stored returns the record in the store, or nil.
func (e *env) stored(id int64) *messages.UserState {
	e.tb.Helper()
	st, err := e.store.Memory.Load(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.tb.Fatalf("store.Load(%d): %v", id, err)
	}
	return st
}

// put writes a record straight into the store, behind any actor's back.
func (e *env) put(st *messages.UserState, prev uint64) {
	e.tb.Helper()
	if err := e.store.Memory.Save(context.Background(), st, prev); err != nil {
		e.tb.Fatalf("store.Save(%v, %d): %v", st, prev, err)
	}
}

func (e *env) active() []int64 {
	e.tb.Helper()
	ids, err := e.host.ActiveUsers(context.Background())
	if err != nil {
		e.tb.Fatalf("ActiveUsers: %v", err)
	}
	slices.Sort(ids)
	return ids
}

// waitInactive polls until id has no actor, or fails after 3s.
func (e *env) waitInactive(id int64) {
	e.tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for slices.Contains(e.active(), id) {
		if time.Now().After(deadline) {
			e.tb.Fatalf("user %d still active after 3s: %v", id, e.active())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Envelope builders.

func getStatus(id int64, name string, create bool) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_GetStatus{GetStatus: &messages.GetStatus{UserId: id, Username: name, Create: create}}}
}

func heartbeat(id int64) *messages.Envelope { return heartbeatAs(id, "") }

func heartbeatAs(id int64, name string) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{UserId: id, Username: name}}}
}

func activity(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Activity{Activity: &messages.Activity{UserId: id}}}
}

func getPresence(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: id}}}
}

func recheck(id int64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: id}}}
}

// update clones u with the user id set.
func update(id int64, u *messages.UpdateStatus) *messages.Envelope {
	c := proto.Clone(u).(*messages.UpdateStatus)
	c.UserId = id
	return &messages.Envelope{Body: &messages.Envelope_UpdateStatus{UpdateStatus: c}}
}

func sessions(id int64, hub string, count int32, seq uint64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Sessions{Sessions: &messages.Sessions{UserId: id, Hub: hub, Count: count, Seq: seq}}}
}

// resent is a hub's count sent again to a new owner.
func resent(id int64, hub string, count int32, seq uint64) *messages.Envelope {
	m := sessions(id, hub, count, seq)
	m.GetSessions().Resend = true
	return m
}

func watch(id int64, pid *actor.PID, seq uint64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Watch{Watch: &messages.Watch{UserId: id, HubAddress: pid.Address, HubId: pid.Id, Seq: seq}}}
}

func unwatch(id int64, pid *actor.PID, seq uint64) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Unwatch{Unwatch: &messages.Unwatch{UserId: id, HubAddress: pid.Address, HubId: pid.Id, Seq: seq}}}
}

// Update bodies.
var (
	online    = &messages.UpdateStatus{SetOnline: true, IsOnline: true}
	offline   = &messages.UpdateStatus{SetOnline: true, IsOnline: false}
	busy      = &messages.UpdateStatus{SetBusy: true, IsBusy: true}
	notBusy   = &messages.UpdateStatus{SetBusy: true, IsBusy: false}
	untilNull = &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: 0}
)

func busyUntil(t int64) *messages.UpdateStatus {
	return &messages.UpdateStatus{SetBusy: true, IsBusy: true, SetBusyUntil: true, BusyUntil: t}
}

func untilOnly(t int64) *messages.UpdateStatus {
	return &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: t}
}

// view is what watchers see of a record, plus its version.
type view struct {
	Online    bool
	Busy      bool
	BusyUntil int64
	Version   uint64
}

func viewOf(s *messages.UserState) view {
	return view{s.GetIsOnline(), s.GetIsBusy(), s.GetBusyUntil(), relVersion(s)}
}

// relVersion is a record's version counted from its creation (1 for the
// creating change), so tables can say "the second change": a record the
// actor creates starts at the clock's microseconds, which is its
// created_at. A record a test stored itself (a small version) is left as
// it is.
func relVersion(s *messages.UserState) uint64 {
	v, c := s.GetVersion(), s.GetCreatedAt()
	if c > 0 && v >= uint64(c) {
		return v - uint64(c) + 1
	}
	return v
}

// relative returns a copy of s with its version counted from its creation
// (see relVersion).
func relative(s *messages.UserState) *messages.UserState {
	if s == nil {
		return nil
	}
	c := proto.Clone(s).(*messages.UserState)
	c.Version = relVersion(s)
	return c
}

func checkView(tb testing.TB, what string, got *messages.UserState, want view) {
	tb.Helper()
	if got == nil {
		tb.Fatalf("%s: no record, want %+v", what, want)
	}
	if g := viewOf(got); g != want {
		tb.Fatalf("%s: got %+v, want %+v (record %v)", what, g, want, got)
	}
}

func checkEqual(tb testing.TB, what string, got, want *messages.UserState) {
	tb.Helper()
	if !proto.Equal(relative(got), relative(want)) {
		tb.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func checkFailure(tb testing.TB, reply *messages.Envelope, kind messages.FailureKind, detail string) {
	tb.Helper()
	f := reply.GetFailure()
	if f == nil || f.GetKind() != kind || f.GetDetail() != detail {
		tb.Fatalf("reply = %v, want Failure{%v %q}", reply, kind, detail)
	}
}

// collector is a stand-in for a hub: it records the PresenceUpdates pushed
// to it. take returns (and forgets) what arrived so far; since a user actor
// posts its pushes before it answers the request that caused them, a take
// after that answer sees them.
type collector struct {
	tb     testing.TB
	system *actor.ActorSystem
	pid    *actor.PID
}

type takeUpdates struct{}

func newCollector(tb testing.TB, system *actor.ActorSystem) *collector {
	var got []*messages.UserState // touched only by the actor
	pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Envelope:
			if u := m.GetPresenceUpdate(); u != nil {
				got = append(got, u.GetState())
			} else {
				got = append(got, &messages.UserState{Username: fmt.Sprintf("unexpected push %v", m)})
			}
		case *takeUpdates:
			ctx.Respond(got)
			got = nil
		}
	}))
	return &collector{tb: tb, system: system, pid: pid}
}

func (c *collector) take() []*messages.UserState {
	c.tb.Helper()
	res, err := c.system.Root.RequestFuture(c.pid, &takeUpdates{}, 5*time.Second).Result()
	if err != nil {
		c.tb.Fatalf("collector: %v", err)
	}
	out, _ := res.([]*messages.UserState)
	return out
}

func (c *collector) expect(what string, want ...view) {
	c.tb.Helper()
	got := c.take()
	views := make([]view, len(got))
	for i, s := range got {
		views[i] = viewOf(s)
	}
	if !slices.Equal(views, want) {
		c.tb.Fatalf("%s: pushed %+v, want %+v", what, views, want)
	}
}

// ---------------------------------------------------------------------------

func TestRecordCreation(t *testing.T) {
	const id = 7
	const hub = "nonhost/hub"
	created := func(online, busy bool) *messages.UserState {
		return &messages.UserState{
			UserId: id, Username: "alice", IsOnline: online, IsBusy: busy,
			LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 1,
		}
	}
	tests := []struct {
		name string
		msg  *messages.Envelope
		want *messages.UserState // nil: no record may be created
		// wantReply checks the answer when no record is created.
		wantReply func(*messages.Envelope) bool
	}{
		{name: "GetStatus create", msg: getStatus(id, "alice", true), want: created(false, false)},
		{name: "Heartbeat", msg: heartbeatAs(id, "alice"), want: created(true, false)},
		{name: "UpdateStatus", msg: update(id, &messages.UpdateStatus{Username: "alice", SetBusy: true, IsBusy: true}), want: created(false, true)},

		{name: "GetStatus without create", msg: getStatus(id, "alice", false), wantReply: isNotFound},
		{name: "GetPresence", msg: getPresence(id), wantReply: isNotFound},
		{name: "Recheck", msg: recheck(id), wantReply: func(r *messages.Envelope) bool {
			c := r.GetCleanupCount()
			return c != nil && c.GetUsersMarkedOffline() == 0 && c.GetBusyStatusCleared() == 0
		}},
		{name: "Sessions closed", msg: sessions(id, hub, 0, 1), wantReply: isNotFound},
		{name: "Unwatch", msg: unwatch(id, actor.NewPID("nonhost", "hub"), 1), wantReply: func(r *messages.Envelope) bool { return r.GetAck() != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			reply := e.req(tc.msg)
			if tc.want == nil {
				if !tc.wantReply(reply) {
					t.Fatalf("reply = %v", reply)
				}
				if st := e.stored(id); st != nil {
					t.Fatalf("record created: %v", st)
				}
				if st := e.presence(id); st != nil {
					t.Fatalf("GetPresence after = %v, want NotFound", st)
				}
				if n := e.store.saves.Load(); n != 0 {
					t.Fatalf("%d store saves, want 0", n)
				}
				// An actor for a user with no record and no watcher is not kept.
				e.waitInactive(id)
				return
			}
			got := reply.GetStateReply().GetState()
			checkEqual(t, "reply", got, tc.want)
			checkEqual(t, "stored", e.stored(id), tc.want)
			checkEqual(t, "GetPresence", e.presence(id), tc.want)

			// Asking again with create changes nothing.
			e.clock.Skip(time.Second)
			checkEqual(t, "GetStatus create again", e.state(getStatus(id, "alice", true)), tc.want)
			if n := e.store.saves.Load(); n != 1 {
				t.Fatalf("%d store saves, want 1", n)
			}
		})
	}
}

func isNotFound(r *messages.Envelope) bool { return r.GetNotFound() != nil }

// TestFirstMessageToNewUser: the message that creates a record must leave
// an actor that keeps what the message set up (timers, sessions, watches),
// with no further message needed.
func TestFirstMessageToNewUser(t *testing.T) {
	const id = 8
	// waitStored polls the store (not the actor: a request would activate
	// it again) until ok holds, for up to 2s.
	waitStored := func(t *testing.T, e *env, what string, ok func(*messages.UserState) bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			st := e.stored(id)
			if ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stored record still %v after 2s (active actors %v, armed timers %v)", what, st, e.active(), e.clock.Deadlines())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Run("heartbeat: offline after offline_after with no other message", func(t *testing.T) {
		e := newEnv(t)
		e.req(heartbeat(id))
		time.Sleep(20 * time.Millisecond) // let any passivation run its course
		e.clock.Advance(testOfflineAfter)
		waitStored(t, e, "offline_after passed", func(st *messages.UserState) bool { return !st.GetIsOnline() })
	})
	t.Run("PUT busy_until: busy cleared at busy_until with no other message", func(t *testing.T) {
		e := newEnv(t)
		e.req(update(id, busyUntil(at(time.Minute))))
		time.Sleep(20 * time.Millisecond)
		e.clock.Advance(time.Minute)
		waitStored(t, e, "busy_until passed", func(st *messages.UserState) bool { return !st.GetIsBusy() })
	})
	t.Run("Sessions: the open session keeps the user online", func(t *testing.T) {
		e := newEnv(t)
		st := e.state(&messages.Envelope{Body: &messages.Envelope_Sessions{Sessions: &messages.Sessions{UserId: id, Username: "alice", Hub: "nonhost/hub", Count: 1, Seq: 1}}})
		want := &messages.UserState{UserId: id, Username: "alice", IsOnline: true,
			LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 1, SessionsHeld: true}
		checkEqual(t, "reply", st, want)
		checkEqual(t, "stored", e.stored(id), want)
		time.Sleep(20 * time.Millisecond) // let any passivation run its course
		checkView(t, "an hour later, session still open", e.advance(id, time.Hour), view{Online: true, Version: 1})
		// An activation that lost the session count would give it the
		// disconnect grace period from here.
		checkView(t, "and a grace period later", e.advance(id, testGrace), view{Online: true, Version: 1})
	})
	t.Run("Watch of an unknown user: the creation is pushed", func(t *testing.T) {
		e := newEnv(t)
		c := newCollector(t, e.system)
		if r := e.req(watch(id, c.pid, 1)); r.GetNotFound() == nil {
			t.Fatalf("Watch of unknown user = %v, want NotFound", r)
		}
		if st := e.stored(id); st != nil {
			t.Fatalf("Watch created a record: %v", st)
		}
		e.req(heartbeat(id))
		c.expect("creation", view{Online: true, Version: 1})
	})
}

func TestHeartbeat(t *testing.T) {
	for _, writer := range []bool{false, true} {
		t.Run(fmt.Sprintf("LastSeenWriter=%v", writer), func(t *testing.T) {
			var opts []envOption
			if writer {
				opts = append(opts, withWriter())
			}
			e := newEnv(t, opts...)
			const id = 3
			first := e.state(getStatus(id, "bob", true))
			checkView(t, "created", first, view{Version: 1})

			e.clock.Advance(time.Second)
			st := e.state(heartbeat(id))
			want := &messages.UserState{UserId: id, Username: "bob", IsOnline: true,
				LastSeen: at(time.Second), CreatedAt: us(t0), UpdatedAt: at(time.Second), Version: 2}
			checkEqual(t, "first heartbeat", st, want)
			checkEqual(t, "stored after first heartbeat", e.stored(id), want)
			saves, touches := e.store.saves.Load(), e.store.touches.Load()

			e.clock.Advance(10 * time.Second)
			st = e.state(heartbeat(id))
			want.LastSeen = at(11 * time.Second)
			checkEqual(t, "second heartbeat", st, want)
			checkEqual(t, "GetPresence", e.mustPresence(id), want)
			if n := e.store.saves.Load(); n != saves {
				t.Fatalf("second heartbeat saved the record (%d saves, want %d)", n, saves)
			}
			stored := e.stored(id)
			if !writer {
				if n := e.store.touches.Load(); n != touches+1 {
					t.Fatalf("TouchLastSeen called %d times, want %d", n, touches+1)
				}
				checkEqual(t, "stored after second heartbeat", stored, want)
				return
			}
			if n := e.store.touches.Load(); n != touches {
				t.Fatalf("TouchLastSeen called synchronously with a writer configured")
			}
			if stored.GetLastSeen() != at(time.Second) || relVersion(stored) != 2 {
				t.Fatalf("stored before flush = %v, want last_seen %d version 2", stored, at(time.Second))
			}
			if v, ok := e.lastSeen.Pending(id); !ok || v != at(11*time.Second) {
				t.Fatalf("writer pending = %d,%v, want %d", v, ok, at(11*time.Second))
			}
			if err := e.lastSeen.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkEqual(t, "stored after flush", e.stored(id), want)
		})
	}
}

func TestInactivity(t *testing.T) {
	const id = 11
	t.Run("offline exactly offline_after after the heartbeat", func(t *testing.T) {
		e := newEnv(t)
		checkView(t, "heartbeat", e.first(heartbeat(id)).GetStateReply().GetState(), view{Online: true, Version: 1})
		if d := e.clock.Deadlines(); !slices.Equal(d, []time.Time{t0.Add(testOfflineAfter)}) {
			t.Fatalf("armed timers %v, want one at %v", d, t0.Add(testOfflineAfter))
		}
		checkView(t, "just before", e.advance(id, testOfflineAfter-time.Microsecond), view{Online: true, Version: 1})
		st := e.advance(id, time.Microsecond)
		want := &messages.UserState{UserId: id, IsOnline: false, LastSeen: us(t0), CreatedAt: us(t0),
			UpdatedAt: at(testOfflineAfter), Version: 2}
		checkEqual(t, "at the deadline", st, want)
		checkEqual(t, "stored", e.stored(id), want)
		if got := e.obs.wentOffline(); !slices.Equal(got, []time.Duration{testOfflineAfter}) {
			t.Fatalf("WentOffline reports %v, want [%v]", got, testOfflineAfter)
		}
		if d := e.clock.Deadlines(); len(d) != 0 {
			t.Fatalf("timers still armed after going offline: %v", d)
		}
		checkView(t, "an hour later", e.advance(id, time.Hour), view{Version: 2})
	})
	t.Run("a heartbeat in between postpones it", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeat(id))
		e.clock.Advance(3 * time.Minute)
		checkView(t, "second heartbeat", e.state(heartbeat(id)), view{Online: true, Version: 1})
		// The first timer is kept (heartbeats do not churn timers)...
		if d := e.clock.Deadlines(); !slices.Equal(d, []time.Time{t0.Add(testOfflineAfter)}) {
			t.Fatalf("armed timers %v, want one at %v", d, t0.Add(testOfflineAfter))
		}
		// ...and finds, when it fires, that the deadline moved.
		checkView(t, "first deadline", e.advance(id, 2*time.Minute), view{Online: true, Version: 1})
		checkView(t, "just before new deadline", e.advance(id, 3*time.Minute-time.Microsecond), view{Online: true, Version: 1})
		st := e.advance(id, time.Microsecond)
		checkView(t, "new deadline", st, view{Version: 2})
		if st.GetUpdatedAt() != at(8*time.Minute) || st.GetLastSeen() != at(3*time.Minute) {
			t.Fatalf("offline record %v: want updated_at %d, last_seen %d", st, at(8*time.Minute), at(3*time.Minute))
		}
	})
	t.Run("a PUT is a sign of life too", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeat(id))
		e.clock.Advance(4 * time.Minute)
		checkView(t, "PUT", e.state(update(id, busy)), view{Online: true, Busy: true, Version: 2})
		checkView(t, "first deadline", e.advance(id, time.Minute), view{Online: true, Busy: true, Version: 2})
		checkView(t, "just before", e.advance(id, 4*time.Minute-time.Microsecond), view{Online: true, Busy: true, Version: 2})
		checkView(t, "deadline", e.advance(id, time.Microsecond), view{Busy: true, Version: 3})
	})
	t.Run("reads are not signs of life", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeat(id))
		e.clock.Advance(4 * time.Minute)
		e.state(getStatus(id, "", true))
		e.mustPresence(id)
		checkView(t, "deadline", e.advance(id, time.Minute), view{Version: 2})
	})
}

func TestBusyExpiresExactlyAtBusyUntil(t *testing.T) {
	const id = 12
	e := newEnv(t)
	e.first(getStatus(id, "", true))
	until := at(2 * time.Minute)
	checkView(t, "PUT", e.state(update(id, busyUntil(until))), view{Busy: true, BusyUntil: until, Version: 2})
	checkView(t, "just before", e.advance(id, 2*time.Minute-time.Microsecond), view{Busy: true, BusyUntil: until, Version: 2})
	st := e.advance(id, time.Microsecond)
	want := &messages.UserState{UserId: id, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: until, Version: 3}
	checkEqual(t, "at busy_until", st, want)
	checkEqual(t, "stored", e.stored(id), want)
}

func TestUpdateStatus(t *testing.T) {
	const id = 21
	b1, b2 := at(2*time.Minute), at(3*time.Minute)
	tests := []struct {
		name     string
		online   bool // start online (heartbeat) instead of offline (GetStatus create)
		prep     []*messages.UpdateStatus
		upd      *messages.UpdateStatus
		want     view // after upd; Version is relative to before it
		then     time.Duration
		after    view // after advancing then; Version relative to before upd
		hasAfter bool
	}{
		{name: "is_online false is offline at once and stays so", online: true, upd: offline,
			want: view{Version: 1}, then: 10 * time.Minute, after: view{Version: 1}, hasAfter: true},
		{name: "is_online true starts the inactivity rule", upd: online,
			want: view{Online: true, Version: 1}, then: testOfflineAfter, after: view{Version: 2}, hasAfter: true},
		{name: "is_busy with busy_until expires", upd: busyUntil(b1),
			want: view{Busy: true, BusyUntil: b1, Version: 1}, then: 2 * time.Minute, after: view{Version: 2}, hasAfter: true},
		{name: "busy_until alone implies busy", upd: untilOnly(b1),
			want: view{Busy: true, BusyUntil: b1, Version: 1}, then: 2 * time.Minute, after: view{Version: 2}, hasAfter: true},
		{name: "is_busy false clears busy_until and its timer", prep: []*messages.UpdateStatus{busyUntil(b1)}, upd: notBusy,
			want: view{Version: 1}, then: 5 * time.Minute, after: view{Version: 1}, hasAfter: true},
		{name: "is_busy false with a busy_until still clears it", prep: []*messages.UpdateStatus{busyUntil(b1)},
			upd:  &messages.UpdateStatus{SetBusy: true, IsBusy: false, SetBusyUntil: true, BusyUntil: b2},
			want: view{Version: 1}, then: 5 * time.Minute, after: view{Version: 1}, hasAfter: true},
		{name: "busy_until null keeps busy and removes the expiry", prep: []*messages.UpdateStatus{busyUntil(b1)}, upd: untilNull,
			want: view{Busy: true, Version: 1}, then: 5 * time.Minute, after: view{Busy: true, Version: 1}, hasAfter: true},
		{name: "busy_until null when not busy changes nothing", upd: untilNull, want: view{Version: 0}},
		{name: "is_busy true without busy_until is busy until cleared", prep: []*messages.UpdateStatus{busyUntil(b1)}, upd: busy,
			want: view{Busy: true, Version: 1}, then: 5 * time.Minute, after: view{Busy: true, Version: 1}, hasAfter: true},
		{name: "a new busy_until replaces the old one", prep: []*messages.UpdateStatus{busyUntil(b1)}, upd: untilOnly(b2),
			want: view{Busy: true, BusyUntil: b2, Version: 1}, then: 2 * time.Minute, after: view{Busy: true, BusyUntil: b2, Version: 1}, hasAfter: true},
		{name: "PUT without is_online keeps online", online: true, upd: busy, want: view{Online: true, Busy: true, Version: 1}},
		{name: "PUT without is_online keeps offline", upd: busy, want: view{Busy: true, Version: 1}},
		{name: "PUT without is_online keeps appear-offline", online: true, prep: []*messages.UpdateStatus{offline}, upd: busy,
			want: view{Busy: true, Version: 1}},
		{name: "a PUT that changes nothing visible keeps the version", prep: []*messages.UpdateStatus{busy}, upd: busy,
			want: view{Busy: true, Version: 0}},
		{name: "is_online true when online keeps the version", online: true, upd: online, want: view{Online: true, Version: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.online {
				e.first(heartbeat(id))
			} else {
				e.first(getStatus(id, "", true))
			}
			for _, p := range tc.prep {
				e.state(update(id, p))
			}
			before := e.mustPresence(id)
			e.clock.Advance(time.Second)
			st := e.state(update(id, tc.upd))
			want := tc.want
			want.Version += relVersion(before)
			checkView(t, "after PUT", st, want)
			if st.GetLastSeen() != at(time.Second) {
				t.Fatalf("last_seen = %d, want %d (a PUT is a sign of life)", st.GetLastSeen(), at(time.Second))
			}
			checkEqual(t, "stored", e.stored(id), st)
			if !tc.hasAfter {
				return
			}
			after := tc.after
			after.Version += relVersion(before)
			checkView(t, fmt.Sprintf("%v later", tc.then), e.advance(id, tc.then), after)
		})
	}
}

func TestSessions(t *testing.T) {
	const id = 31
	const hubA, hubB = "nonhost/hubA", "nonhost/hubB"
	// Every case starts from an existing offline record (v1) at t0.
	start := func(t *testing.T) *env {
		e := newEnv(t)
		e.first(getStatus(id, "", true))
		return e
	}
	t.Run("open sessions make online and suspend inactivity", func(t *testing.T) {
		e := start(t)
		st := e.state(sessions(id, hubA, 1, 1))
		checkView(t, "session opened", st, view{Online: true, Version: 2})
		if !st.GetSessionsHeld() || !e.stored(id).GetSessionsHeld() {
			t.Fatalf("sessions_held not set: reply %v, stored %v", st, e.stored(id))
		}
		if d := e.clock.Deadlines(); len(d) != 0 {
			t.Fatalf("timers armed while a session is open: %v", d)
		}
		checkView(t, "an hour later", e.advance(id, time.Hour), view{Online: true, Version: 2})
	})
	t.Run("last session closed: offline after the grace period", func(t *testing.T) {
		e := start(t)
		e.req(sessions(id, hubA, 1, 1))
		e.clock.Advance(time.Minute)
		st := e.state(sessions(id, hubA, 0, 2))
		checkView(t, "closed", st, view{Online: true, Version: 2})
		if st.GetLastSeen() != at(time.Minute) {
			t.Fatalf("last_seen = %d, want %d", st.GetLastSeen(), at(time.Minute))
		}
		checkView(t, "just before", e.advance(id, testGrace-time.Microsecond), view{Online: true, Version: 2})
		st = e.advance(id, time.Microsecond)
		checkView(t, "grace over", st, view{Version: 3})
		if st.GetUpdatedAt() != at(time.Minute+testGrace) || st.GetSessionsHeld() {
			t.Fatalf("offline record %v", st)
		}
		if e.obs.flaps.Load() != 0 {
			t.Fatal("FlapSuppressed reported without a re-attach")
		}
	})
	t.Run("re-attach inside the grace period: no flap", func(t *testing.T) {
		e := start(t)
		c := newCollector(t, e.system)
		e.req(sessions(id, hubA, 1, 1))
		e.req(watch(id, c.pid, 1))
		e.clock.Advance(time.Minute)
		e.req(sessions(id, hubA, 0, 2))
		e.clock.Advance(testGrace - time.Second)
		checkView(t, "re-attached", e.state(sessions(id, hubA, 1, 3)), view{Online: true, Version: 2})
		if n := e.obs.flaps.Load(); n != 1 {
			t.Fatalf("FlapSuppressed = %d, want 1", n)
		}
		checkView(t, "an hour later", e.advance(id, time.Hour), view{Online: true, Version: 2})
		c.expect("pushes")
	})
	t.Run("re-attach on another hub", func(t *testing.T) {
		e := start(t)
		e.req(sessions(id, hubA, 1, 1))
		e.req(sessions(id, hubA, 0, 2))
		e.clock.Advance(5 * time.Second)
		e.req(sessions(id, hubB, 1, 1))
		checkView(t, "an hour later", e.advance(id, time.Hour), view{Online: true, Version: 2})
	})
	t.Run("a stale report is ignored", func(t *testing.T) {
		e := start(t)
		e.req(sessions(id, hubA, 1, 5))
		checkView(t, "stale close", e.state(sessions(id, hubA, 0, 3)), view{Online: true, Version: 2})
		checkView(t, "an hour later", e.advance(id, time.Hour), view{Online: true, Version: 2})
		e.req(sessions(id, hubA, 0, 6))
		checkView(t, "grace over", e.advance(id, testGrace), view{Version: 3})
		// And a stale open after the close does not revive the user.
		checkView(t, "stale open", e.state(sessions(id, hubA, 1, 4)), view{Version: 3})
	})
	t.Run("offline only after every hub's sessions closed", func(t *testing.T) {
		e := start(t)
		e.req(sessions(id, hubA, 1, 1))
		e.req(sessions(id, hubB, 2, 1))
		e.req(sessions(id, hubA, 0, 2))
		checkView(t, "one hub left", e.advance(id, time.Hour), view{Online: true, Version: 2})
		e.req(sessions(id, hubB, 0, 2))
		checkView(t, "grace over", e.advance(id, testGrace), view{Version: 3})
	})
	t.Run("a heartbeat after the close restarts the inactivity rule", func(t *testing.T) {
		e := start(t)
		e.req(sessions(id, hubA, 1, 1))
		e.clock.Advance(time.Minute)
		e.req(sessions(id, hubA, 0, 2))
		e.clock.Advance(5 * time.Second)
		e.req(heartbeat(id)) // at t0+1m5s
		checkView(t, "grace end", e.advance(id, 10*time.Second), view{Online: true, Version: 2})
		checkView(t, "just before", e.advance(id, testOfflineAfter-10*time.Second-time.Microsecond), view{Online: true, Version: 2})
		checkView(t, "deadline", e.advance(id, time.Microsecond), view{Version: 3})
	})
}

func TestWatchPushesVisibleChangesOnly(t *testing.T) {
	const id = 41
	e := newEnv(t)
	c1, c2 := newCollector(t, e.system), newCollector(t, e.system)
	e.first(getStatus(id, "", true)) // v1
	checkView(t, "first watch", e.state(watch(id, c1.pid, 1)), view{Version: 1})
	e.req(heartbeat(id)) // v2
	checkView(t, "second watch", e.state(watch(id, c2.pid, 1)), view{Online: true, Version: 2})
	e.clock.Advance(time.Second)
	e.req(heartbeat(id))           // invisible
	e.req(activity(id))            // invisible
	e.req(getStatus(id, "", true)) // invisible
	e.req(update(id, busy))        // v3
	e.req(update(id, busy))        // invisible
	e.req(update(id, untilNull))   // invisible (no expiry to remove)
	// The first timer (t0+5m) finds the deadline moved to t0+5m+1s; the
	// second makes the user offline: v4. Two steps, so the re-armed timer is
	// registered before the clock passes its deadline.
	e.advance(id, testOfflineAfter-time.Second)
	e.advance(id, time.Second)
	e.req(heartbeatAs(id, "renamed"))           // online and renamed: v5
	e.req(heartbeatAs(id, "renamed"))           // invisible
	e.req(update(id, untilOnly(at(time.Hour)))) // busy_until set: v6

	want := []view{
		{Online: true, Busy: true, Version: 3},
		{Busy: true, Version: 4},
		{Online: true, Busy: true, Version: 5},
		{Online: true, Busy: true, BusyUntil: at(time.Hour), Version: 6},
	}
	c2.expect("second watcher", want...)
	c1.expect("first watcher", append([]view{{Online: true, Version: 2}}, want...)...)

	if r := e.req(unwatch(id, c1.pid, 2)); r.GetAck() == nil {
		t.Fatalf("Unwatch = %v, want Ack", r)
	}
	e.req(update(id, notBusy)) // v7
	c1.expect("after unwatch")
	c2.expect("still watching", view{Online: true, Version: 7})
}

func TestWatchSeqOrdering(t *testing.T) {
	const id = 42
	e := newEnv(t)
	c := newCollector(t, e.system)
	e.first(heartbeat(id)) // v1
	checkView(t, "watch", e.state(watch(id, c.pid, 10)), view{Online: true, Version: 1})
	if r := e.req(unwatch(id, c.pid, 9)); r.GetAck() == nil {
		t.Fatalf("stale Unwatch = %v, want Ack", r)
	}
	e.req(update(id, busy)) // v2: still pushed
	c.expect("after stale unwatch", view{Online: true, Busy: true, Version: 2})

	e.req(unwatch(id, c.pid, 11))
	e.req(update(id, notBusy)) // v3: not pushed
	// A reordered Watch older than the Unwatch does not revive the watch.
	checkView(t, "stale watch", e.state(watch(id, c.pid, 10)), view{Online: true, Version: 3})
	e.req(update(id, busy)) // v4: not pushed
	c.expect("after unwatch and stale watch")

	e.req(watch(id, c.pid, 12))
	e.req(update(id, notBusy)) // v5
	c.expect("after new watch", view{Online: true, Version: 5})
}

func TestVersionsRiseWithEveryVisibleChange(t *testing.T) {
	const id = 43
	e := newEnv(t)
	c := newCollector(t, e.system)
	prev := e.first(getStatus(id, "x", true)).GetStateReply().GetState() // v1
	e.req(watch(id, c.pid, 1))
	steps := []func() *messages.UserState{
		func() *messages.UserState { return e.state(heartbeat(id)) },
		func() *messages.UserState { return e.state(heartbeat(id)) },
		func() *messages.UserState { return e.state(update(id, busyUntil(at(time.Hour)))) },
		func() *messages.UserState { return e.state(update(id, untilOnly(at(2*time.Hour)))) },
		func() *messages.UserState { return e.state(update(id, untilNull)) },
		func() *messages.UserState { return e.state(update(id, offline)) },
		func() *messages.UserState { return e.state(update(id, offline)) },
		func() *messages.UserState { return e.state(sessions(id, "h", 1, 1)) },
		func() *messages.UserState { return e.state(sessions(id, "h", 2, 2)) },
		func() *messages.UserState { return e.state(sessions(id, "h", 0, 3)) },
		func() *messages.UserState { return e.advance(id, testGrace) },
		func() *messages.UserState { return e.state(update(id, notBusy)) },
		func() *messages.UserState { return e.state(heartbeatAs(id, "y")) },
		func() *messages.UserState { return e.advance(id, testOfflineAfter) },
	}
	for i, step := range steps {
		e.clock.Advance(time.Second)
		st := step()
		changed := st.GetIsOnline() != prev.GetIsOnline() || st.GetIsBusy() != prev.GetIsBusy() ||
			st.GetBusyUntil() != prev.GetBusyUntil() || st.GetUsername() != prev.GetUsername()
		switch {
		case changed && st.GetVersion() != prev.GetVersion()+1:
			t.Fatalf("step %d: visible change %v -> %v, want version %d", i, prev, st, prev.GetVersion()+1)
		case !changed && st.GetVersion() != prev.GetVersion():
			t.Fatalf("step %d: no visible change %v -> %v but version moved", i, prev, st)
		}
		prev = st
	}
	if relVersion(prev) != 11 {
		t.Fatalf("final version %d, want the 11th from creation", prev.GetVersion())
	}
	pushed := c.take()
	if len(pushed) != 10 {
		t.Fatalf("%d pushes, want 10: %v", len(pushed), pushed)
	}
	for i, s := range pushed {
		if relVersion(s) != uint64(i+2) {
			t.Fatalf("push %d has version %d, want %d", i, s.GetVersion(), i+2)
		}
	}
}

func TestRecheckCountsUndeliveredDeadlines(t *testing.T) {
	e := newEnv(t)
	e.first(heartbeat(1))
	e.req(update(1, busyUntil(at(time.Minute)))) // v2
	e.first(getStatus(2, "", true))
	e.first(heartbeat(3))
	e.first(update(4, busyUntil(at(time.Minute)))) // offline, busy
	e.first(heartbeat(5))
	e.req(update(5, busyUntil(at(20*time.Minute)))) // online, busy past the skip

	e.clock.Skip(10 * time.Minute) // deadlines pass, no timer is delivered
	checkView(t, "before recheck", e.mustPresence(1), view{Online: true, Busy: true, BusyUntil: at(time.Minute), Version: 2})

	count := func(id int64) (int64, int64) {
		t.Helper()
		r := e.req(recheck(id))
		c := r.GetCleanupCount()
		if c == nil {
			t.Fatalf("Recheck(%d) = %v", id, r)
		}
		return c.GetUsersMarkedOffline(), c.GetBusyStatusCleared()
	}
	if o, b := count(1); o != 1 || b != 1 {
		t.Fatalf("Recheck(1) = %d offline, %d busy; want 1, 1", o, b)
	}
	st := e.mustPresence(1)
	checkView(t, "after recheck", st, view{Version: 3})
	if st.GetUpdatedAt() != at(10*time.Minute) {
		t.Fatalf("updated_at = %d, want %d", st.GetUpdatedAt(), at(10*time.Minute))
	}
	if o, b := count(1); o != 0 || b != 0 {
		t.Fatalf("second Recheck(1) = %d, %d; want 0, 0", o, b)
	}
	if o, b := count(2); o != 0 || b != 0 {
		t.Fatalf("Recheck(2) = %d, %d; want 0, 0", o, b)
	}

	// Cleanup covers the rest: 3 goes offline, 4 stops being busy, 5 goes
	// offline and stays busy.
	got, err := e.host.Cleanup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetUsersMarkedOffline() != 2 || got.GetBusyStatusCleared() != 1 {
		t.Fatalf("Cleanup = %v, want 2 offline, 1 busy cleared", got)
	}
	checkView(t, "user 5", e.mustPresence(5), view{Busy: true, BusyUntil: at(20 * time.Minute), Version: 3})

	// The timers of the transitions Recheck made are gone: delivering
	// everything due changes nothing more.
	e.clock.Advance(0)
	checkView(t, "user 1 after timers", e.mustPresence(1), view{Version: 3})
	checkView(t, "user 4 after timers", e.mustPresence(4), view{Version: 2})
	checkView(t, "user 3 after timers", e.mustPresence(3), view{Version: 2})
	if d := e.clock.Deadlines(); !slices.Equal(d, []time.Time{t0.Add(20 * time.Minute)}) {
		t.Fatalf("armed timers %v, want only user 5's busy timer", d)
	}
}

func TestCleanupCountsStoredRecordsWithoutActor(t *testing.T) {
	e := newEnv(t)
	// Records left by a previous run of the cluster; no actor holds them.
	e.put(&messages.UserState{UserId: 100, IsOnline: true, LastSeen: at(-10 * time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-10 * time.Minute), Version: 5}, 0)
	e.put(&messages.UserState{UserId: 101, IsBusy: true, BusyUntil: at(-time.Minute), LastSeen: at(-time.Hour), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Hour), Version: 2}, 0)
	e.put(&messages.UserState{UserId: 102, IsOnline: true, LastSeen: at(-time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Minute), Version: 1}, 0)
	e.put(&messages.UserState{UserId: 103, LastSeen: at(-time.Hour), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Hour), Version: 1}, 0)

	got, err := e.host.Cleanup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkView(t, "stored 100", e.stored(100), view{Version: 6})
	checkView(t, "stored 101", e.stored(101), view{Version: 3})
	checkView(t, "stored 102", e.stored(102), view{Online: true, Version: 1})
	checkView(t, "stored 103", e.stored(103), view{Version: 1})
	if !slices.Contains(e.active(), 102) {
		t.Fatalf("user 102 not activated by the sweep: %v", e.active())
	}
	if got.GetUsersMarkedOffline() != 1 || got.GetBusyStatusCleared() != 1 {
		t.Fatalf("Cleanup = {offline %d, busy %d}, want {1, 1}: the sweep changed the stored records but did not count them",
			got.GetUsersMarkedOffline(), got.GetBusyStatusCleared())
	}
}

func TestActivationRearmsStoredDeadlines(t *testing.T) {
	t.Run("inactivity and busy expiry", func(t *testing.T) {
		e := newEnv(t)
		const id = 200
		e.put(&messages.UserState{UserId: id, IsOnline: true, IsBusy: true, BusyUntil: at(2 * time.Minute),
			LastSeen: at(-time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-time.Minute), Version: 4}, 0)
		checkView(t, "activated", e.mustPresence(id), view{Online: true, Busy: true, BusyUntil: at(2 * time.Minute), Version: 4})
		checkView(t, "busy_until", e.advance(id, 2*time.Minute), view{Online: true, Version: 5})
		checkView(t, "just before offline", e.advance(id, 2*time.Minute-time.Microsecond), view{Online: true, Version: 5})
		checkView(t, "offline_after since last_seen", e.advance(id, time.Microsecond), view{Version: 6})
	})
	t.Run("sessions held elsewhere get the grace period", func(t *testing.T) {
		e := newEnv(t)
		e.put(&messages.UserState{UserId: 201, IsOnline: true, SessionsHeld: true, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 2}, 0)
		e.put(&messages.UserState{UserId: 202, IsOnline: true, SessionsHeld: true, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 2}, 0)
		e.mustPresence(201)
		e.mustPresence(202)
		e.clock.Advance(5 * time.Second)
		// 202's hub re-reports its sessions to the new activation.
		checkView(t, "re-reported", e.state(sessions(202, "h", 1, 1)), view{Online: true, Version: 2})
		checkView(t, "201 just before", e.advance(201, testGrace-5*time.Second-time.Microsecond), view{Online: true, Version: 2})
		checkView(t, "201 grace over", e.advance(201, time.Microsecond), view{Version: 3})
		checkView(t, "202 an hour later", e.advance(202, time.Hour), view{Online: true, Version: 2})
		if n := e.obs.flaps.Load(); n != 1 {
			t.Fatalf("FlapSuppressed = %d, want 1", n)
		}
	})
}

// TestActivationFollowsHeartbeatAdvice: a user who went quiet longer than
// offline_after ago, but not longer than the advised interval allows, is
// still online on an activation while the node advises a longer interval
// (their client may be following it), and goes offline at the deadline
// that advice implies; with the base advice the activation applies the
// plain rule.
func TestActivationFollowsHeartbeatAdvice(t *testing.T) {
	base := HeartbeatInterval(testOfflineAfter)
	for _, tc := range []struct {
		name    string
		advice  time.Duration
		online  bool          // right after the activation
		offline time.Duration // since t0, when online
	}{
		{"advised twice the base", 2 * base, true, 4 * time.Minute},
		{"the base advice", base, false, 0},
		{"no advice source", 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.advice > 0 {
				opts = append(opts, func(_ *env, c *Config) { c.HeartbeatAdvice = func() time.Duration { return tc.advice } })
			}
			e := newEnv(t, opts...)
			const id = 210
			// Quiet for 6 minutes: past offline_after (5), within twice it.
			e.put(&messages.UserState{UserId: id, IsOnline: true, LastSeen: at(-6 * time.Minute), CreatedAt: at(-time.Hour), UpdatedAt: at(-6 * time.Minute), Version: 4}, 0)
			if !tc.online {
				checkView(t, "activated", e.mustPresence(id), view{Version: 5})
				return
			}
			checkView(t, "activated", e.mustPresence(id), view{Online: true, Version: 4})
			checkView(t, "just before the advised deadline", e.advance(id, tc.offline-time.Microsecond), view{Online: true, Version: 4})
			checkView(t, "advised deadline", e.advance(id, time.Microsecond), view{Version: 5})
		})
	}
}

func TestPassivation(t *testing.T) {
	e := newEnv(t, withWriter(), withPassivateAfter(50*time.Millisecond))
	c := newCollector(t, e.system)
	const (
		idle     = 1
		busyT    = 2
		onlineU  = 3
		watched  = 4
		sessOpen = 5
	)
	e.first(getStatus(idle, "idle", true))
	e.req(update(idle, busy)) // busy without expiry: no timer
	e.first(update(busyT, busyUntil(at(time.Hour))))
	e.first(heartbeat(onlineU))
	e.first(getStatus(watched, "", true))
	e.req(watch(watched, c.pid, 1))
	e.first(getStatus(sessOpen, "", true))
	e.req(sessions(sessOpen, "h", 1, 1))
	e.clock.Advance(time.Second)
	e.req(activity(idle)) // last_seen only: goes to the writer
	before := e.mustPresence(idle)
	if before.GetLastSeen() != at(time.Second) {
		t.Fatalf("last_seen %d, want %d", before.GetLastSeen(), at(time.Second))
	}

	e.waitInactive(idle)
	time.Sleep(200 * time.Millisecond) // four times PassivateAfter
	if got := e.active(); !slices.Equal(got, []int64{2, 3, 4, 5}) {
		t.Fatalf("active after idling %v, want [2 3 4 5]: only the idle user may passivate", got)
	}
	if alive := e.obs.activated.Load() - e.obs.passivated.Load(); alive != 4 {
		t.Fatalf("Observer: activated - passivated = %d, want 4", alive)
	}
	// The store has not seen the touch yet; the new activation merges it.
	if st := e.stored(idle); st.GetLastSeen() != us(t0) {
		t.Fatalf("stored last_seen %d, want %d (unflushed)", st.GetLastSeen(), us(t0))
	}
	loads := e.store.loads.Load()
	checkEqual(t, "reloaded", e.mustPresence(idle), before)
	if n := e.store.loads.Load(); n != loads+1 {
		t.Fatalf("%d loads, want 1 for the reactivation", n-loads)
	}

	// Once they hold nothing, the others passivate too.
	e.advance(onlineU, testOfflineAfter)
	e.req(unwatch(watched, c.pid, 2))
	e.req(sessions(sessOpen, "h", 0, 2))
	e.advance(sessOpen, testGrace)
	e.waitInactive(onlineU)
	e.waitInactive(watched)
	e.waitInactive(sessOpen)
	if !slices.Contains(e.active(), busyT) {
		t.Fatalf("user with a busy timer passivated: %v", e.active())
	}
	checkView(t, "busy user", e.mustPresence(busyT), view{Busy: true, BusyUntil: at(time.Hour), Version: 1})
	checkView(t, "online user reloaded", e.mustPresence(onlineU), view{Version: 2})
}

func TestVersionConflictReloads(t *testing.T) {
	const id = 51
	t.Run("request", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeatAs(id, "alice")) // v1
		// Another activation wrote v5 meanwhile.
		other := e.stored(id)
		prev := other.Version
		other.Username, other.IsBusy, other.Version, other.UpdatedAt = "alice2", true, prev+4, at(time.Second)
		e.put(other, prev)

		e.clock.Advance(2 * time.Second)
		st := e.state(update(id, offline))
		want := &messages.UserState{UserId: id, Username: "alice2", IsOnline: false, IsBusy: true,
			LastSeen: at(2 * time.Second), CreatedAt: us(t0), UpdatedAt: at(2 * time.Second), Version: 6, AppearOffline: true}
		checkEqual(t, "reply", st, want)
		checkEqual(t, "stored", e.stored(id), want)
	})
	t.Run("the stored record already has the change", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeatAs(id, "alice")) // v1
		other := e.stored(id)
		prev := other.Version
		other.IsBusy, other.Version = true, prev+4
		e.put(other, prev)
		e.clock.Advance(2 * time.Second)
		st := e.state(update(id, busy))
		checkView(t, "reply", st, view{Online: true, Busy: true, Version: 5})
		checkView(t, "stored", e.stored(id), view{Online: true, Busy: true, Version: 5})
	})
	t.Run("timer", func(t *testing.T) {
		e := newEnv(t)
		e.first(heartbeat(id)) // v1, offline at t0+5m
		other := e.stored(id)
		prev := other.Version
		other.Username, other.Version = "moved", prev+2
		e.put(other, prev)
		st := e.advance(id, testOfflineAfter)
		checkEqual(t, "after timer", st, &messages.UserState{UserId: id, Username: "moved", LastSeen: us(t0),
			CreatedAt: us(t0), UpdatedAt: at(testOfflineAfter), Version: 4})
		checkEqual(t, "stored", e.stored(id), st)
	})
}

func TestStoreFailure(t *testing.T) {
	const id = 61
	tests := []struct {
		name  string
		setup func(e *env)
		msg   *messages.Envelope
	}{
		{name: "heartbeat of an offline user", setup: func(e *env) { e.first(getStatus(id, "", true)) }, msg: heartbeat(id)},
		{name: "creation", msg: getStatus(id, "", true)},
		{name: "creation by heartbeat", msg: heartbeat(id)},
		{name: "PUT busy_until", setup: func(e *env) { e.first(heartbeat(id)) }, msg: update(id, busyUntil(at(time.Minute)))},
		{name: "PUT is_online false", setup: func(e *env) { e.first(heartbeat(id)) }, msg: update(id, offline)},
		{name: "PUT is_busy false", setup: func(e *env) { e.first(update(id, busyUntil(at(time.Minute)))) }, msg: update(id, notBusy)},
		{name: "session opened", setup: func(e *env) { e.first(getStatus(id, "", true)) }, msg: sessions(id, "h", 1, 1)},
		{name: "rename", setup: func(e *env) { e.first(heartbeatAs(id, "a")) }, msg: heartbeatAs(id, "b")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			before, storedBefore := e.presence(id), e.stored(id)
			deadlines := e.clock.Deadlines()
			e.clock.Advance(time.Second)
			e.store.failSave.Store(true)
			checkFailure(t, e.req(tc.msg), messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
			e.store.failSave.Store(false)
			if got := e.presence(id); !proto.Equal(got, before) {
				t.Fatalf("in-memory state changed by a failed write:\n got  %v\n want %v", got, before)
			}
			if got := e.stored(id); !proto.Equal(got, storedBefore) {
				t.Fatalf("stored state changed:\n got  %v\n want %v", got, storedBefore)
			}
			if got := e.clock.Deadlines(); !slices.Equal(got, deadlines) {
				t.Fatalf("timers after the failed write %v, want %v", got, deadlines)
			}
		})
	}
}

// A Sessions report whose write failed must not count: the hub was told it
// failed, and its next report is the only truth.
func TestSessionsReportAfterStoreFailure(t *testing.T) {
	const id = 62
	t.Run("the next report applies", func(t *testing.T) {
		e := newEnv(t)
		e.first(getStatus(id, "", true))
		e.store.failSave.Store(true)
		checkFailure(t, e.req(sessions(id, "h", 1, 1)), messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
		e.store.failSave.Store(false)
		checkView(t, "session re-reported", e.state(sessions(id, "h", 1, 2)), view{Online: true, Version: 2})
	})
	t.Run("no phantom session holds the user online", func(t *testing.T) {
		e := newEnv(t)
		e.first(getStatus(id, "", true))
		e.store.failSave.Store(true)
		checkFailure(t, e.req(sessions(id, "h", 1, 1)), messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
		e.store.failSave.Store(false)
		checkView(t, "heartbeat", e.state(heartbeat(id)), view{Online: true, Version: 2})
		checkView(t, "offline_after later", e.advance(id, testOfflineAfter), view{Version: 3})
	})
}

func TestTimerTransitionRetriedAfterStoreFailure(t *testing.T) {
	const id = 63
	e := newEnv(t)
	e.first(heartbeat(id))
	e.store.failSave.Store(true)
	saves := e.store.saves.Load()
	checkView(t, "refused transition", e.advance(id, testOfflineAfter), view{Online: true, Version: 1})
	// The fake clock stands still: the only attempt due is the timer's own;
	// the retry waits for retryAfterFailure.
	time.Sleep(100 * time.Millisecond)
	if n := e.store.saves.Load() - saves; n != 1 {
		t.Fatalf("%d save attempts while the clock stood still at the deadline, want 1 (then one per %v)", n, retryAfterFailure)
	}
	e.store.failSave.Store(false)
	checkView(t, "just before retry", e.advance(id, retryAfterFailure-time.Microsecond), view{Online: true, Version: 1})
	checkView(t, "retried", e.advance(id, time.Microsecond), view{Version: 2})

	// Recheck reports the failure instead of a count.
	e.req(heartbeat(id))
	e.clock.Skip(testOfflineAfter)
	e.store.failSave.Store(true)
	checkFailure(t, e.req(recheck(id)), messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
	if _, err := e.host.Cleanup(context.Background(), nil); err == nil {
		t.Fatal("Cleanup with a failing store returned no error")
	}
}

func TestActivationLoadFailure(t *testing.T) {
	const id = 64
	e := newEnv(t)
	e.put(&messages.UserState{UserId: id, IsBusy: true, LastSeen: us(t0), CreatedAt: us(t0), UpdatedAt: us(t0), Version: 3}, 0)
	e.store.failLoad.Store(true)
	checkFailure(t, e.req(getPresence(id)), messages.FailureKind_FAILURE_KIND_UNAVAILABLE, detailStoreUnavailable)
	e.store.failLoad.Store(false)
	e.waitInactive(id)
	checkView(t, "after the store recovered", e.mustPresence(id), view{Busy: true, Version: 3})
}

func BenchmarkHeartbeat(b *testing.B) {
	e := newEnv(b, withWriter(), withClock(SystemClock{}))
	const id = 1
	e.first(heartbeat(id))
	ctx := context.Background()
	msg := heartbeat(id)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		reply, err := request(ctx, e.host, e.host.Activator(), msg)
		if err != nil || reply.GetStateReply() == nil {
			b.Fatalf("heartbeat: %v %v", reply, err)
		}
	}
}

// A record lost and created again (the node of a memory-store cluster that
// held it crashed) has versions above every version of the lost one: the
// new record starts from the clock, not from 1.
func TestVersionsAboveALostRecord(t *testing.T) {
	const id = 61
	e := newEnv(t)
	e.first(heartbeat(id))
	for range 5 {
		e.state(update(id, busy))
		e.state(update(id, notBusy))
	}
	lost := e.mustPresence(id)
	if lost.GetVersion() < uint64(us(t0)) {
		t.Fatalf("created at %d with version %d: want a clock-derived version", us(t0), lost.GetVersion())
	}
	// Another node, with an empty store, a millisecond later.
	e2 := newEnv(t)
	e2.clock.Advance(time.Millisecond)
	again := e2.state(heartbeat(id))
	if again.GetVersion() <= lost.GetVersion() {
		t.Fatalf("re-created record has version %d, not above the lost record's %d", again.GetVersion(), lost.GetVersion())
	}
	if again.GetVersion() != uint64(at(time.Millisecond)) {
		t.Fatalf("re-created record has version %d, want the clock's %d", again.GetVersion(), at(time.Millisecond))
	}
	if next := e2.state(update(id, busy)); next.GetVersion() != again.GetVersion()+1 {
		t.Fatalf("next change: version %d, want %d", next.GetVersion(), again.GetVersion()+1)
	}
}

// The choice to appear offline while sessions are open is stored with the
// record and survives a move: a hub re-sending its session count to the
// new owner does not make the user visible; a new connection does.
func TestAppearOfflineSurvivesMove(t *testing.T) {
	const id = 62
	const hubA, hubB = "nonhost/hubA", "nonhost/hubB"
	e := newEnv(t)
	e.first(getStatus(id, "", true))
	checkView(t, "connected", e.state(sessions(id, hubA, 1, 1)), view{Online: true, Version: 2})
	hidden := e.state(update(id, offline))
	checkView(t, "appear offline", hidden, view{Version: 3})
	if !hidden.GetAppearOffline() || !e.stored(id).GetAppearOffline() {
		t.Fatalf("appear_offline not recorded: reply %v, stored %v", hidden, e.stored(id))
	}
	// The hub re-sends to the same activation: nothing changes.
	checkView(t, "re-sent to the same owner", e.state(resent(id, hubA, 1, 2)), view{Version: 3})

	// The user moves: a new activation (another node) on the same store.
	e2 := newEnv(t, withStore(e.store.Memory))
	st := e2.state(resent(id, hubA, 1, 3))
	checkView(t, "count re-sent to the new owner", st, view{Version: 3})
	if e2.obs.flaps.Load() != 0 || len(e2.clock.Deadlines()) != 0 {
		t.Fatalf("timers %v armed for a hidden user with an open session", e2.clock.Deadlines())
	}
	// A new connection (another device) is the user coming back.
	st = e2.state(sessions(id, hubB, 1, 1))
	checkView(t, "new connection", st, view{Online: true, Version: 4})
	if st.GetAppearOffline() || e2.stored(id).GetAppearOffline() {
		t.Fatalf("appear_offline kept after a new connection: %v", st)
	}
	// A re-sent count for a user who did not choose to hide is a
	// connection as before (the sessions hold the user online).
	e3 := newEnv(t, withStore(e.store.Memory))
	checkView(t, "re-sent, not hidden", e3.state(resent(id, hubA, 1, 9)), view{Online: true, Version: 4})
	// A heartbeat clears the choice too.
	e3.state(update(id, offline))
	if st := e3.state(heartbeat(id)); !st.GetIsOnline() || st.GetAppearOffline() {
		t.Fatalf("after a heartbeat: %v, want online and appear_offline cleared", st)
	}
}

// A hub whose node left the view (crashed, or cut off by a partition) is
// not pushed to; if its node comes back, it gets the current record at
// once (its hub may not know this owner forgot it, so it would not watch
// again), and pushes resume.
func TestWatchOfAHubThatCameBack(t *testing.T) {
	const id = 63
	e := newEnv(t)
	c := newCollector(t, e.system)
	e.first(getStatus(id, "", true))
	e.state(watch(id, c.pid, 1))
	var up atomic.Bool
	alive := func(string) bool { return up.Load() }
	e.host.ViewChanged(alive, false) // the hub's node left
	e.req(heartbeat(id))             // 2nd version: not pushed to the gone hub
	if got := c.take(); len(got) != 0 {
		t.Fatalf("pushed to a hub whose node left: %v", got)
	}
	up.Store(true)
	e.host.ViewChanged(alive, true) // it is back
	e.req(getPresence(id))          // after the view change in the mailbox
	c.expect("hub back", view{Online: true, Version: 2})
	e.req(update(id, busy))
	c.expect("next change", view{Online: true, Busy: true, Version: 3})
}

// TestHandoffCarriesLastSeen: a user's new owner may load the user before
// the old owner's write-behind stored the newest heartbeat; the old owner's
// handoff (a Recheck with its last_seen) brings the activation up to date:
// last_seen and the inactivity deadline follow it. An older or missing
// value changes nothing.
func TestHandoffCarriesLastSeen(t *testing.T) {
	e := newEnv(t)
	const id = 210
	e.put(&messages.UserState{UserId: id, IsOnline: true, LastSeen: at(-time.Minute), CreatedAt: at(-time.Hour),
		UpdatedAt: at(-time.Minute), Version: 4}, 0)
	if got := e.mustPresence(id).GetLastSeen(); got != at(-time.Minute) {
		t.Fatalf("activated with last_seen %d, want the stored %d", got, at(-time.Minute))
	}
	handoff := func(lastSeen int64) {
		e.req(&messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: id, LastSeen: lastSeen}}})
	}
	handoff(at(-time.Second))
	handoff(at(-30 * time.Second)) // older: ignored
	handoff(0)                     // none: ignored
	if got := e.mustPresence(id).GetLastSeen(); got != at(-time.Second) {
		t.Fatalf("after the handoff last_seen %d, want the handed %d", got, at(-time.Second))
	}
	// Offline at the handed last_seen + offline_after, not the stored one's.
	checkView(t, "past the stored deadline", e.advance(id, testOfflineAfter-time.Minute+time.Second), view{Online: true, Version: 4})
	checkView(t, "just before the handed deadline", e.advance(id, time.Minute-2*time.Second-time.Microsecond), view{Online: true, Version: 4})
	checkView(t, "the handed deadline", e.advance(id, time.Microsecond), view{Version: 5})
}
