package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// Pinger is a store that can tell whether its backend answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Lazy is a store whose backend (PostgreSQL) may not be reachable when the
// node starts: the node serves at once, its calls failing with
// ErrUnavailable (so writes answer 503 and /readyz "not ready"), while a
// goroutine keeps connecting with backoff. A configuration error (bad URL,
// wrong password) is not retried: OpenLazy returns it.
type Lazy struct {
	inner atomic.Pointer[storeBox]
	log   *slog.Logger
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
}

type storeBox struct{ Store }

var errNotConnected = fmt.Errorf("%w: not connected yet", ErrUnavailable)

// OpenLazy tries open once; if the backend is unavailable it returns a
// store that keeps trying in the background.
func OpenLazy(open func(ctx context.Context) (Store, error), logger *slog.Logger) (*Lazy, error) {
	if logger == nil {
		logger = slog.Default()
	}
	l := &Lazy{log: logger, stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s, err := open(ctx)
	cancel()
	switch {
	case err == nil:
		l.inner.Store(&storeBox{s})
		close(l.done)
		return l, nil
	case !errors.Is(err, ErrUnavailable):
		return nil, err
	}
	logger.Warn("store unavailable at start; serving 503 and retrying", slog.Any("err", err))
	go l.connect(open)
	return l, nil
}

func (l *Lazy) connect(open func(ctx context.Context) (Store, error)) {
	defer close(l.done)
	backoff := 250 * time.Millisecond
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(backoff):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := open(ctx)
		cancel()
		if err == nil {
			l.inner.Store(&storeBox{s})
			l.log.Info("store connected")
			return
		}
		l.log.Warn("store still unavailable", slog.Any("err", err))
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (l *Lazy) get() (Store, error) {
	if b := l.inner.Load(); b != nil {
		return b.Store, nil
	}
	return nil, errNotConnected
}

// Load implements Store.
func (l *Lazy) Load(ctx context.Context, id int64) (*messages.UserState, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Load(ctx, id)
}

// Save implements Store.
func (l *Lazy) Save(ctx context.Context, st *messages.UserState, prev uint64) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Save(ctx, st, prev)
}

// TouchLastSeen implements Store.
func (l *Lazy) TouchLastSeen(ctx context.Context, t []Touch) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.TouchLastSeen(ctx, t)
}

// ScanLive implements Store.
func (l *Lazy) ScanLive(ctx context.Context, fn func(*messages.UserState) error) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.ScanLive(ctx, fn)
}

// Ping reports whether the backend answers now.
func (l *Lazy) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close stops connecting and closes the backend if it was connected.
func (l *Lazy) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	if b := l.inner.Load(); b != nil {
		return b.Close()
	}
	return nil
}
