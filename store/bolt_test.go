package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
	"github.com/presence-cluster/presence/store/storetest"
)

func openBolt(t *testing.T, path string, opts store.BoltOptions) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		b, err := store.OpenBolt(filepath.Join(t.TempDir(), "presence.db"), store.BoltOptions{})
		if err != nil {
			t.Fatalf("OpenBolt: %v", err)
		}
		return b
	})
}

func rec(id int64, version uint64, online bool) *messages.UserState {
	return &messages.UserState{
		UserId:    id,
		Username:  "u",
		IsOnline:  online,
		LastSeen:  1_750_000_000_000_000,
		CreatedAt: 1_750_000_000_000_000,
		UpdatedAt: 1_750_000_000_000_000,
		Version:   version,
	}
}

func TestBoltSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "presence.db")

	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	online := rec(1, 3, true)
	offline := rec(2, 1, false)
	for _, st := range []*messages.UserState{online, offline} {
		if err := b.Save(ctx, st, 0); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	if err := b.TouchLastSeen(ctx, []store.Touch{{UserID: 2, LastSeen: offline.LastSeen + 5}}); err != nil {
		t.Fatalf("TouchLastSeen: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b = openBolt(t, path, store.BoltOptions{})
	got, err := b.Load(ctx, 1)
	if err != nil || !proto.Equal(got, online) {
		t.Fatalf("after reopen Load(1) = %v, %v; want %v", got, err, online)
	}
	got, err = b.Load(ctx, 2)
	if err != nil || got.GetLastSeen() != offline.LastSeen+5 {
		t.Fatalf("after reopen Load(2) = %v, %v; want the touched last_seen", got, err)
	}
	var live []int64
	if err := b.ScanLive(ctx, func(st *messages.UserState) error {
		live = append(live, st.GetUserId())
		return nil
	}); err != nil {
		t.Fatalf("ScanLive: %v", err)
	}
	if len(live) != 1 || live[0] != 1 {
		t.Fatalf("after reopen ScanLive = %v, want [1]", live)
	}
	// The CAS chain continues from the persisted version.
	if err := b.Save(ctx, rec(1, 4, false), 3); err != nil {
		t.Fatalf("Save after reopen: %v", err)
	}
}

func TestBoltSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	first := openBolt(t, path, store.BoltOptions{})

	start := time.Now()
	second, err := store.OpenBolt(path, store.BoltOptions{})
	elapsed := time.Since(start)
	if err == nil {
		_ = second.Close()
		t.Fatal("second OpenBolt of a locked file succeeded")
	}
	if elapsed > 3*time.Second {
		t.Errorf("second OpenBolt took %v to fail", elapsed)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second OpenBolt error = %q; want a wrapped timeout saying the data dir is in use", err)
	}

	// Once the first store is closed the file can be opened again.
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	openBolt(t, path, store.BoltOptions{LockTimeout: 100 * time.Millisecond})
}

func TestBoltOpenBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "presence.db")
	_, err := store.OpenBolt(path, store.BoltOptions{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenBolt(%s) = %v; want an error naming the path", path, err)
	}
}

func TestBoltCorruptRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "presence.db")
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	if err := b.Save(ctx, rec(1, 1, true), 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Write garbage under user 5's key behind the store's back.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("users")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 5}, []byte{0xff, 0xff, 0xff})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("writing corrupt record: %v", err)
	}

	b = openBolt(t, path, store.BoltOptions{})
	if _, err := b.Load(ctx, 5); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of corrupt record = %v; want a decode error", err)
	}
	if err := b.Save(ctx, rec(5, 2, true), 1); err == nil {
		t.Error("Save over a corrupt record succeeded")
	}
	if err := b.TouchLastSeen(ctx, []store.Touch{{UserID: 5, LastSeen: 1}}); err == nil {
		t.Error("TouchLastSeen of a corrupt record succeeded")
	}
	if err := b.ScanLive(ctx, func(*messages.UserState) error { return nil }); err == nil {
		t.Error("ScanLive over a corrupt record succeeded")
	}
	if _, err := b.Load(ctx, 1); err != nil {
		t.Errorf("Load of an intact record next to a corrupt one: %v", err)
	}
}

// A conflicting Save that shares a batch with other writes must neither
// fail them nor be written itself.
func TestBoltConflictInBatch(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t, filepath.Join(t.TempDir(), "presence.db"),
		store.BoltOptions{MaxBatchDelay: 50 * time.Millisecond})
	if err := b.Save(ctx, rec(1000, 5, true), 0); err != nil {
		t.Fatalf("Save: %v", err)
	}

	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				errs[i] = b.Save(ctx, rec(1000, 100+uint64(i), false), 4) // stale
			} else {
				errs[i] = b.Save(ctx, rec(int64(i), 1, true), 0)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%4 == 0 {
			if !errors.Is(err, store.ErrVersionConflict) {
				t.Errorf("stale Save %d = %v, want ErrVersionConflict", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Save of user %d: %v", i, err)
		} else if _, err := b.Load(ctx, int64(i)); err != nil {
			t.Errorf("Load of user %d: %v", i, err)
		}
	}
	got, err := b.Load(ctx, 1000)
	if err != nil || !proto.Equal(got, rec(1000, 5, true)) {
		t.Errorf("contested record = %v, %v; want it unchanged", got, err)
	}
}
