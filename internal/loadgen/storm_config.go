package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// StormConfig is the reconnect-storm scenario (presencectl bench
// --scenario storm): a deploy drains one node, every session it holds is
// closed with 1012 at once and reconnects to the other nodes as the
// clients do, while status changes keep flowing. Field comments name the
// flag each is set from.
type StormConfig struct {
	// DrainURL is the node that drains (--drain-url); one of Config.URLs.
	DrainURL string
	// DrainPID is that node's process (--drain-pid): the generator sends
	// it SIGTERM, which is how presenced drains.
	DrainPID int
	// Drain, when set, drains the node instead of DrainPID (tests).
	Drain func(ctx context.Context) error
	// DrainAfter is when, into the steady phase, the drain starts
	// (--drain-after).
	DrainAfter time.Duration
	// DrainSessions is how many sessions connect to the draining node
	// first (--drain-sessions; -1: all); the others go round-robin to the
	// other nodes.
	DrainSessions int
	// DisconnectGrace is the nodes' PRESENCE_DISCONNECT_GRACE
	// (--disconnect-grace): a user whose sessions came back within it
	// must never be seen offline.
	DisconnectGrace time.Duration
	// Target is the time from the drain by which every session must be
	// back and subscribed (--storm-target).
	Target time.Duration
}

// DefaultStormConfig is --scenario storm's defaults.
func DefaultStormConfig() StormConfig {
	return StormConfig{DrainAfter: 3 * time.Second, DrainSessions: -1, DisconnectGrace: 15 * time.Second, Target: 10 * time.Second}
}

// drainIndex is the position of the draining node in urls, -1 if absent.
func (s *StormConfig) drainIndex(urls []string) int { return slices.Index(urls, s.DrainURL) }

// validateStorm reports the first storm setting out of range.
func (c Config) validateStorm() error {
	s := c.Storm
	if s == nil {
		return nil
	}
	sessions := c.Topology.resolved().Sessions
	switch {
	case len(c.URLs) < 2:
		return errors.New("--scenario storm needs at least two --url: the drained sessions reconnect to the others")
	case c.NoReconnect:
		return errors.New("--no-reconnect contradicts --scenario storm: the storm is the reconnects")
	case s.drainIndex(c.URLs) < 0:
		return fmt.Errorf("--drain-url %q must be one of --url", s.DrainURL)
	case s.Drain == nil && s.DrainPID <= 0:
		return errors.New("--drain-pid is required with --scenario storm: the process of --drain-url, sent SIGTERM")
	case s.DrainAfter < 0 || s.DrainAfter >= c.Duration:
		return errors.New("--drain-after must be in [0, --duration)")
	case s.DrainSessions < -1 || s.DrainSessions > sessions:
		return errors.New("--drain-sessions must be -1 (all) or 0..sessions")
	case s.DisconnectGrace <= 0 || s.DisconnectGrace > 10*time.Minute:
		return errors.New("--disconnect-grace must be in (0, 10m]")
	case s.Target <= 0 || s.Target > MaxDuration:
		return fmt.Errorf("--storm-target must be in (0, %s]", MaxDuration)
	}
	return nil
}

// drain starts the node's drain: the test's hook, or SIGTERM to its
// process.
func (s *StormConfig) drain(ctx context.Context) error {
	if s.Drain != nil {
		return s.Drain(ctx)
	}
	if err := syscall.Kill(s.DrainPID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM to --drain-pid %d: %w", s.DrainPID, err)
	}
	return nil
}

// restURLs are the nodes the REST traffic goes to: in a storm, only the
// nodes that stay, so requests measure the storm and not a dead node.
func (c Config) restURLs() []string {
	if c.Storm == nil {
		return c.URLs
	}
	i := c.Storm.drainIndex(c.URLs)
	return slices.Delete(slices.Clone(c.URLs), i, i+1)
}

// initialNode is the node session s connects to first: round-robin, or in
// a storm the draining node for the first DrainSessions sessions and the
// others round-robin over the rest.
func initialNode(s, nodes, drainIndex, drainSessions int) int {
	if drainIndex < 0 {
		return s % nodes
	}
	if drainSessions < 0 || s < drainSessions {
		return drainIndex
	}
	k := s % (nodes - 1)
	if k >= drainIndex {
		k++
	}
	return k
}
