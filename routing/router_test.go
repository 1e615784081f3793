package routing

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// members is a membership whose view the test sets.
type members struct {
	self string
	view func() *cluster.View
}

func (m members) View() *cluster.View { return m.view() }
func (m members) LocalName() string   { return m.self }

// newTestRouter starts a host on the memory store in its own actor system
// and a router over it; view nil is a standalone node (a static
// one-member view).
func newTestRouter(t *testing.T, owns actors.OwnerFunc, self string, view func() *cluster.View) (*Router, *store.Memory) {
	t.Helper()
	st := store.NewMemory()
	var m Members = members{self: self, view: view}
	if view == nil {
		m = cluster.NewStatic(cluster.Member{Name: "self", State: "alive"})
	}
	return newRouter(t, st, owns, m), st
}

// newRouterOn is a standalone router over a host on st.
func newRouterOn(t *testing.T, st store.Store) *Router {
	return newRouter(t, st, nil, cluster.NewStatic(cluster.Member{Name: "self", State: "alive"}))
}

func newRouter(t *testing.T, st store.Store, owns actors.OwnerFunc, m Members) *Router {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	host, err := actors.NewHost(system, actors.Config{Store: st, Logger: quiet}, owns)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() {
		_ = host.Stop()
		system.Shutdown()
	})
	return New(system, m, nil, quiet)
}

func putUser(t *testing.T, st *store.Memory, id int64, busy bool) {
	t.Helper()
	now := time.Now().UnixMicro()
	rec := &messages.UserState{UserId: id, Username: "u", IsBusy: busy, LastSeen: now, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := st.Save(context.Background(), rec, 0); err != nil {
		t.Fatalf("store.Save: %v", err)
	}
}

// ReadPresence through the real router: an id the owner's activator says
// it does not own (views disagree for a moment) is re-routed until an
// owner answers; misses are activated from the store; users without a
// record are nil; the request's order is kept.
func TestRouterReadPresence(t *testing.T) {
	const disputed = 2
	var disowned atomic.Bool
	disowned.Store(true)
	r, st := newTestRouter(t, func(id int64) bool { return id != disputed || !disowned.Load() }, "", nil)
	for _, id := range []int64{1, disputed, 3} {
		putUser(t, st, id, id == disputed)
	}
	time.AfterFunc(50*time.Millisecond, func() { disowned.Store(false) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ids := range [][]int64{{3, 99, disputed, 1}, {disputed}} {
		got, err := r.ReadPresence(ctx, ids)
		if err != nil {
			t.Fatalf("ReadPresence(%v): %v", ids, err)
		}
		for i, id := range ids {
			switch {
			case id == 99 && got[i] != nil:
				t.Fatalf("ReadPresence(%v)[%d] = %v, want nil (no record)", ids, i, got[i])
			case id != 99 && (got[i].GetUserId() != id || got[i].GetIsBusy() != (id == disputed)):
				t.Fatalf("ReadPresence(%v)[%d] = %v, want user %d", ids, i, got[i], id)
			}
		}
	}
	if disowned.Load() {
		t.Fatal("read answered before the disputed user had an owner")
	}
}

// A member that does not answer a batch (overloaded, failing) is read the
// per-user way for noBatchFor; a member of an older version, which would
// ignore the kind, is never sent one.
func TestRouterBatchTargets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto int
		// batched: the member was sent a batch (and, silent, is then
		// left out for noBatchFor).
		batched bool
	}{
		{"current version, silent", cluster.ProtoVersion, true},
		{"older version", cluster.ProtoBatchReads - 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const silentAddr = "192.0.2.1:8090" // no remote here: dead letters
			var view *cluster.View
			r, st := newTestRouter(t, nil, "a", func() *cluster.View { return view })
			view = cluster.NewView([]cluster.Member{
				{Name: "a", RemoteAddr: r.local.Address, State: "alive", Proto: cluster.ProtoVersion},
				{Name: "b", RemoteAddr: silentAddr, State: "alive", Proto: tc.proto},
			}, 1)
			var mine, theirs int64
			for id := int64(1); mine == 0 || theirs == 0; id++ {
				if m, _ := view.Owner(id); m.Name == "a" {
					mine = id
				} else {
					theirs = id
				}
			}
			putUser(t, st, mine, false)

			if !r.takesBatches(silentAddr, time.Now()) {
				t.Fatal("a member is left out before it failed to answer")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if _, err := r.ReadPresence(ctx, []int64{mine, theirs}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ReadPresence with an unreachable owner: err = %v, want ErrUnavailable", err)
			}
			if got := !r.takesBatches(silentAddr, time.Now()); got != tc.batched {
				t.Fatalf("member sent a batch that went unanswered: %v, want %v", got, tc.batched)
			}
			if !r.takesBatches(silentAddr, time.Now().Add(noBatchFor)) {
				t.Fatalf("a member is not sent batches again after %v", noBatchFor)
			}
			got, err := r.ReadPresence(context.Background(), []int64{mine})
			if err != nil || got[0].GetUserId() != mine {
				t.Fatalf("ReadPresence of a local user = %v, %v", got, err)
			}
		})
	}
}
