// Package routing delivers messages to user actors wherever they live: it
// maps a user id to its owner in the membership's view, sends to that
// node's activator over protoactor-go remoting, retries while views
// disagree, reads presence in batches from the owners' snapshots, and
// turns the actors' answers into domain errors (ErrNotFound,
// ErrUnavailable, ErrConflict, *Refusal) once, for every caller.
package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sync/singleflight"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// DefaultRequestTimeout bounds a routed request when the caller's context
// has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// Retry policy of a routed request. A sender whose view of the membership
// is behind gets NotOwner, or times out on a node that died; it waits and
// asks again, by then usually with a newer view, until the caller's
// deadline.
const (
	retryFirst      = 20 * time.Millisecond
	retryMax        = 500 * time.Millisecond
	handoffDeadline = 10 * time.Second
)

// Members is the part of a cluster.Membership the router reads.
type Members interface {
	View() *cluster.View
	LocalName() string
}

// Observer is told about routed requests, for metrics. Implementations
// must be cheap and safe for concurrent use.
type Observer interface {
	// RequestDone reports a successful round trip and whether the owner
	// was this node.
	RequestDone(local bool, d time.Duration)
	// PresenceRead reports how the users of one presence read were
	// answered: from the owners' published snapshots, or by their actors
	// (inactive users, a timer due, an owner that did not take the batch).
	PresenceRead(fromSnapshot, fromActor int)
}

type nopObserver struct{}

func (nopObserver) RequestDone(bool, time.Duration) {}
func (nopObserver) PresenceRead(int, int)           {}

// Router delivers messages to user actors: it picks the user's owner by
// rendezvous hashing over the current view and sends to that node's
// activator. Handlers and hubs ask it for "the actor of user N", never for
// a PID.
type Router struct {
	system  *actor.ActorSystem
	local   *actor.PID // this node's activator
	members Members
	obs     Observer
	log     *slog.Logger
	// batchTimeout is BatchTimeout; tests shorten it.
	batchTimeout time.Duration

	// health fails requests fast for members that stopped answering.
	health health
	// probes shares one liveness probe per member among the requests
	// that ran out of their attempt at the same time.
	probes singleflight.Group

	mu   sync.Mutex
	pids map[string]*actor.PID // remote address -> activator PID
	// noBatch holds the remote addresses that did not answer a batch
	// read, until when they are read the per-user way.
	noBatch map[string]time.Time
}

