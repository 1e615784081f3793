package store

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxPending is the default cap on users with unflushed touches. At
// roughly 50 bytes per entry it bounds the writer to tens of megabytes while
// the store is down, instead of letting an outage exhaust the node's memory.
const DefaultMaxPending = 1_000_000

// DefaultFlushInterval is used when NewLastSeenWriter gets a non-positive
// interval, so a missing setting degrades to a sane cadence rather than a
// busy loop.
const DefaultFlushInterval = time.Second

// flushTimeout bounds one background flush so that a hung store cannot stop
// the loop forever; the touches of a timed-out flush are kept and retried.
const flushTimeout = 10 * time.Second

// LastSeenOption adjusts a LastSeenWriter at construction.
type LastSeenOption func(*LastSeenWriter)

// WithMaxPending sets how many users may have unflushed touches before new
// users' touches are dropped (and counted, and logged). Users already pending
// still have their value raised. n <= 0 keeps DefaultMaxPending.
func WithMaxPending(n int) LastSeenOption {
	return func(w *LastSeenWriter) {
		if n > 0 {
			w.maxPending = n
		}
	}
}

// LastSeenWriter turns the stream of last_seen updates from heartbeats and
// activity, which would otherwise cost a store write per message, into one
// TouchLastSeen per interval carrying the latest value per user. What is
// pending is lost if the process dies, which is acceptable for last_seen: at
// most one interval of precision.
type LastSeenWriter struct {
	store      Store
	interval   time.Duration
	logger     *slog.Logger
	maxPending int

	mu       sync.Mutex
	pending  map[int64]int64 // touches not yet handed to the store
	inflight map[int64]int64 // touches of the flush under way; read-only while set
	closed   bool
	dropWarn bool  // a drop has been logged since the last flush
	dropNew  int64 // drops since the last flush, for the flush-time log

	// flushSlot allows one flush at a time: there is a single inflight
	// map, and two flushes racing against a failing store would only add
	// load. A channel rather than a mutex, so that a flush waiting behind
	// one stuck on an unresponsive store gives up at its own deadline.
	flushSlot chan struct{}

	flushes atomic.Uint64
	errors  atomic.Uint64
	dropped atomic.Uint64
	touched atomic.Uint64

	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	cancelRun context.CancelFunc
	runCtx    context.Context
}

// LastSeenStats is a snapshot for metrics.
type LastSeenStats struct {
	// Pending counts users whose last touch is not yet durably stored,
	// including those of a flush under way.
	Pending int
	// Flushes counts successful TouchLastSeen calls.
	Flushes uint64
	// Errors counts failed TouchLastSeen calls; their touches were kept.
	Errors uint64
	// Dropped counts touches refused because the pending map was full or
	// the writer was closed.
	Dropped uint64
	// Touches counts accepted Touch calls, to show how much coalescing saves.
	Touches uint64
}

// NewLastSeenWriter starts a writer that flushes to s every interval. A nil
// logger discards logs. Call Close to stop it and flush what is left.
func NewLastSeenWriter(s Store, interval time.Duration, logger *slog.Logger, opts ...LastSeenOption) *LastSeenWriter {
	if s == nil {
		panic("store: NewLastSeenWriter: nil Store")
	}
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &LastSeenWriter{
		store:      s,
		interval:   interval,
		logger:     logger,
		maxPending: DefaultMaxPending,
		pending:    make(map[int64]int64),
		flushSlot:  make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		runCtx:     ctx,
		cancelRun:  cancel,
	}
	for _, o := range opts {
		o(w)
	}
	go w.run()
	return w
}

// Touch records that the user was seen at lastSeenMicros. It never blocks on
// the store, so actors can call it on every heartbeat; only the largest
// value per user is kept until the next flush.
func (w *LastSeenWriter) Touch(userID, lastSeenMicros int64) {
	w.mu.Lock()
	if cur, ok := w.pending[userID]; ok {
		if lastSeenMicros > cur {
			w.pending[userID] = lastSeenMicros
		}
		w.mu.Unlock()
		w.touched.Add(1)
		return
	}
	// Counting in-flight entries too keeps the map within the cap when a
	// failed flush puts its touches back.
	if !w.closed && len(w.pending)+len(w.inflight) < w.maxPending {
		w.pending[userID] = lastSeenMicros
		w.mu.Unlock()
		w.touched.Add(1)
		return
	}
	closed := w.closed
	first := !w.dropWarn
	w.dropWarn = true
	w.dropNew++
	w.mu.Unlock()

	w.dropped.Add(1)
	if first {
		if closed {
			w.logger.Warn("last_seen writer is closed; dropping touches", "user_id", userID)
		} else {
			w.logger.Warn("last_seen writer is full; dropping touches of new users until a flush succeeds",
				"max_pending", w.maxPending, "user_id", userID)
		}
	}
}

