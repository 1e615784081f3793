package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// DefaultRequestTimeout bounds a request to a user actor when the caller's
// context has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// cleanupConcurrency bounds how many rechecks a cleanup has in flight.
const cleanupConcurrency = 64

// ErrTimeout reports that a user actor did not answer in time.
var ErrTimeout = errors.New("actors: request timed out")

// Host runs the user actors of one node under its activator.
type Host struct {
	cfg       *Config
	system    *actor.ActorSystem
	activator *actor.PID
	// batchTimeout is BatchTimeout; tests shorten it.
	batchTimeout time.Duration
}

// NewHost spawns the node's activator in system under ActivatorName. owns
// says which users this node may activate; nil means all of them.
func NewHost(system *actor.ActorSystem, cfg Config, owns OwnerFunc) (*Host, error) {
	c := cfg.withDefaults()
	if c.Store == nil {
		return nil, errors.New("actors: Config.Store is required")
	}
	h := &Host{cfg: c, system: system, batchTimeout: BatchTimeout}
	props := actor.PropsFromProducer(func() actor.Actor { return newActivator(c, h, owns) })
	pid, err := system.Root.SpawnNamed(props, ActivatorName)
	if err != nil {
		return nil, fmt.Errorf("spawn activator: %w", err)
	}
	h.activator = pid
	return h, nil
}

// Activator returns the PID of this node's activator.
func (h *Host) Activator() *actor.PID { return h.activator }

// Request sends env to the user actor it names, through the activator at
// pid (this node's or another's), and waits for the answer.
func (h *Host) Request(ctx context.Context, pid *actor.PID, env *messages.Envelope) (*messages.Envelope, error) {
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ErrTimeout
		}
	}
	return Await(h.Ask(pid, env, timeout), pid)
}

// Ask sends env to the activator at pid without waiting; Await collects the
// answer. Sending many before awaiting any keeps them all in flight.
func (h *Host) Ask(pid *actor.PID, env *messages.Envelope, timeout time.Duration) *actor.Future {
	return h.system.Root.RequestFuture(pid, env, timeout)
}

// Await waits for the answer of a request sent with Ask.
func Await(f *actor.Future, pid *actor.PID) (*messages.Envelope, error) {
	res, err := f.Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, ErrTimeout
		}
		return nil, fmt.Errorf("request to %s: %w", pid, err)
	}
	reply, ok := res.(*messages.Envelope)
	if !ok {
		return nil, fmt.Errorf("request to %s: unexpected reply %T", pid, res)
	}
	return reply, nil
}

// ViewChanged tells the activator that ownership may have moved: users
// this node no longer owns are stopped (their state is already stored), and
// every user actor forgets the hubs for which hubAlive is false. When a
// member joined, actors also re-read their record, in case another
// activation wrote it while views disagreed.
func (h *Host) ViewChanged(hubAlive func(address string) bool, joined bool) {
	h.system.Root.Send(h.activator, &viewChanged{hubAlive: hubAlive, joined: joined})
}

// ActiveUsers lists the users whose actors are alive on this node.
func (h *Host) ActiveUsers(ctx context.Context) ([]int64, error) {
	res, err := h.system.Root.RequestFuture(h.activator, &listActive{}, DefaultRequestTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("list active users: %w", err)
	}
	return res.(*activeUsers).ids, nil
}

