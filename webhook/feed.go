package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/webhook/signing"
)

// Deps are what a Feed needs besides its Config.
type Deps struct {
	// Ledger, when set, makes the feed crash-safe (see Ledger).
	Ledger Ledger
	// Registerer receives the feed's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives overflow and failure reports; nil uses slog.Default().
	Logger *slog.Logger
	// Client sends the requests; nil uses one with Config.Timeout.
	Client *http.Client
}

// Feed delivers the changes of the users this node owns to the receivers.
// Changed and Activated are called from user actors: they only enqueue.
type Feed struct {
	cfg     Config
	signer  *signing.Signer
	ledger  Ledger
	log     *slog.Logger
	client  *http.Client
	senders []*sender
	m       *metrics

	stop    chan struct{} // closed: stop at once
	drain   chan struct{} // closed: send what is queued, then stop
	wg      sync.WaitGroup
	started bool
	once    sync.Once
}

// New builds a feed for cfg (which must have URLs and pass Validate); Start
// runs it.
func New(cfg Config, deps Deps) (*Feed, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	signer, err := signing.NewSigner(cfg.Secret)
	if err != nil {
		return nil, err
	}
	f := &Feed{cfg: cfg, signer: signer, ledger: deps.Ledger, log: deps.Logger, client: deps.Client,
		stop: make(chan struct{}), drain: make(chan struct{})}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.client == nil {
		f.client = &http.Client{Timeout: cfg.Timeout}
	}
	for _, u := range cfg.URLs {
		f.senders = append(f.senders, newSender(f, u))
	}
	if f.m, err = newMetrics(deps.Registerer, f); err != nil {
		return nil, fmt.Errorf("webhook metrics: %w", err)
	}
	return f, nil
}

// Start runs one sender per receiver.
func (f *Feed) Start() {
	f.started = true
	for _, s := range f.senders {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			s.run()
		}()
	}
}

// Changed enqueues a visible change of a user this node owns. st must not
// be modified afterwards (the actors pass their immutable snapshot).
func (f *Feed) Changed(st *messages.UserState) { f.enqueue(item{st: st}) }

// Activated tells the feed that a user was activated here with stored
// state st: without a ledger it does nothing; with one, st is delivered
// unless the ledger shows it delivered already (the previous owner may have
// crashed between answering a write and delivering it).
func (f *Feed) Activated(st *messages.UserState) {
	if f.ledger == nil || st == nil {
		return
	}
	f.enqueue(item{st: st, check: true})
}

func (f *Feed) enqueue(it item) {
	for _, s := range f.senders {
		overflowed, first := s.q.push(it)
		if overflowed {
			f.m.dropped.WithLabelValues(s.name).Inc()
		}
		if first {
			f.log.Warn("webhook queue full: keeping only the latest state per user until the receiver catches up",
				slog.String("receiver", s.name), slog.Int("queue", f.cfg.Queue))
		}
	}
}

// Depth is the number of events not yet accepted (queued or in the batch
// being delivered), summed over receivers.
func (f *Feed) Depth() int {
	n := 0
	for _, s := range f.senders {
		n += s.q.depth() + int(s.inflight.Load())
	}
	return n
}

// Close delivers what is queued for up to Config.Drain (or until ctx ends),
// then stops the senders, and returns how many events were left
// undelivered (logged). Those are lost with this node; the ledger, when
// there is one, lets the next owner deliver them.
func (f *Feed) Close(ctx context.Context) int {
	f.once.Do(func() {
		close(f.drain)
		if !f.started {
			close(f.stop)
			return
		}
		done := make(chan struct{})
		go func() { f.wg.Wait(); close(done) }()
		t := time.NewTimer(f.cfg.Drain)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		close(f.stop)
		<-done
	})
	n := f.Depth()
	if n > 0 {
		f.log.Warn("webhook events undelivered at stop", slog.Int("events", n))
	}
	return n
}

// Kill stops the senders at once, as a crash would. For tests.
func (f *Feed) Kill() {
	f.once.Do(func() {
		close(f.drain)
		close(f.stop)
		f.wg.Wait()
	})
}
