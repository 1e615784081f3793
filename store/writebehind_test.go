package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-cluster/presence/store"
)

// fakeStore wraps a Memory store, records TouchLastSeen calls and can be
// made to fail or to block them.
type fakeStore struct {
	*store.Memory
	fail  atomic.Bool
	block chan struct{} // if non-nil, TouchLastSeen waits for it to close

	mu    sync.Mutex
	calls [][]store.Touch
}

func newFakeStore(t *testing.T, ids ...int64) *fakeStore {
	t.Helper()
	f := &fakeStore{Memory: store.NewMemory()}
	for _, id := range ids {
		if err := f.Save(context.Background(), rec(id, 1, true), 0); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	return f
}

func (f *fakeStore) TouchLastSeen(ctx context.Context, touches []store.Touch) error {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(touches))
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail.Load() {
		return fmt.Errorf("fake: %w", store.ErrUnavailable)
	}
	return f.Memory.TouchLastSeen(ctx, touches)
}

func (f *fakeStore) touchCalls() [][]store.Touch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeStore) lastSeen(t *testing.T, id int64) int64 {
	t.Helper()
	st, err := f.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load(%d): %v", id, err)
	}
	return st.GetLastSeen()
}

// never is an interval long enough that only explicit flushes run.
const never = time.Hour

var base = rec(0, 1, true).LastSeen

func closeWriter(t *testing.T, w *store.LastSeenWriter) {
	t.Helper()
	t.Cleanup(func() { _ = w.Close(context.Background()) })
}

func TestLastSeenWriterCoalesces(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore(t, 1, 2)
	w := store.NewLastSeenWriter(f, never, nil)
	closeWriter(t, w)

	for i := int64(1); i <= 100; i++ {
		w.Touch(2, base+i)
		w.Touch(1, base+1000-i) // decreasing: the first one is the max
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	calls := f.touchCalls()
	want := []store.Touch{{UserID: 1, LastSeen: base + 999}, {UserID: 2, LastSeen: base + 100}}
	if len(calls) != 1 || !slices.Equal(calls[0], want) {
		t.Fatalf("TouchLastSeen calls = %v, want one call with %v", calls, want)
	}
	if got := f.lastSeen(t, 1); got != base+999 {
		t.Errorf("stored last_seen of user 1 = %d, want %d", got, base+999)
	}
	st := w.Stats()
	if st.Pending != 0 || st.Flushes != 1 || st.Errors != 0 || st.Touches != 200 || st.Dropped != 0 {
		t.Errorf("Stats = %+v", st)
	}

	// Nothing pending: no store call.
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("empty Flush: %v", err)
	}
	if n := len(f.touchCalls()); n != 1 {
		t.Errorf("empty Flush called the store; %d calls", n)
	}
}

func TestLastSeenWriterPending(t *testing.T) {
	f := newFakeStore(t, 1)
	w := store.NewLastSeenWriter(f, never, nil)
	closeWriter(t, w)

	if v, ok := w.Pending(1); ok {
		t.Fatalf("Pending before any touch = %d, true", v)
	}
	w.Touch(1, base+5)
	w.Touch(1, base+3)
	if v, ok := w.Pending(1); !ok || v != base+5 {
		t.Fatalf("Pending = %d, %v; want %d, true", v, ok, base+5)
	}
	if _, ok := w.Pending(2); ok {
		t.Fatal("Pending of an untouched user reported a value")
	}

	// While a flush is under way its values are still pending: the store
	// may not have them yet.
	f.block = make(chan struct{})
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(context.Background()) }()
	waitFor(t, func() bool { return len(f.touchCalls()) == 1 })
	if v, ok := w.Pending(1); !ok || v != base+5 {
		t.Errorf("Pending during flush = %d, %v; want %d, true", v, ok, base+5)
	}
	w.Touch(1, base+4) // lower than in flight: Pending still reports the max
	if v, ok := w.Pending(1); !ok || v != base+5 {
		t.Errorf("Pending during flush after a lower touch = %d, %v; want %d, true", v, ok, base+5)
	}
	close(f.block)
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if v, ok := w.Pending(1); !ok || v != base+4 {
		t.Errorf("Pending after flush = %d, %v; want the newer touch %d", v, ok, base+4)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if v, ok := w.Pending(1); ok {
		t.Errorf("Pending after everything was flushed = %d, true", v)
	}
	if got := f.lastSeen(t, 1); got != base+5 {
		t.Errorf("stored last_seen = %d, want %d", got, base+5)
	}
}