// Cleanup makes every user actor of this node re-check its timers now, and
// activates (so re-checks) every stored user that is online or busy
// without an actor here and that owns says is ours: after a restart those
// records have nobody to expire them. It returns the summed counts.
func (h *Host) Cleanup(ctx context.Context, owns OwnerFunc) (*messages.CleanupCount, error) {
	ids, err := h.ActiveUsers(ctx)
	if err != nil {
		return nil, err
	}
	seen := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	err = h.cfg.Store.ScanLive(ctx, func(st *messages.UserState) error {
		id := st.GetUserId()
		if _, ok := seen[id]; !ok && (owns == nil || owns(id)) {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan stored users: %w", err)
	}

	var (
		offline, busy atomic.Int64
		firstErr      error
		errOnce       sync.Once
		wg            sync.WaitGroup
		work          = make(chan int64)
	)
	for range min(cleanupConcurrency, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				reply, err := h.Request(ctx, h.activator, &messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: id}}})
				if err == nil {
					if f := reply.GetFailure(); f != nil {
						err = fmt.Errorf("recheck user %d: %s", id, f.GetDetail())
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				c := reply.GetCleanupCount()
				offline.Add(c.GetUsersMarkedOffline())
				busy.Add(c.GetBusyStatusCleared())
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
	h.cfg.Observer.CleanupFound(offline.Load(), busy.Load())
	return &messages.CleanupCount{UsersMarkedOffline: offline.Load(), BusyStatusCleared: busy.Load()}, firstErr
}

// Stop stops the activator and with it every user actor. Visible state is
// already persisted; last_seen stays with the write-behind writer, which its
// owner flushes after this.
func (h *Host) Stop() error {
	if err := h.system.Root.StopFuture(h.activator).Wait(); err != nil {
		return fmt.Errorf("stop activator: %w", err)
	}
	return nil
}

// replyOf returns the user an answer is about, for correlating the answers
// of AskAll; 0 for a kind that names none (a failure).
func replyOf(env *messages.Envelope) int64 {
	switch b := env.Body.(type) {
	case *messages.Envelope_StateReply:
		return b.StateReply.GetState().GetUserId()
	case *messages.Envelope_NotFound:
		return b.NotFound.GetUserId()
	case *messages.Envelope_NotOwner:
		return b.NotOwner.GetUserId()
	case *messages.Envelope_Failure:
		return b.Failure.GetUserId()
	case *messages.Envelope_Ack:
		return b.Ack.GetUserId()
	}
	return 0
}

// replyCollector is a process that only buffers the answers sent to it: one
// per AskAll, instead of a future (a registration and a timer) per
// request.
type replyCollector struct{ ch chan *messages.Envelope }

func (c *replyCollector) SendUserMessage(_ *actor.PID, message interface{}) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if env, ok := msg.(*messages.Envelope); ok {
		select {
		case c.ch <- env:
		default: // more answers than requests: a duplicate, dropped
		}
	}
}
func (c *replyCollector) SendSystemMessage(*actor.PID, interface{}) {}
func (c *replyCollector) Stop(*actor.PID)                           {}

// AskAll sends envs[i] to targets[i] and waits, until ctx ends, for the
// answers, correlated by user id (the ids must be distinct). Requests
// without an answer by then are nil in the result; the caller retries them
// one by one.
func (h *Host) AskAll(ctx context.Context, targets []*actor.PID, envs []*messages.Envelope) []*messages.Envelope {
	c := &replyCollector{ch: make(chan *messages.Envelope, len(envs))}
	reg := h.system.ProcessRegistry
	pid, ok := reg.Add(c, "batch$"+reg.NextId())
	if !ok {
		return make([]*messages.Envelope, len(envs))
	}
	defer reg.Remove(pid)
	index := make(map[int64]int, len(envs))
	for i, env := range envs {
		index[UserID(env)] = i
		h.system.Root.RequestWithCustomSender(targets[i], env, pid)
	}
	out := make([]*messages.Envelope, len(envs))
	for pending := len(envs); pending > 0; {
		select {
		case <-ctx.Done():
			return out
		case env := <-c.ch:
			if i, ok := index[replyOf(env)]; ok && out[i] == nil {
				out[i] = env
				pending--
			}
		}
	}
	return out
}

// BatchTimeout bounds the wait for one node's answer to a batch presence
// read. A node older than GetPresenceBatch ignores it, so this is what such
// a node costs before its users are read the per-user way (and the route
// is told, so it can stop sending it batches for a while).
const BatchTimeout = time.Second

// PresenceRoute is how Host.ReadPresence reaches the owners of users; the
// cluster router implements it over its view of the membership.
type PresenceRoute interface {
	// BatchTarget returns the activator that a batch read of userID goes
	// to, or nil when the user must be read the per-user way (no owner
	// known, or an owner that ignores batch reads).
	BatchTarget(userID int64) *actor.PID
	// BatchUnanswered tells that the activator at pid did not answer a
	// batch read in time.
	BatchUnanswered(pid *actor.PID)
	// RequestAll reads users the per-user way: it sends each envelope (a
	// GetPresence) to the actor of its user, activating it and
	// re-routing while views of the membership disagree, and returns the
	// answers in order (nil, with an error, where none came).
	RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error)
}

// Refusal is a user actor's Failure answer as an error: the actor refused
// the request (its store is unavailable, say). Code is the HTTP status the
// API answers with, Detail its message.
type Refusal struct {
	UserID int64
	Code   int32
	Detail string
}

func (e *Refusal) Error() string {
	return fmt.Sprintf("user %d: request refused (%d): %s", e.UserID, e.Code, e.Detail)
}

// batchGroup is the part of a ReadPresence sent to one activator, and its
// answer.
type batchGroup struct {
	pid      *actor.PID
	ids      []int64
	f        *actor.Future
	answered bool
	outcomes []messages.PresenceOutcome
	states   []*messages.UserState
	// next and nextState walk ids and states while the answer is merged.
	next, nextState int
}

