// Package actors holds the per-user virtual actors and the per-node
// activator that spawns them on demand.
//
// A user actor is the only writer of its user's presence record: handlers,
// WebSocket hubs and other nodes only send it messages. It owns the user's
// timers (inactivity, busy expiry, disconnect grace), so nothing sweeps the
// user table periodically. An actor that holds nothing worth keeping in
// memory (offline, not busy, no sessions, no watchers) passivates after
// PassivateAfter and is activated again from the store by the next message.
package actors

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// Defaults for Config. They match the PRESENCE_* defaults in the README.
const (
	DefaultOfflineAfter    = 5 * time.Minute
	DefaultDisconnectGrace = 15 * time.Second
	DefaultPassivateAfter  = 2 * time.Minute
	DefaultStoreTimeout    = 5 * time.Second
)

// Config is what every user actor of a node shares.
type Config struct {
	// Store persists records; visible changes are written before a request
	// is answered.
	Store store.Store
	// LastSeen writes last_seen-only changes behind, coalesced. Optional:
	// without it those changes are written through Store synchronously.
	LastSeen *store.LastSeenWriter
	// OfflineAfter: no heartbeat and no open session for this long makes a
	// user offline.
	OfflineAfter time.Duration
	// DisconnectGrace: the last session closing makes the user offline after
	// this long, unless a session re-attaches first.
	DisconnectGrace time.Duration
	// PassivateAfter: an idle actor stops after this long without messages.
	PassivateAfter time.Duration
	// StoreTimeout bounds each store call made by an actor.
	StoreTimeout time.Duration
	// Clock gives the time and timers; tests may inject a fake one.
	Clock Clock
	// Logger receives actor-level events; nil uses slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about events worth a metric.
	Observer Observer
	// NodeName is this node's name (PRESENCE_NODE_NAME); an Inspection
	// names it as the user's owner.
	NodeName string
	// NodeCounters, when set, fills a NodeStats with the node's counters
	// for a NodeInfo that asks for them (GET /admin/stats). It is called
	// outside the activator's receive loop, so it may take a moment.
	NodeCounters func(*messages.NodeStats)
	// Handoff, when set, is called (from the activator) with a user whose
	// actor stopped because another node owns it now while it still had
	// timers running, with the user's newest last_seen (which the
	// write-behind may not have stored yet); it must make the new owner
	// activate the user and merge that last_seen, without blocking.
	Handoff func(userID, lastSeenMicros int64)
	// Feed, when set, receives every visible change (the change feed for
	// backends) and each activation's stored state.
	Feed ChangeFeed
	// HeartbeatAdvice, when set, is the heartbeat interval this node
	// advises now (see HeartbeatInterval). An activation (a takeover, an
	// owner move) gives a user online from REST heartbeats the offline
	// deadline that advice implies, until their first heartbeat here: their
	// client may follow a longer interval its node advised, which the
	// previous owner knew and the store does not.
	HeartbeatAdvice func() time.Duration
	// Shards is how many activator shards the node's users are split over
	// by user id, each with its own mailbox (default: GOMAXPROCS, so
	// routing uses every core). A user always lands on the same shard.
	Shards int
}

// Observer receives events from user actors; implementations must be cheap
// and safe for concurrent use (they are called from actor goroutines).
type Observer interface {
	// ActorActivated and ActorPassivated track how many actors are alive.
	ActorActivated()
	ActorPassivated()
	// WentOffline reports an offline transition caused by a timer, with the
	// time since the user's last sign of life.
	WentOffline(sinceLastSign time.Duration)
	// FlapSuppressed reports a session re-attaching inside the disconnect
	// grace period, so no offline/online pair was pushed.
	FlapSuppressed()
	// CleanupFound reports what a cleanup or re-arm had to fix: deadlines
	// that had passed without their timer acting (ghosts).
	CleanupFound(offline, busy int64)
}

// DefaultConfig returns a Config with every default filled in, except
// Store, which has none.
func DefaultConfig() Config {
	return Config{
		OfflineAfter:    DefaultOfflineAfter,
		DisconnectGrace: DefaultDisconnectGrace,
		PassivateAfter:  DefaultPassivateAfter,
		StoreTimeout:    DefaultStoreTimeout,
		Clock:           SystemClock{},
		Logger:          slog.Default(),
		Observer:        nopObserver{},
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c *Config) withDefaults() *Config {
	d, out := DefaultConfig(), *c
	setDefault(&out.OfflineAfter, d.OfflineAfter)
	setDefault(&out.DisconnectGrace, d.DisconnectGrace)
	setDefault(&out.PassivateAfter, d.PassivateAfter)
	setDefault(&out.StoreTimeout, d.StoreTimeout)
	if out.Clock == nil {
		out.Clock = d.Clock
	}
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	if out.Observer == nil {
		out.Observer = d.Observer
	}
	setDefault(&out.Shards, runtime.GOMAXPROCS(0))
	return &out
}

// setDefault sets *p to v when *p is zero or negative.
func setDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

type nopObserver struct{}

func (nopObserver) ActorActivated()           {}
func (nopObserver) ActorPassivated()          {}
func (nopObserver) WentOffline(time.Duration) {}
func (nopObserver) FlapSuppressed()           {}
func (nopObserver) CleanupFound(int64, int64) {}

// Clock is the source of time for user actors.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d; stop cancels it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