func TestLastSeenWriterFlushesInBackground(t *testing.T) {
	f := newFakeStore(t, 1)
	w := store.NewLastSeenWriter(f, 5*time.Millisecond, nil)
	closeWriter(t, w)
	w.Touch(1, base+42)
	waitFor(t, func() bool { return f.lastSeen(t, 1) == base+42 })
}

func TestLastSeenWriterCloseFlushes(t *testing.T) {
	f := newFakeStore(t, 1, 2)
	var logs bytes.Buffer
	w := store.NewLastSeenWriter(f, never, slog.New(slog.NewTextHandler(&logs, nil)))
	w.Touch(1, base+7)
	w.Touch(2, base+8)
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := f.lastSeen(t, 1); got != base+7 {
		t.Errorf("after Close last_seen of user 1 = %d, want %d", got, base+7)
	}
	if got := f.lastSeen(t, 2); got != base+8 {
		t.Errorf("after Close last_seen of user 2 = %d, want %d", got, base+8)
	}

	// Touches after Close cannot be written any more: counted and logged.
	w.Touch(1, base+9)
	if _, ok := w.Pending(1); ok {
		t.Error("touch after Close is pending with nobody to flush it")
	}
	if d := w.Stats().Dropped; d != 1 {
		t.Errorf("Dropped = %d, want 1", d)
	}
	if !strings.Contains(logs.String(), "closed") {
		t.Errorf("no log about the dropped touch; logs:\n%s", logs.String())
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLastSeenWriterFlushWaitEndsAtDeadline: a flush waiting behind one
// stuck on a store that does not answer gives up at its own deadline (a
// node about to drain must not wait out another flush's timeout), and the
// touches it could not write are written by the next flush.
func TestLastSeenWriterFlushWaitEndsAtDeadline(t *testing.T) {
	f := newFakeStore(t, 1, 2)
	f.block = make(chan struct{})
	w := store.NewLastSeenWriter(f, never, nil)
	closeWriter(t, w)
	var unblockOnce sync.Once
	unblock := func() {
		unblockOnce.Do(func() {
			f.mu.Lock()
			close(f.block)
			f.block = nil
			f.mu.Unlock()
		})
	}
	t.Cleanup(unblock) // before closeWriter's Close, which flushes
	w.Touch(1, base+1)
	stuck := make(chan error, 1)
	go func() { stuck <- w.Flush(context.Background()) }()
	waitFor(t, func() bool { return len(f.touchCalls()) == 1 })

	w.Touch(2, base+2)
	second := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		second <- w.Flush(ctx)
	}()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second flush: %v, want the deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second flush still waits for the stuck one after its deadline")
	}

	unblock()
	if err := <-stuck; err != nil {
		t.Fatalf("stuck flush: %v", err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("next flush: %v", err)
	}
	if got := f.lastSeen(t, 2); got != base+2 {
		t.Errorf("last_seen of user 2 = %d, want %d (the touch the timed-out flush left)", got, base+2)
	}
}

func TestLastSeenWriterKeepsTouchesOnError(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore(t, 1, 2)
	w := store.NewLastSeenWriter(f, never, nil)
	closeWriter(t, w)

	f.fail.Store(true)
	w.Touch(1, base+10)
	err := w.Flush(ctx)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Flush against a failing store = %v, want ErrUnavailable", err)
	}
	if v, ok := w.Pending(1); !ok || v != base+10 {
		t.Fatalf("after a failed flush Pending = %d, %v; want %d, true", v, ok, base+10)
	}
	// New touches merge with the kept ones.
	w.Touch(1, base+5)
	w.Touch(2, base+20)
	if err := w.Flush(ctx); err == nil {
		t.Fatal("second Flush against a failing store succeeded")
	}
	if st := w.Stats(); st.Errors != 2 || st.Flushes != 0 || st.Pending != 2 {
		t.Errorf("Stats after failures = %+v", st)
	}

	f.fail.Store(false)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	if got := f.lastSeen(t, 1); got != base+10 {
		t.Errorf("last_seen of user 1 = %d, want %d", got, base+10)
	}
	if got := f.lastSeen(t, 2); got != base+20 {
		t.Errorf("last_seen of user 2 = %d, want %d", got, base+20)
	}
	calls := f.touchCalls()
	last := calls[len(calls)-1]
	want := []store.Touch{{UserID: 1, LastSeen: base + 10}, {UserID: 2, LastSeen: base + 20}}
	if !slices.Equal(last, want) {
		t.Errorf("retried batch = %v, want %v", last, want)
	}
	if st := w.Stats(); st.Pending != 0 || st.Flushes != 1 {
		t.Errorf("Stats after recovery = %+v", st)
	}
}