// settle puts the answer about the group's next user, ids[g.next], into
// *st; it reports false when the answer does not settle that user (a miss,
// not the owner, an outcome this version does not know, no answer).
func (g *batchGroup) settle(st **messages.UserState) bool {
	j := g.next
	g.next++
	if !g.answered || len(g.outcomes) != len(g.ids) {
		return false
	}
	switch g.outcomes[j] {
	case messages.PresenceOutcome_PRESENCE_OUTCOME_FOUND:
		if g.nextState < len(g.states) && g.states[g.nextState].GetUserId() == g.ids[j] {
			*st = g.states[g.nextState]
			g.nextState++
			return true
		}
	case messages.PresenceOutcome_PRESENCE_OUTCOME_NOT_FOUND:
		return true // nil: the user has no record
	}
	return false
}

// ReadPresence returns the presence of each user of ids, in the same
// order: nil for a user without a record. It sends one GetPresenceBatch
// per owner node (the activator answers from its actors' snapshots) and
// waits for all of them; the users they could not answer (not active, not
// owned in the owner's view, a node that did not answer) are then read
// through route.RequestAll, which activates and re-routes. An id may
// appear more than once. The error is that of the first user, in order,
// whose read failed: a *Refusal for an actor's refusal, ErrTimeout when
// nothing answered in time.
func (h *Host) ReadPresence(ctx context.Context, ids []int64, route PresenceRoute) ([]*messages.UserState, error) {
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ErrTimeout
		}
	}
	timeout = min(timeout, h.batchTimeout)

	// groupOf[i] is the index in groups of the batch that reads ids[i], or
	// -1 when ids[i] is read the per-user way. The buffers keep the usual
	// request (up to 64 ids, a few nodes) off the heap.
	var (
		groupBuf [8]batchGroup
		indexBuf [64]int
		groups   = groupBuf[:0]
		groupOf  = indexBuf[:0]
	)
	for i, id := range ids {
		pid := route.BatchTarget(id)
		k := -1
		if pid != nil {
			for c := range groups {
				// Targets are cached PIDs: the pointer comparison is the
				// usual hit.
				if groups[c].pid == pid || groups[c].pid.Equal(pid) {
					k = c
					break
				}
			}
			if k < 0 {
				k = len(groups)
				groups = append(groups, batchGroup{pid: pid, ids: make([]int64, 0, len(ids)-i)})
			}
			groups[k].ids = append(groups[k].ids, id)
		}
		groupOf = append(groupOf, k)
	}
	for k := range groups {
		g := &groups[k]
		env := &messages.Envelope{Body: &messages.Envelope_GetPresenceBatch{GetPresenceBatch: &messages.GetPresenceBatch{UserIds: g.ids}}}
		g.f = h.system.Root.RequestFuture(g.pid, env, timeout)
	}
	for k := range groups {
		g := &groups[k]
		reply, err := Await(g.f, g.pid)
		if err != nil {
			route.BatchUnanswered(g.pid)
			continue
		}
		// A reply of another kind (a failure, say) settles nothing.
		b := reply.GetPresenceBatchReply()
		g.answered, g.outcomes, g.states = b != nil, b.GetOutcomes(), b.GetStates()
	}

	out := make([]*messages.UserState, len(ids))
	var rest []int // positions read the per-user way
	for i, k := range groupOf {
		if k < 0 || !groups[k].settle(&out[i]) {
			rest = append(rest, i)
		}
	}
	h.cfg.Observer.PresenceRead(len(ids)-len(rest), len(rest))
	if len(rest) == 0 {
		return out, nil
	}
	return out, h.readEach(ctx, ids, out, rest, route)
}

// readEach reads the users at positions rest of ids the per-user way and
// fills out; it returns the error of the first failed position in order.
func (h *Host) readEach(ctx context.Context, ids []int64, out []*messages.UserState, rest []int, route PresenceRoute) error {
	// RequestAll wants distinct users: a duplicate is read once.
	envs := make([]*messages.Envelope, 0, len(rest))
	first := make(map[int64]int, len(rest)) // user id -> index in envs
	for _, i := range rest {
		if _, ok := first[ids[i]]; !ok {
			first[ids[i]] = len(envs)
			envs = append(envs, &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: ids[i]}}})
		}
	}
	replies, errs := route.RequestAll(ctx, envs)
	for _, i := range rest {
		k := first[ids[i]]
		if errs[k] != nil {
			return fmt.Errorf("read presence of user %d: %w", ids[i], errs[k])
		}
		switch b := replies[k].GetBody().(type) {
		case *messages.Envelope_StateReply:
			out[i] = b.StateReply.GetState()
		case *messages.Envelope_NotFound:
			// nil: the user has no record
		case *messages.Envelope_Failure:
			return &Refusal{UserID: ids[i], Code: b.Failure.GetCode(), Detail: b.Failure.GetDetail()}
		default:
			return fmt.Errorf("read presence of user %d: unexpected reply %T", ids[i], b)
		}
	}
	return nil
}