// New returns the router of the node whose actor system is system (with
// remoting started already, when clustered: the local activator's address
// is taken from it) and whose membership is members. obs and logger may be
// nil.
func New(system *actor.ActorSystem, members Members, obs Observer, logger *slog.Logger) *Router {
	if obs == nil {
		obs = nopObserver{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Router{
		system:       system,
		local:        actor.NewPID(system.Address(), actors.ActivatorName),
		members:      members,
		obs:          obs,
		log:          logger,
		batchTimeout: BatchTimeout,
		pids:         make(map[string]*actor.PID),
	}
}

// Owner returns the member name that owns userID in this node's view.
func (r *Router) Owner(userID int64) string {
	m, _ := r.members.View().Owner(userID)
	return m.Name
}

// Owns reports whether this node owns userID in its current view.
func (r *Router) Owns(userID int64) bool {
	m, ok := r.members.View().Owner(userID)
	return ok && m.Name == r.members.LocalName()
}

// target returns the activator of userID's owner, the owner, and whether
// it is this node.
func (r *Router) target(userID int64) (*actor.PID, cluster.Member, bool, error) {
	m, ok := r.members.View().Owner(userID)
	if !ok {
		return nil, cluster.Member{}, false, fmt.Errorf("%w: no member can own users", ErrUnavailable)
	}
	if m.Name == r.members.LocalName() {
		return r.local, m, true, nil
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
// for its answer, re-routing while views disagree. An answer that does
// not come before ctx's deadline is an error wrapping ErrUnavailable; an
// owner that stopped answering is refused fast with *OwnerDown (see
// health.go).
func (r *Router) Request(ctx context.Context, userID int64, env *messages.Envelope) (*messages.Envelope, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	backoff := retryFirst
	start := time.Now()
	var undelivered time.Time // first failed delivery to a remote owner
	for {
		reply, done, err := r.attempt(ctx, userID, env, start, &undelivered)
		if done {
			return reply, err
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("user %d: owner views disagree", userID)
			}
			r.log.Warn("routed request gave up", slog.Int64("user_id", userID), slog.Any("err", err))
			return nil, errTimeout
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

// attempt makes one attempt of Request at userID's current owner; done
// says whether its outcome is final (an answer, or an error to return).
// A remote owner that is suspected down refuses at once (*OwnerDown); one
// that does not answer within remoteAttempt, or that the transport cannot
// reach for undeliveredFor (since *undelivered, the request's first failed
// delivery; a connection being set up may fail once), becomes suspected,
// so the request, and every request after it, fails fast.
func (r *Router) attempt(ctx context.Context, userID int64, env *messages.Envelope, start time.Time, undelivered *time.Time) (*messages.Envelope, bool, error) {
	pid, m, local, err := r.target(userID)
	if err != nil {
		return nil, false, err
	}
	if local {
		reply, err := r.request(ctx, pid, env)
		if err != nil {
			return nil, true, err // a local actor that does not answer is not a routing problem
		}
		if reply.GetNotOwner() != nil {
			return nil, false, nil
		}
		r.obs.RequestDone(true, time.Since(start))
		return reply, true, nil
	}
	now := time.Now()
	if r.suspected(m, now) {
		return nil, true, ownerDown(userID, m)
	}
	if !knows(m, env) {
		return nil, true, &OlderMember{UserID: userID, Member: m.Name, Proto: m.Proto, Needs: protoNeeded(env)}
	}
	actx, cancel := context.WithTimeout(ctx, remoteAttempt)
	reply, err := r.request(actx, pid, env)
	cancel()
	now = time.Now()
	if err != nil && ctx.Err() == nil && !errors.Is(err, errTimeout) {
		// Not delivered (no connection): retried for a moment.
		if undelivered.IsZero() {
			*undelivered = now
		}
		if now.Sub(*undelivered) < undeliveredFor {
			return nil, false, err
		}
	}
	if errors.Is(err, errTimeout) && ctx.Err() == nil && r.answersProbe(m.RemoteAddr) {
		// The member answers; only this user's actor is slow (its store
		// hangs, say). Wait for it until the caller's deadline, as for a
		// local actor. The request goes again: the first copy's answer
		// had no one left to take it, and every request the actors take
		// sets absolute values, so taking it twice changes nothing more.
		if reply, err = r.request(ctx, pid, env); err != nil {
			return nil, true, err
		}
		now = time.Now()
	}
	switch {
	case err != nil && ctx.Err() == nil:
		// The attempt ran out, or the transport kept failing, before the
		// caller's deadline, and the member does not answer a probe: it is
		// not answering.
		if r.health.failed(m.RemoteAddr, now) {
			r.log.Warn("member not answering; failing its users' requests fast until it answers or is declared dead",
				slog.String("member", m.Name), slog.String("address", m.RemoteAddr), slog.Any("err", err))
		}
		if o, ok := r.members.View().Owner(userID); ok && o.Name != m.Name {
			// Declared dead meanwhile: the user has a new owner to ask.
			return nil, false, err
		}
		return nil, true, ownerDown(userID, m)
	case err != nil:
		return nil, false, err
	}
	r.health.answered(m.RemoteAddr)
	if reply.GetNotOwner() != nil {
		return nil, false, nil
	}
	r.obs.RequestDone(false, time.Since(start))
	return reply, true, nil
}

// RequestAll sends every envelope before waiting for any answer, with one
// reply collector for the lot; answers that need re-routing, and requests
// whose answer did not come in the first round, are retried one by one.
// The envelopes must name distinct users.
func (r *Router) RequestAll(ctx context.Context, envs []*messages.Envelope) ([]*messages.Envelope, []error) {
	targets := make([]*actor.PID, len(envs))
	errs := make([]error, len(envs))
	now := time.Now()
	for i, env := range envs {
		pid, m, local, err := r.target(actors.UserID(env))
		switch {
		case err != nil:
			pid = r.local // answered NotOwner or failed, then retried
		case !local && r.suspected(m, now):
			errs[i] = ownerDown(actors.UserID(env), m)
			pid = nil // not sent
		case !local && !knows(m, env):
			errs[i] = &OlderMember{UserID: actors.UserID(env), Member: m.Name, Proto: m.Proto, Needs: protoNeeded(env)}
			pid = nil
		}
		targets[i] = pid
	}
	// The first round waits at most remoteAttempt, leaving time for
	// retries within the caller's deadline.
	first, cancel := context.WithTimeout(ctx, remoteAttempt)
	replies := r.askAll(first, targets, envs)
	cancel()
	r.noteSilent(ctx, targets, replies)
	for i, reply := range replies {
		if errs[i] != nil || (reply != nil && reply.GetNotOwner() == nil) {
			continue
		}
		replies[i], errs[i] = r.Request(ctx, actors.UserID(envs[i]), envs[i])
	}
	return replies, errs
}

// noteSilent marks as failing the remote members that answered none of
// the requests of a RequestAll round (before the caller's deadline), so
// the retries and later requests for their users fail fast.
func (r *Router) noteSilent(ctx context.Context, targets []*actor.PID, replies []*messages.Envelope) {
	if ctx.Err() != nil {
		return
	}
	var silent map[string]bool // address -> no answer yet
	for i, pid := range targets {
		if pid == nil || pid.Address == r.local.Address {
			continue
		}
		if silent == nil {
			silent = make(map[string]bool)
		}
		if replies[i] != nil {
			silent[pid.Address] = false
		} else if _, seen := silent[pid.Address]; !seen {
			silent[pid.Address] = true
		}
	}
	now := time.Now()
	for addr, none := range silent {
		if none && !r.answersProbe(addr) {
			r.health.failed(addr, now)
		} else {
			r.health.answered(addr)
		}
	}
}