// Pending returns the user's touch that the store may not have yet, so a
// new activation that just loaded the record can merge it instead of
// showing an older last_seen.
func (w *LastSeenWriter) Pending(userID int64) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.pending[userID]
	if f, fok := w.inflight[userID]; fok && (!ok || f > v) {
		v, ok = f, true
	}
	return v, ok
}

// Flush writes the pending touches now in one TouchLastSeen. On error the
// touches are kept, merged with newer ones, for the next flush. One flush
// runs at a time: a call made while another is under way waits for it, at
// most until ctx ends.
func (w *LastSeenWriter) Flush(ctx context.Context) error {
	select {
	case w.flushSlot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: flush last_seen: waiting for the flush under way: %w", ctx.Err())
	}
	defer func() { <-w.flushSlot }()

	w.mu.Lock()
	batch := w.pending
	dropNew := w.dropNew
	w.dropNew = 0
	w.dropWarn = false
	if len(batch) == 0 {
		w.mu.Unlock()
		w.logDrops(dropNew)
		return nil
	}
	w.inflight = batch
	w.pending = make(map[int64]int64, len(batch))
	w.mu.Unlock()
	w.logDrops(dropNew)

	touches := make([]Touch, 0, len(batch))
	for id, ts := range batch {
		touches = append(touches, Touch{UserID: id, LastSeen: ts})
	}
	// Sorted by id: bbolt writes neighbouring pages, and a SQL store locks
	// rows in a fixed order so concurrent flushes from several nodes cannot
	// deadlock.
	slices.SortFunc(touches, func(a, b Touch) int { return cmp.Compare(a.UserID, b.UserID) })

	err := w.store.TouchLastSeen(ctx, touches)

	w.mu.Lock()
	w.inflight = nil
	if err != nil {
		for id, ts := range batch {
			if cur, ok := w.pending[id]; !ok || ts > cur {
				w.pending[id] = ts
			}
		}
	}
	w.mu.Unlock()

	if err != nil {
		w.errors.Add(1)
		return fmt.Errorf("store: flush last_seen of %d users: %w", len(touches), err)
	}
	w.flushes.Add(1)
	return nil
}

func (w *LastSeenWriter) logDrops(n int64) {
	if n > 0 {
		w.logger.Warn("last_seen writer dropped touches since the previous flush", "dropped", n)
	}
}

// Stats returns counters for metrics.
func (w *LastSeenWriter) Stats() LastSeenStats {
	w.mu.Lock()
	n := len(w.pending) + len(w.inflight)
	w.mu.Unlock()
	return LastSeenStats{
		Pending: n,
		Flushes: w.flushes.Load(),
		Errors:  w.errors.Load(),
		Dropped: w.dropped.Load(),
		Touches: w.touched.Load(),
	}
}

// Close stops the background loop and flushes what is pending, so a clean
// shutdown loses no touches. Touches after Close are dropped and counted.
// ctx bounds the wait; call Close before closing the Store.
func (w *LastSeenWriter) Close(ctx context.Context) error {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
		// A flush under way is cancelled; its touches go back to pending and
		// are written by the final flush below with the caller's deadline.
		w.cancelRun()
	})
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("store: close last_seen writer: %w", ctx.Err())
	}
	return w.Flush(ctx)
}

func (w *LastSeenWriter) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(w.runCtx, flushTimeout)
		err := w.Flush(ctx)
		cancel()
		switch {
		case err != nil && w.runCtx.Err() != nil:
			// Cancelled by Close, which flushes again.
		case err != nil:
			// One line per interval during an outage is bounded and tells
			// the operator the backlog is growing.
			w.logger.Warn("last_seen flush failed; touches kept for retry",
				"err", err, "pending", w.Stats().Pending)
			failing = true
		case failing:
			w.logger.Info("last_seen flush recovered")
			failing = false
		}
	}
}
