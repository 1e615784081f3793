package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// cleanupConcurrency bounds how many rechecks a cleanup has in flight.
const cleanupConcurrency = 64

// localRequestTimeout bounds a request the host makes to its own
// activator when the caller's context has no deadline.
const localRequestTimeout = 5 * time.Second

// Host runs the user actors of one node under its activator: Config.Shards
// activator shards, each the parent of its users' actors, behind the
// dispatcher registered under ActivatorName. Reaching the actors (of this
// node or another) is the routing package's job; the host only starts,
// informs and stops them.
type Host struct {
	cfg       *Config
	system    *actor.ActorSystem
	activator *actor.PID   // the dispatcher
	shards    []*actor.PID // the activator shards
}

// NewHost spawns the node's activator shards in system and registers the
// dispatcher that reaches them under ActivatorName. owns says which users
// this node may activate; nil means all of them.
func NewHost(system *actor.ActorSystem, cfg Config, owns OwnerFunc) (*Host, error) {
	c := cfg.withDefaults()
	if c.Store == nil {
		return nil, errors.New("actors: Config.Store is required")
	}
	h := &Host{cfg: c, system: system}
	d := &dispatcher{system: system, cfg: c, host: h, owns: owns}
	for i := range c.Shards {
		table := newChildTable()
		props := actor.PropsFromProducer(func() actor.Actor { return newActivator(c, owns, table) })
		pid, err := system.Root.SpawnNamed(props, shardName(i))
		if err != nil {
			h.stopShards()
			return nil, fmt.Errorf("spawn activator shard %d: %w", i, err)
		}
		h.shards = append(h.shards, pid)
		d.shards, d.tables = append(d.shards, pid), append(d.tables, table)
	}
	pid, ok := system.ProcessRegistry.Add(d, ActivatorName)
	if !ok {
		h.stopShards()
		return nil, fmt.Errorf("register activator: the name %q is taken", ActivatorName)
	}
	h.activator = pid
	return h, nil
}

// shardName is the actor name of activator shard i.
func shardName(i int) string { return fmt.Sprintf("%s-shard-%d", ActivatorName, i) }

// Activator returns the PID of this node's activator (its dispatcher).
func (h *Host) Activator() *actor.PID { return h.activator }

// Shards returns how many activator shards this node's users are split
// over.
func (h *Host) Shards() int { return len(h.shards) }

// ViewChanged tells the activator that ownership may have moved: users
// this node no longer owns are stopped (their state is already stored), and
// every user actor forgets the hubs for which hubAlive is false. When a
// member joined, actors also re-read their record, in case another
// activation wrote it while views disagreed.
func (h *Host) ViewChanged(hubAlive func(address string) bool, joined bool) {
	m := &viewChanged{hubAlive: hubAlive, joined: joined}
	for _, pid := range h.shards {
		h.system.Root.Send(pid, m)
	}
}

// ActiveUsers lists the users whose actors are alive on this node. Each
// shard answers after the messages sent to it before (a ViewChanged, say).
func (h *Host) ActiveUsers(ctx context.Context) ([]int64, error) {
	futures := make([]*actor.Future, len(h.shards))
	for i, pid := range h.shards {
		futures[i] = h.system.Root.RequestFuture(pid, &listActive{}, localRequestTimeout)
	}
	var ids []int64
	for i, f := range futures {
		res, err := f.Result()
		if err != nil {
			return nil, fmt.Errorf("list active users of shard %d: %w", i, err)
		}
		ids = append(ids, res.(*activeUsers).ids...)
	}
	return ids, nil
}

// Cleanup makes every user actor of this node re-check its timers now, and
// activates (so re-checks) every stored user that is online or busy
// without an actor here and that owns says is ours: after a restart those
// records have nobody to expire them. It returns the summed counts and the
// users changed (see CleanupReportLimit).
func (h *Host) Cleanup(ctx context.Context, owns OwnerFunc) (*messages.CleanupCount, error) {
	ids, _, err := h.cleanupTargets(ctx, owns)
	if err != nil {
		return nil, err
	}
	report, err := h.eachUser(ctx, ids, func(id int64) (*messages.CleanupCount, error) {
		return h.recheck(ctx, id, false)
	})
	h.cfg.Observer.CleanupFound(report.GetUsersMarkedOffline(), report.GetBusyStatusCleared())
	return report, err
}

