package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/messages"
)

// request sends env to the activator at pid (this node's or another's) and
// waits for the answer until ctx's deadline (DefaultRequestTimeout without
// one).
func (r *Router) request(ctx context.Context, pid *actor.PID, env *messages.Envelope) (*messages.Envelope, error) {
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, errTimeout
		}
	}
	return await(r.ask(pid, env, timeout), pid)
}

// ask sends env to the activator at pid without waiting; await collects
// the answer. Sending many before awaiting any keeps them all in flight.
func (r *Router) ask(pid *actor.PID, env *messages.Envelope, timeout time.Duration) *actor.Future {
	return r.system.Root.RequestFuture(pid, env, timeout)
}

// await waits for the answer of a request sent with ask.
func await(f *actor.Future, pid *actor.PID) (*messages.Envelope, error) {
	res, err := f.Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, errTimeout
		}
		return nil, fmt.Errorf("request to %s: %w", pid, err)
	}
	reply, ok := res.(*messages.Envelope)
	if !ok {
		return nil, fmt.Errorf("request to %s: unexpected reply %T", pid, res)
	}
	return reply, nil
}

// replyOf returns the user an answer is about, for correlating the answers
// of askAll; 0 for a kind that names none.
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
// per askAll, instead of a future (a registration and a timer) per
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

// askAll sends envs[i] to targets[i] (nil: not sent) and waits, until ctx ends, for the
// answers, correlated by user id (the ids must be distinct). Requests
// without an answer by then are nil in the result; the caller retries them
// one by one.
func (r *Router) askAll(ctx context.Context, targets []*actor.PID, envs []*messages.Envelope) []*messages.Envelope {
	c := &replyCollector{ch: make(chan *messages.Envelope, len(envs))}
	reg := r.system.ProcessRegistry
	pid, ok := reg.Add(c, "batch$"+reg.NextId())
	if !ok {
		return make([]*messages.Envelope, len(envs))
	}
	defer reg.Remove(pid)
	index := make(map[int64]int, len(envs))
	pending := 0
	for i, env := range envs {
		if targets[i] == nil {
			continue // not sent (its owner is suspected down)
		}
		index[actors.UserID(env)] = i
		r.system.Root.RequestWithCustomSender(targets[i], env, pid)
		pending++
	}
	out := make([]*messages.Envelope, len(envs))
	for pending > 0 {
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
