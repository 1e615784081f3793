package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/messages"
)

// Retry policy of a routed request. A sender whose view of the membership
// is behind gets NotOwner, or times out on a node that died; it waits and
// asks again, by then usually with a newer view, until the caller's
// deadline.
const (
	retryFirst      = 20 * time.Millisecond
	retryMax        = 500 * time.Millisecond
	remoteAttempt   = 2 * time.Second
	handoffDeadline = 10 * time.Second
	// noBatchFor is how long a member that did not answer a batch read is
	// read the per-user way only. Members of an older version are not
	// sent batches at all (their advertised protocol version says so), so
	// such a member is overloaded or failing: the per-user path, with its
	// retries and re-routing, is right for it, and asking again later
	// finds it recovered.
	noBatchFor = 15 * time.Second
)

// ErrNoOwner reports that no member can own users (every member drains).
var ErrNoOwner = errors.New("cluster: no member can own users")

// Router delivers messages to user actors: it picks the user's owner by
// rendezvous hashing over the current view and sends to that node's
// activator. Handlers and hubs ask it for "the actor of user N", never for
// a PID.
type Router struct {
	host *actors.Host
	log  *slog.Logger
	// self is this node's member name; "" in standalone mode, where this
	// node owns every user.
	self string
	view func() *View

	mu   sync.Mutex
	pids map[string]*actor.PID // remote address -> activator PID
	// noBatch holds the remote addresses that did not answer a batch
	// read, until when they are read the per-user way.
	noBatch map[string]time.Time

	// latency, when set, observes each successful round trip.
	latency *prometheus.HistogramVec
}

func newRouter(host *actors.Host, self string, view func() *View, logger *slog.Logger) *Router {
	return &Router{host: host, self: self, view: view, log: logger, pids: make(map[string]*actor.PID)}
}

// Owner returns the member name that owns userID in this node's view ("" in
// standalone mode).
func (r *Router) Owner(userID int64) string {
	if r.view == nil {
		return ""
	}
	m, _ := r.view().Owner(userID)
	return m.Name
}

// Owns reports whether this node owns userID in its current view.
func (r *Router) Owns(userID int64) bool {
	if r.view == nil {
		return true
	}
	m, ok := r.view().Owner(userID)
	return ok && m.Name == r.self
}

// target returns the activator of userID's owner.
func (r *Router) target(userID int64) (*actor.PID, bool, error) {
	pid, _, local, err := r.targetMember(userID)
	return pid, local, err
}

// targetMember is target with the owning member (zero for this node in
// standalone mode).
func (r *Router) targetMember(userID int64) (*actor.PID, Member, bool, error) {
	if r.view == nil {
		return r.host.Activator(), Member{}, true, nil
	}
	m, ok := r.view().Owner(userID)
	if !ok {
		return nil, Member{}, false, ErrNoOwner
	}
	if m.Name == r.self {
		return r.host.Activator(), m, true, nil
	}
	return r.activatorAt(m.RemoteAddr), m, false, nil
}

func (r *Router) activatorAt(addr string) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, ok := r.pids[addr]
	if !ok {
		pid = actor.NewPID(addr, actors.ActivatorName)
		r.pids[addr] = pid
	}
	return pid
}

// Request sends env to the actor of userID, wherever it lives, and waits
// for its answer, re-routing while views disagree.
func (r *Router) Request(ctx context.Context, userID int64, env *messages.Envelope) (*messages.Envelope, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, actors.DefaultRequestTimeout)
		defer cancel()
	}
	backoff := retryFirst
	start := time.Now()
	for {
		pid, local, err := r.target(userID)
		var reply *messages.Envelope
		if err == nil {
			actx, cancel := ctx, context.CancelFunc(func() {})
			if !local {
				actx, cancel = context.WithTimeout(ctx, remoteAttempt)
			}
			reply, err = r.host.Request(actx, pid, env)
			cancel()
			if err == nil && reply.GetNotOwner() == nil {
				if r.latency != nil {
					r.latency.WithLabelValues(ownerLabel(local)).Observe(time.Since(start).Seconds())
				}
				return reply, nil
			}
			if err != nil && local {
				return nil, err // a local actor that does not answer is not a routing problem
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("user %d: owner views disagree", userID)
			}
			r.log.Warn("routed request gave up", slog.Int64("user_id", userID), slog.Any("err", err))
			return nil, actors.ErrTimeout
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

func ownerLabel(local bool) string {
	if local {
		return "local"
	}
	return "remote"
}

// RequestAll sends every envelope before waiting for any answer, with one
// reply collector for the lot; answers that need re-routing, and requests
// whose answer did not come in the first round, are retried one by one.
// The envelopes must name distinct users.
func (r *Router) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	targets := make([]*actor.PID, len(envs))
	for i, env := range envs {
		pid, _, err := r.target(actors.UserID(env))
		if err != nil {
			pid = r.host.Activator() // answered NotOwner or failed, then retried
		}
		targets[i] = pid
	}
	// The first round waits at most remoteAttempt, leaving time for
	// retries within the caller's deadline.
	first, cancel := context.WithTimeout(ctx, remoteAttempt)
	replies := r.host.AskAll(first, targets, envs)
	cancel()
	errs := make([]error, len(envs))
	for i, reply := range replies {
		if reply != nil && reply.GetNotOwner() == nil {
			continue
		}
		replies[i], errs[i] = r.Request(ctx, actors.UserID(envs[i]), envs[i])
	}
	return replies, errs
}

// ReadPresence returns the presence of each user of ids, in order, nil for
// a user without a record: one GetPresenceBatch per owner node, answered
// from its actors' snapshots, then the per-user path (RequestAll) for the
// users a batch could not answer. See actors.Host.ReadPresence.
func (r *Router) ReadPresence(ctx context.Context, ids []int64) ([]*messages.UserState, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, actors.DefaultRequestTimeout)
		defer cancel()
	}
	start := time.Now()
	route := &presenceRoute{r: r, now: start}
	states, err := r.host.ReadPresence(ctx, ids, route)
	if err == nil && r.latency != nil {
		r.latency.WithLabelValues(ownerLabel(!route.remote)).Observe(time.Since(start).Seconds())
	}
	return states, err
}

