package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/presence-cluster/presence/api/ws"
)

// Shutdown leaves gracefully: it writes the pending last_seen touches (the
// users' new owners load them from the store), announces that this node
// drains (the others take over its users), keeps answering for DrainWait
// while the news spreads, closes WebSocket sessions with 1012, answers
// what is in flight, stops the actors, flushes pending writes, leaves the
// gossip and closes the store.
func (n *Node) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	// Bounded by DrainWait: a store that does not answer must not hold
	// the drain back (the final flush below retries the touches).
	flushCtx, flushCancel := context.WithTimeout(ctx, n.cfg.DrainWait)
	n.flushLastSeen(flushCtx, "draining")
	flushCancel()
	n.api.Drain()
	if err := n.members.Drain(ctx, n.cfg.DrainWait); err != nil {
		errs = append(errs, err)
	}
	if err := n.api.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := n.host.Stop(); err != nil {
		errs = append(errs, err)
	}
	n.stopFeed(ctx)
	if err := n.lastSeen.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush last_seen: %w", err))
	}
	n.stopOnce.Do(func() { close(n.stopped) })
	// A leave nobody hears (the last members stopping together) times
	// out; the node still stopped cleanly, so this is only a warning.
	if err := n.members.Leave(n.cfg.DrainWait); err != nil {
		n.log.Warn("gossip leave not acknowledged", slog.Any("err", err))
	}
	if n.remote != nil {
		n.remote.Shutdown(true)
	}
	n.system.Shutdown()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	if n.pprof != nil {
		_ = n.pprof.Close()
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// Kill stops the node the way a crash would: no drain, no goodbye to the
// cluster, nothing flushed. The store is left open (it may be shared with
// other in-process nodes). For tests.
func (n *Node) Kill() {
	n.stopOnce.Do(func() { close(n.stopped) })
	_ = n.ln.Close()
	// A dead process runs no timers, writes nothing and pushes nothing:
	// stop the actors (stopping writes nothing) and cut the clients off.
	_ = n.host.Stop()
	if n.feed != nil {
		n.feed.Kill()
	}
	n.api.Hub().CloseAll(ws.CloseDraining, "node killed")
	_ = n.api.App().Shutdown()
	_ = n.members.Kill()
	if n.remote != nil {
		n.remote.Shutdown(false)
	}
	n.system.Shutdown()
}

// abort releases what a failed Start had acquired; the parts it did not
// reach are nil.
func (n *Node) abort() {
	if n.feed != nil {
		n.feed.Kill()
	}
	if n.members != nil {
		_ = n.members.Kill()
	}
	if n.remote != nil {
		n.remote.Shutdown(false)
	}
	if n.lastSeen != nil {
		_ = n.lastSeen.Close(context.Background())
	}
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.ln != nil {
		_ = n.ln.Close()
	}
	if n.pprof != nil {
		_ = n.pprof.Close()
	}
}