// A flush that fails must not put back a value older than a touch that
// arrived while it was under way.
func TestLastSeenWriterFailedFlushKeepsNewerTouch(t *testing.T) {
	f := newFakeStore(t, 1)
	w := store.NewLastSeenWriter(f, never, nil)
	closeWriter(t, w)

	w.Touch(1, base+1)
	f.block = make(chan struct{})
	f.fail.Store(true)
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(context.Background()) }()
	waitFor(t, func() bool { return len(f.touchCalls()) == 1 })
	w.Touch(1, base+9)
	close(f.block)
	if err := <-flushed; err == nil {
		t.Fatal("Flush against a failing store succeeded")
	}
	if v, ok := w.Pending(1); !ok || v != base+9 {
		t.Fatalf("Pending after failed flush = %d, %v; want the newer %d", v, ok, base+9)
	}
}

func TestLastSeenWriterCloseDeliversFailedTouches(t *testing.T) {
	f := newFakeStore(t, 1)
	w := store.NewLastSeenWriter(f, 2*time.Millisecond, nil)
	f.fail.Store(true)
	w.Touch(1, base+33)
	waitFor(t, func() bool { return w.Stats().Errors > 0 })
	f.fail.Store(false)
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := f.lastSeen(t, 1); got != base+33 {
		t.Errorf("last_seen after Close = %d, want %d", got, base+33)
	}
}

func TestLastSeenWriterCap(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore(t, 1, 2, 3)
	var logs bytes.Buffer
	w := store.NewLastSeenWriter(f, never, slog.New(slog.NewTextHandler(&logs, nil)), store.WithMaxPending(2))
	closeWriter(t, w)

	f.fail.Store(true)
	w.Touch(1, base+1)
	w.Touch(2, base+2)
	w.Touch(3, base+3) // over the cap: dropped
	w.Touch(3, base+4) // dropped too, logged once
	w.Touch(1, base+5) // already pending: still raised
	if _, ok := w.Pending(3); ok {
		t.Error("touch over the cap was kept")
	}
	if v, _ := w.Pending(1); v != base+5 {
		t.Errorf("Pending(1) = %d, want %d", v, base+5)
	}
	if st := w.Stats(); st.Dropped != 2 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want 2 dropped, 2 pending", st)
	}
	if n := strings.Count(logs.String(), "full"); n != 1 {
		t.Errorf("%d 'full' warnings, want 1; logs:\n%s", n, logs.String())
	}

	// A failed flush puts its touches back without exceeding the cap.
	if err := w.Flush(ctx); err == nil {
		t.Fatal("Flush against failing store succeeded")
	}
	if !strings.Contains(logs.String(), "dropped=2") {
		t.Errorf("flush did not report the drop count; logs:\n%s", logs.String())
	}
	w.Touch(3, base+6)
	if st := w.Stats(); st.Pending != 2 || st.Dropped != 3 {
		t.Errorf("Stats after failed flush = %+v, want 2 pending, 3 dropped", st)
	}

	f.fail.Store(false)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	w.Touch(3, base+7) // room again
	if v, ok := w.Pending(3); !ok || v != base+7 {
		t.Errorf("after a successful flush Pending(3) = %d, %v; want %d, true", v, ok, base+7)
	}
}

func TestLastSeenWriterConcurrent(t *testing.T) {
	const users, goroutines, touches = 50, 8, 500
	ids := make([]int64, users)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	f := newFakeStore(t, ids...)
	w := store.NewLastSeenWriter(f, time.Millisecond, nil)

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range touches {
				id := ids[(g*touches+i)%users]
				w.Touch(id, base+int64(g*touches+i))
				w.Pending(id)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The largest value written for each user wins.
	want := make(map[int64]int64)
	for g := range goroutines {
		for i := range touches {
			id := ids[(g*touches+i)%users]
			want[id] = max(want[id], base+int64(g*touches+i))
		}
	}
	for id, v := range want {
		if got := f.lastSeen(t, id); got != v {
			t.Errorf("user %d last_seen = %d, want %d", id, got, v)
		}
	}
	if st := w.Stats(); st.Touches != goroutines*touches || st.Pending != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
