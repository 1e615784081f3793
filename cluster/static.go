package cluster

import (
	"context"
	"time"
)

// Membership is a node's view of the cluster and its part in it. Gossip
// is the clustered one; Static is a standalone node's.
type Membership interface {
	// View returns the current view.
	View() *View
	// LocalName is this member's name in the view.
	LocalName() string
	// OnView registers f to be called with every new view.
	OnView(f func(old, cur *View))
	// Settled is closed once the first attempt to join the seeds has
	// ended and the view shows its outcome (at once without seeds).
	// Before that a joining node sees itself alone, the owner of every
	// user, so nothing that acts on ownership without a request (the
	// start-up re-arm of stored timers) should run yet.
	Settled() <-chan struct{}
	// Drain tells the others this node drains and waits up to wait for
	// the news to spread.
	Drain(ctx context.Context, wait time.Duration) error
	// Leave says goodbye and stops; Kill stops without a goodbye.
	Leave(timeout time.Duration) error
	Kill() error
}

var (
	_ Membership = (*Gossip)(nil)
	_ Membership = (*Static)(nil)
)

// Static is the membership of a standalone node: a one-member view that
// never changes, so the node owns every user and nobody can join. It opens
// no port.
type Static struct {
	view    *View
	settled chan struct{}
}

// NewStatic returns the membership whose only member, and owner, is self.
func NewStatic(self Member) *Static {
	self.seed = memberSeed(self.Name)
	settled := make(chan struct{})
	close(settled)
	return &Static{view: &View{Owners: []Member{self}, All: []Member{self}}, settled: settled}
}

// View returns the one-member view.
func (s *Static) View() *View { return s.view }

// LocalName is the only member's name.
func (s *Static) LocalName() string { return s.view.All[0].Name }

// OnView does nothing: the view never changes.
func (s *Static) OnView(func(old, cur *View)) {}

// Settled is closed from the start: there is nobody to join.
func (s *Static) Settled() <-chan struct{} { return s.settled }

// Drain returns at once: there is nobody to tell.
func (s *Static) Drain(context.Context, time.Duration) error { return nil }

// Leave does nothing.
func (s *Static) Leave(time.Duration) error { return nil }

// Kill does nothing.
func (s *Static) Kill() error { return nil }
