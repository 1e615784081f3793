package ws

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
)

// fakeRouter is an in-process Router: it records what the hub sends,
// answers a Watch with the user's state, and reads states from a map.
type fakeRouter struct {
	mu        sync.Mutex
	states    map[int64]*messages.UserState
	owners    map[int64]string
	failWatch map[int64]bool // a Watch of these users fails
	failReads bool           // ReadPresence fails
	// failSessions is how many Sessions reports fail before one is taken.
	failSessions int
	watches      []int64 // users watched, in order
	unwatches    []int64
	reads        []int64 // users read with ReadPresence
	sessions     map[int64]int32
	// roundTrip is how long every exchange with the owners takes: each
	// Request, and each RequestAll as a whole (its envelopes go at once).
	roundTrip time.Duration
}

func newFakeRouter() *fakeRouter {
	return &fakeRouter{
		states: map[int64]*messages.UserState{}, owners: map[int64]string{},
		failWatch: map[int64]bool{}, sessions: map[int64]int32{},
	}
}

func (r *fakeRouter) Request(ctx context.Context, _ int64, env *messages.Envelope) (*messages.Envelope, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	return r.answer(env)
}

// wait takes one round trip, or until ctx ends.
func (r *fakeRouter) wait(ctx context.Context) error {
	r.mu.Lock()
	d := r.roundTrip
	r.mu.Unlock()
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answer is what the owner of env's user answers.
func (r *fakeRouter) answer(env *messages.Envelope) (*messages.Envelope, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case env.GetWatch() != nil:
		id := env.GetWatch().GetUserId()
		if r.failWatch[id] {
			return nil, errors.New("watch timed out")
		}
		r.watches = append(r.watches, id)
		return &messages.Envelope{Body: &messages.Envelope_StateReply{StateReply: &messages.StateReply{State: r.states[id]}}}, nil
	case env.GetUnwatch() != nil:
		r.unwatches = append(r.unwatches, env.GetUnwatch().GetUserId())
	case env.GetSessions() != nil:
		if r.failSessions > 0 {
			r.failSessions--
			return nil, errors.New("owner busy")
		}
		r.sessions[env.GetSessions().GetUserId()] = env.GetSessions().GetCount()
	}
	return &messages.Envelope{Body: &messages.Envelope_Ack{Ack: &messages.Ack{}}}, nil
}

func (r *fakeRouter) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	out, errs := make([]*messages.Envelope, len(envs)), make([]error, len(envs))
	err := r.wait(ctx)
	for i, env := range envs {
		if err != nil {
			errs[i] = err
			continue
		}
		out[i], errs[i] = r.answer(env)
	}
	return out, errs
}

func (r *fakeRouter) ReadPresence(_ context.Context, ids []int64) ([]*messages.UserState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failReads {
		return nil, errors.New("read timed out")
	}
	out := make([]*messages.UserState, len(ids))
	for i, id := range ids {
		r.reads = append(r.reads, id)
		out[i] = r.states[id]
	}
	return out, nil
}

func (r *fakeRouter) Owner(userID int64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[userID]
}

func (r *fakeRouter) set(f func(r *fakeRouter)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *fakeRouter) sessionCount(uid int64) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[uid]
}

func (r *fakeRouter) counts() (watches, unwatches, reads []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.watches...), append([]int64(nil), r.unwatches...), append([]int64(nil), r.reads...)
}

// fakeConn records what a session writes: the frames its writers put on
// the socket (decoded), and the close frame it writes through the library.
type fakeConn struct {
	mu      sync.Mutex
	frames  chan string
	pongs   chan string
	pings   atomic.Int64
	closes  chan int // close codes written
	nc      net.Conn
	pending []byte // bytes written that do not make a whole frame yet
}

func newFakeConn(t testing.TB) *fakeConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &fakeConn{frames: make(chan string, 1024), pongs: make(chan string, 16), closes: make(chan int, 1), nc: a}
}

