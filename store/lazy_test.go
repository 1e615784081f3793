package store_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

func TestLazy(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	errConfig := errors.New("bad password")
	tests := []struct {
		name string
		// fails is how many opens fail with ErrUnavailable before one
		// succeeds; -1: the first fails with a configuration error.
		fails   int
		wantErr error
	}{
		{name: "connected at once", fails: 0},
		{name: "connected after retries", fails: 2},
		{name: "configuration error", fails: -1, wantErr: errConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opens atomic.Int32
			mem := store.NewMemory()
			open := func(context.Context) (store.Store, error) {
				n := int(opens.Add(1))
				switch {
				case tc.fails < 0:
					return nil, errConfig
				case n <= tc.fails:
					return nil, store.ErrUnavailable
				}
				return mem, nil
			}
			l, err := store.OpenLazy(open, quiet)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("OpenLazy: err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer l.Close()
			ctx := context.Background()
			if tc.fails > 0 {
				if _, err := l.Load(ctx, 1); !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("Load before connecting: %v, want ErrUnavailable", err)
				}
				if err := l.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("Ping before connecting: %v, want ErrUnavailable", err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for l.Ping(ctx) != nil {
				if time.Now().After(deadline) {
					t.Fatal("never connected")
				}
				time.Sleep(50 * time.Millisecond)
			}
			st := &messages.UserState{UserId: 1, Username: "u", Version: 1}
			if err := l.Save(ctx, st, 0); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if got, err := l.Load(ctx, 1); err != nil || got.GetUsername() != "u" {
				t.Fatalf("Load = %v, %v", got, err)
			}
			if got := int(opens.Load()); got != tc.fails+1 {
				t.Fatalf("opened %d times, want %d", got, tc.fails+1)
			}
		})
	}
}

// A store that never connects still closes at once.
func TestLazyCloseWhileConnecting(t *testing.T) {
	l, err := store.OpenLazy(func(context.Context) (store.Store, error) { return nil, store.ErrUnavailable }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked")
	}
}