// presenceRoute is the router as one ReadPresence call sees it.
type presenceRoute struct {
	r      *Router
	now    time.Time
	remote bool // some user lives on another node
	// last and lastOK remember the latest remote target and whether it
	// takes batches: a batch has a few owners for many users.
	last   *actor.PID
	lastOK bool
}

// BatchTarget implements actors.PresenceRoute.
func (p *presenceRoute) BatchTarget(userID int64) *actor.PID {
	pid, m, local, err := p.r.targetMember(userID)
	if err != nil {
		return nil // the per-user path waits for an owner
	}
	if local {
		return pid
	}
	p.remote = true
	if pid != p.last {
		// A member of an older version ignores the kind: its users are
		// read one by one without asking it first.
		p.last, p.lastOK = pid, m.Proto >= protoBatchReads && p.r.takesBatches(pid.Address, p.now)
	}
	if !p.lastOK {
		return nil
	}
	return pid
}

// takesBatches reports whether the member at addr is sent batch reads: it
// is not, for noBatchFor after it failed to answer one.
func (r *Router) takesBatches(addr string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.noBatch[addr]
	if !ok {
		return true
	}
	if now.Before(until) {
		return false
	}
	delete(r.noBatch, addr)
	return true
}

// BatchUnanswered implements actors.PresenceRoute.
func (p *presenceRoute) BatchUnanswered(pid *actor.PID) {
	if pid.Address == p.r.host.Activator().Address {
		return // this node answers batches; it was only slow
	}
	p.r.log.Info("member did not answer a batch presence read; reading its users one by one for a while",
		slog.String("address", pid.Address), slog.Duration("for", noBatchFor))
	p.r.mu.Lock()
	if p.r.noBatch == nil {
		p.r.noBatch = make(map[string]time.Time)
	}
	p.r.noBatch[pid.Address] = time.Now().Add(noBatchFor)
	p.r.mu.Unlock()
}

// RequestAll implements actors.PresenceRoute. One user (a single read that
// missed) takes the single request path: no reply collector to set up.
func (p *presenceRoute) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	if len(envs) == 1 {
		reply, err := p.r.Request(ctx, actors.UserID(envs[0]), envs[0])
		return []*messages.Envelope{reply}, []error{err}
	}
	return p.r.RequestAll(ctx, envs)
}

// Cleanup asks every owning member to re-check its users' timers and sweep
// its share of the stored records, and sums their counts.
func (r *Router) Cleanup(ctx context.Context) (*messages.CleanupCount, error) {
	targets := []*actor.PID{r.host.Activator()}
	if r.view != nil {
		targets = targets[:0]
		for _, m := range r.view().Owners {
			if m.Name == r.self {
				targets = append(targets, r.host.Activator())
			} else {
				targets = append(targets, r.activatorAt(m.RemoteAddr))
			}
		}
	}
	timeout := actors.DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	futures := make([]*actor.Future, len(targets))
	for i, pid := range targets {
		futures[i] = r.host.Ask(pid, &messages.Envelope{Body: &messages.Envelope_CleanupNode{CleanupNode: &messages.CleanupNode{}}}, timeout)
	}
	total := &messages.CleanupCount{}
	var errs []error
	for i, f := range futures {
		reply, err := actors.Await(f, targets[i])
		if err == nil && reply.GetFailure() != nil {
			err = errors.New(reply.GetFailure().GetDetail())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup on %s: %w", targets[i].Address, err))
			continue
		}
		total.UsersMarkedOffline += reply.GetCleanupCount().GetUsersMarkedOffline()
		total.BusyStatusCleared += reply.GetCleanupCount().GetBusyStatusCleared()
	}
	return total, errors.Join(errs...)
}

// handoff activates userID on its owner, without blocking the caller. An
// owner that cannot load the user (its store failing) answers a failure:
// that is retried too, until handoffDeadline.
func (r *Router) handoff(userID int64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), handoffDeadline)
		defer cancel()
		env := &messages.Envelope{Body: &messages.Envelope_Recheck{Recheck: &messages.Recheck{UserId: userID}}}
		for {
			reply, err := r.Request(ctx, userID, env)
			if err == nil && reply.GetFailure() != nil {
				err = errors.New(reply.GetFailure().GetDetail())
			}
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
				r.log.Warn("handoff to new owner failed; the user's timers run again at its next activation",
					slog.Int64("user_id", userID), slog.Any("err", err))
				return
			case <-time.After(retryMax):
			}
		}
	}()
}

// NodeStats asks the member at remoteAddr (or this node, for "") for its
// statistics.
func (r *Router) NodeStats(ctx context.Context, remoteAddr string) (*messages.NodeStats, error) {
	pid := r.host.Activator()
	if remoteAddr != "" && remoteAddr != pid.Address {
		pid = r.activatorAt(remoteAddr)
	}
	reply, err := r.host.Request(ctx, pid, &messages.Envelope{Body: &messages.Envelope_NodeInfo{NodeInfo: &messages.NodeInfo{}}})
	if err != nil {
		return nil, err
	}
	return reply.GetNodeStats(), nil
}