// Write takes b as a socket that never waits would, decoding the frames.
func (c *fakeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, b...)
	for {
		op, payload, n := decodeServerFrame(c.pending)
		if n == 0 {
			return len(b), nil
		}
		switch op {
		case opText:
			c.frames <- string(payload)
		case opPing:
			c.pings.Add(1)
		case opPong:
			c.pongs <- string(payload)
		}
		c.pending = c.pending[n:]
	}
}

func (c *fakeConn) tryWrite(b []byte) (int, error) { return c.Write(b) }

// decodeServerFrame reads the first whole frame of b (unmasked, final, as
// the writers frame them); n is 0 when b holds no whole frame yet.
func decodeServerFrame(b []byte) (op byte, payload []byte, n int) {
	if len(b) < 2 {
		return 0, nil, 0
	}
	size, head := int(b[1]&0x7F), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0
		}
		size, head = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0
		}
		size, head = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < head+size {
		return 0, nil, 0
	}
	return b[0] & 0x0F, b[head : head+size], head + size
}

func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fakeConn) NetConn() net.Conn                { return c.nc }

func (c *fakeConn) WriteControl(mt int, data []byte, _ time.Time) error {
	if mt == 8 { // close
		code := 1005
		if len(data) >= 2 {
			code = int(data[0])<<8 | int(data[1])
		}
		c.closes <- code
	}
	return nil
}

func (c *fakeConn) WriteMessage(_ int, data []byte) error {
	panic("frames are written to the socket, not through the library")
}

// next returns the next frame written, failing after a second.
func (c *fakeConn) next(t *testing.T) string {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(time.Second):
		t.Fatal("no frame written")
		return ""
	}
}

// none checks that no frame is written for a little while.
func (c *fakeConn) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-c.frames:
		t.Fatalf("unexpected frame %s", f)
	case <-time.After(50 * time.Millisecond):
	}
}

// testEnv is a hub in a real actor system, behind a Server that is not
// serving HTTP: sessions are driven through the Server's methods.
type testEnv struct {
	router *fakeRouter
	system *actor.ActorSystem
	srv    *Server
	hub    *Hub
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	r := newFakeRouter()
	v, err := auth.NewVerifier(auth.Config{Secret: []byte("hub-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, Deps{Router: r, Verifier: v, System: system, Logger: quiet, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.CloseAll(CloseDraining, "test over") })
	return &testEnv{router: r, system: system, srv: srv, hub: srv.Hub()}
}

// open attaches a session of user uid; it is detached at cleanup.
func (e *testEnv) open(t *testing.T, uid int64) (*session, *fakeConn) {
	t.Helper()
	c := newFakeConn(t)
	s := newSession(c, auth.Identity{UserID: uid, Username: "u"}, nil, &sessionOptions{
		queue: e.srv.cfg.SendQueue, writeTimeout: time.Second, stats: e.hub.Stats(),
	})
	if !e.srv.attach(s) {
		t.Fatalf("attach of user %d refused", uid)
	}
	t.Cleanup(s.wait)
	t.Cleanup(func() { s.close(1000, "") })
	return s, c
}

func state(id int64, v uint64) *messages.UserState {
	return &messages.UserState{UserId: id, Username: "x", IsOnline: true, Version: v}
}

// busyState is state(id, v) busy: a change watchers see.
func busyState(id int64, v uint64) *messages.UserState {
	st := state(id, v)
	st.IsBusy = true
	return st
}

// update sends the hub actor a change, as a user actor does.
func (e *testEnv) update(st *messages.UserState) {
	e.system.Root.Send(e.hub.PID(), &messages.Envelope{Body: &messages.Envelope_PresenceUpdate{PresenceUpdate: &messages.PresenceUpdate{State: st}}})
}

func (e *testEnv) hubUser(uid int64) auth.Identity { return auth.Identity{UserID: uid, Username: "u"} }

func (r *fakeRouter) sessionsOf(uid int64) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[uid]
}
