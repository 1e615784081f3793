package routing

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// BatchTimeout bounds the wait for one node's answer to a batch presence
// read. A node older than GetPresenceBatch ignores it, so this is what such
// a node costs before its users are read the per-user way (and the router
// stops sending it batches for a while).
const BatchTimeout = time.Second

// noBatchFor is how long a member that did not answer a batch read is read
// the per-user way only. Members of an older version are not sent batches
// at all (their advertised protocol version says so), so such a member is
// overloaded or failing: the per-user path, with its retries and
// re-routing, is right for it, and asking again later finds it recovered.
const noBatchFor = 15 * time.Second

// ReadPresence returns the presence of each user of ids, in the same
// order: nil for a user without a record. It sends one GetPresenceBatch
// per owner node (the activator answers from its actors' snapshots) and
// waits for all of them; the users they could not answer (not active, not
// owned in the owner's view, a node that did not answer) are then read
// the per-user way (RequestAll), which activates and re-routes. An id may
// appear more than once. The error is that of the first user, in order,
// whose read failed: a *Refusal for an actor's refusal, one wrapping
// ErrUnavailable when nothing answered in time.
func (r *Router) ReadPresence(ctx context.Context, ids []int64) ([]*messages.UserState, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	start := time.Now()
	dl, _ := ctx.Deadline()
	timeout := dl.Sub(start)
	if timeout <= 0 {
		return nil, errTimeout
	}
	timeout = min(timeout, r.batchTimeout)
	rd := presenceRead{r: r, now: start}
	states, err := rd.run(ctx, ids, timeout)
	if err == nil {
		r.obs.RequestDone(!rd.remote, time.Since(start))
	}
	return states, err
}

// presenceRead is one ReadPresence call.
type presenceRead struct {
	r      *Router
	now    time.Time
	remote bool // some user lives on another node
	// last and lastOK remember the latest remote target and whether it
	// takes batches: a batch has a few owners for many users.
	last   *actor.PID
	lastOK bool
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

func (p *presenceRead) run(ctx context.Context, ids []int64, timeout time.Duration) ([]*messages.UserState, error) {
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
		k := -1
		if pid := p.batchTarget(id); pid != nil {
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
	p.sendBatches(groups, timeout)

	out := make([]*messages.UserState, len(ids))
	var rest []int // positions read the per-user way
	for i, k := range groupOf {
		if k < 0 || !groups[k].settle(&out[i]) {
			rest = append(rest, i)
		}
	}
	p.r.obs.PresenceRead(len(ids)-len(rest), len(rest))
	if len(rest) == 0 {
		return out, nil
	}
	return out, p.readEach(ctx, ids, out, rest)
}

// sendBatches sends every group's GetPresenceBatch, then waits for the
// answers.
func (p *presenceRead) sendBatches(groups []batchGroup, timeout time.Duration) {
	for k := range groups {
		g := &groups[k]
		env := &messages.Envelope{Body: &messages.Envelope_GetPresenceBatch{GetPresenceBatch: &messages.GetPresenceBatch{UserIds: g.ids}}}
		g.f = p.r.ask(g.pid, env, timeout)
	}
	for k := range groups {
		g := &groups[k]
		reply, err := await(g.f, g.pid)
		if err != nil {
			p.r.batchUnanswered(g.pid)
			continue
		}
		p.r.health.answered(g.pid.Address)
		// A reply of another kind (a failure, say) settles nothing.
		b := reply.GetPresenceBatchReply()
		g.answered, g.outcomes, g.states = b != nil, b.GetOutcomes(), b.GetStates()
	}
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

// batchTarget returns the activator that a batch read of userID goes to,
// or nil when the user must be read the per-user way (no owner known, or
// an owner that does not take batch reads).
func (p *presenceRead) batchTarget(userID int64) *actor.PID {
	pid, m, local, err := p.r.target(userID)
	if err != nil {
		return nil // the per-user path waits for an owner
	}
	if local {
		return pid
	}
	p.remote = true
	if p.r.suspected(m, p.now) {
		return nil // the per-user path refuses it at once
	}
	if pid != p.last {
		// A member of an older version ignores the kind: its users are
		// read one by one without asking it first.
		p.last, p.lastOK = pid, m.Proto >= cluster.ProtoBatchReads && p.r.takesBatches(pid.Address, p.now)
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

// batchUnanswered notes that the activator at pid did not answer a batch
// read in time.
func (r *Router) batchUnanswered(pid *actor.PID) {
	if pid.Address == r.local.Address {
		return // this node answers batches; it was only slow
	}
	r.log.Info("member did not answer a batch presence read; reading its users one by one for a while",
		slog.String("address", pid.Address), slog.Duration("for", noBatchFor))
	// It may be down: its users' per-user reads fail fast meanwhile.
	r.health.failed(pid.Address, time.Now())
	r.mu.Lock()
	if r.noBatch == nil {
		r.noBatch = make(map[string]time.Time)
	}
	r.noBatch[pid.Address] = time.Now().Add(noBatchFor)
	r.mu.Unlock()
}

// readEach reads the users at positions rest of ids the per-user way and
// fills out; it returns the error of the first failed position in order.
func (p *presenceRead) readEach(ctx context.Context, ids []int64, out []*messages.UserState, rest []int) error {
	// RequestAll wants distinct users: a duplicate is read once.
	envs := make([]*messages.Envelope, 0, len(rest))
	first := make(map[int64]int, len(rest)) // user id -> index in envs
	for _, i := range rest {
		if _, ok := first[ids[i]]; !ok {
			first[ids[i]] = len(envs)
			envs = append(envs, &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: ids[i]}}})
		}
	}
	var replies []*messages.Envelope
	var errs []error
	if len(envs) == 1 {
		// One user (a single read that missed) takes the single request
		// path: no reply collector to set up.
		reply, err := p.r.Request(ctx, ids[rest[0]], envs[0])
		replies, errs = []*messages.Envelope{reply}, []error{err}
	} else {
		replies, errs = p.r.RequestAll(ctx, envs)
	}
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
			return refusal(ids[i], b.Failure)
		default:
			return fmt.Errorf("read presence of user %d: unexpected reply %T", ids[i], b)
		}
	}
	return nil
}