// PreviewCleanup answers what Cleanup would do now, changing nothing: the
// active users' actors judge their own deadlines without applying them,
// and the stored records no actor holds are judged as their activation
// would judge them, without activating anyone.
func (h *Host) PreviewCleanup(ctx context.Context, owns OwnerFunc) (*messages.CleanupCount, error) {
	ids, stored, err := h.cleanupTargets(ctx, owns)
	if err != nil {
		return nil, err
	}
	return h.eachUser(ctx, ids, func(id int64) (*messages.CleanupCount, error) {
		st, ok := stored[id]
		if !ok {
			c, err := h.recheck(ctx, id, true)
			if !errors.Is(err, errNotActive) {
				return c, err
			}
			// Passivated since it was listed: its stored record is all
			// there is.
			if st, err = h.loadStored(ctx, id); st == nil || err != nil {
				return nil, err
			}
		}
		return cleanupReply(storedDue(h.cfg, st, h.pendingLastSeen(id), micros(h.cfg.Clock.Now()))).GetCleanupCount(), nil
	})
}

// eachUser calls one for every id, cleanupConcurrency at a time, and sums
// the answers. It stops early when ctx ends; the error is the first one
// met (or ctx's).
func (h *Host) eachUser(ctx context.Context, ids []int64, one func(id int64) (*messages.CleanupCount, error)) (*messages.CleanupCount, error) {
	var (
		report   cleanupReport
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		work     = make(chan int64)
	)
	for range min(cleanupConcurrency, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				c, err := one(id)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				report.add(c)
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return report.count(), firstErr
}

// cleanupTargets lists the users a cleanup re-checks: the active ones and
// the stored live ones that owns says are ours. stored holds the records
// of the latter, the ones no actor held when listed.
func (h *Host) cleanupTargets(ctx context.Context, owns OwnerFunc) (ids []int64, stored map[int64]*messages.UserState, err error) {
	ids, err = h.ActiveUsers(ctx)
	if err != nil {
		return nil, nil, err
	}
	seen := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	stored = make(map[int64]*messages.UserState)
	err = h.cfg.Store.ScanLive(ctx, func(st *messages.UserState) error {
		id := st.GetUserId()
		if _, ok := seen[id]; !ok && (owns == nil || owns(id)) {
			seen[id] = struct{}{}
			ids = append(ids, id)
			stored[id] = st
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan stored users: %w", err)
	}
	return ids, stored, nil
}

// loadStored reads id's stored record; nil (and no error) when there is none.
func (h *Host) loadStored(ctx context.Context, id int64) (*messages.UserState, error) {
	st, err := h.cfg.Store.Load(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("load user %d: %w", id, err)
	}
	return st, nil
}

// pendingLastSeen is id's last_seen waiting in the write-behind queue, or 0.
func (h *Host) pendingLastSeen(id int64) int64 {
	if h.cfg.LastSeen == nil {
		return 0
	}
	if us, ok := h.cfg.LastSeen.Pending(id); ok {
		return us
	}
	return 0
}

// errNotActive is a dry-run recheck of a user no actor holds here.
var errNotActive = errors.New("user not active")

// recheck asks the local actor of id to apply its passed deadlines, or
// with dryRun only to report them (errNotActive: no actor holds id).
func (h *Host) recheck(ctx context.Context, id int64, dryRun bool) (*messages.CleanupCount, error) {
	timeout := localRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, fmt.Errorf("recheck user %d: %w", id, context.DeadlineExceeded)
		}
	}
	env := &messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: id, DryRun: dryRun}}}
	res, err := h.system.Root.RequestFuture(h.activator, env, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("recheck user %d: %w", id, err)
	}
	reply, _ := res.(*messages.Envelope)
	if f := reply.GetFailure(); f != nil {
		return nil, fmt.Errorf("recheck user %d: %s", id, f.GetDetail())
	}
	if reply.GetNotFound() != nil && dryRun {
		return nil, errNotActive
	}
	return reply.GetCleanupCount(), nil
}

// Stop stops the activator shards and with them every user actor. Visible
// state is already persisted; last_seen stays with the write-behind writer,
// which its owner flushes after this.
func (h *Host) Stop() error {
	h.system.ProcessRegistry.Remove(h.activator)
	return h.stopShards()
}

// stopShards stops every shard at once and waits for all of them.
func (h *Host) stopShards() error {
	futures := make([]*actor.Future, len(h.shards))
	for i, pid := range h.shards {
		futures[i] = h.system.Root.StopFuture(pid)
	}
	var errs []error
	for i, f := range futures {
		if err := f.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stop activator shard %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
