package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
)

// DefaultBoltLockTimeout is how long OpenBolt waits for the file lock when
// BoltOptions.LockTimeout is zero: long enough to ride out a previous
// process that is still exiting, short enough that a second node pointed at
// the same data dir fails at startup instead of hanging.
const DefaultBoltLockTimeout = time.Second

// usersBucket holds one record per user, keyed by userKey.
var usersBucket = []byte("users")

// scanCtxEvery is how many records ScanLive reads between context checks,
// so cancelling a large scan takes effect quickly without paying for a
// check per record.
const scanCtxEvery = 1024

// BoltOptions tunes OpenBolt. The zero value is the production setting.
type BoltOptions struct {
	// LockTimeout bounds the wait for another process's lock on the file.
	// Zero or negative means DefaultBoltLockTimeout; bbolt's own default
	// (wait forever) is never used because a hung startup is harder to
	// diagnose than an error.
	LockTimeout time.Duration
	// MaxBatchSize caps how many Save/TouchLastSeen calls share one
	// transaction and fsync. Zero keeps bbolt's default (1000).
	MaxBatchSize int
	// MaxBatchDelay is how long a write waits for others to join its
	// transaction; it trades single-write latency for fewer fsyncs under
	// load. Zero keeps bbolt's default (10ms).
	MaxBatchDelay time.Duration
}

// Bolt is a Store in a single bbolt file, for a single node that must keep
// presence across restarts without running a database server. Writes from
// many user actors are grouped with bbolt's Batch so that they share one
// fsync.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens or creates the store file at path. The file is locked for
// the life of the Bolt; if another process holds it, OpenBolt fails after
// opts.LockTimeout rather than letting two nodes corrupt each other's view.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultBoltLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// Every commit would otherwise rewrite the freelist, which grows with
		// the file; last_seen touches rewrite many pages, so like etcd we
		// rebuild the freelist at open instead.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: file still locked after %v, data dir is in use by another process? %w",
				path, timeout, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.MaxBatchSize > 0 {
		db.MaxBatchSize = opts.MaxBatchSize
	}
	if opts.MaxBatchDelay > 0 {
		db.MaxBatchDelay = opts.MaxBatchDelay
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(usersBucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: create bucket %q: %w", path, usersBucket, err)
	}
	return &Bolt{db: db}, nil
}

// userKey encodes the id big-endian so that keys sort by id, which keeps the
// sorted batches of the last_seen writer on neighbouring pages.
func userKey(userID int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(userID))
	return k
}

// decodeUser unmarshals a stored value. The result never aliases v, which
// is only valid inside its transaction.
func decodeUser(userID int64, v []byte) (*messages.UserState, error) {
	st := new(messages.UserState)
	if err := proto.Unmarshal(v, st); err != nil {
		return nil, fmt.Errorf("decode record of user %d: %w", userID, err)
	}
	if st.GetUserId() != userID {
		return nil, fmt.Errorf("decode record of user %d: record holds user %d", userID, st.GetUserId())
	}
	return st, nil
}

// Load returns the user's record, or ErrNotFound.
func (b *Bolt) Load(ctx context.Context, userID int64) (*messages.UserState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: load user %d: %w", userID, err)
	}
	var st *messages.UserState
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(usersBucket).Get(userKey(userID))
		if v == nil {
			return ErrNotFound
		}
		var err error
		st, err = decodeUser(userID, v)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: load user %d: %w", userID, err)
	}
	return st, nil
}

// Save writes st if the stored version equals prevVersion; see Store.Save.
// The compare and the write happen in the same transaction, which bbolt
// shares with other concurrent writes.
func (b *Bolt) Save(ctx context.Context, st *messages.UserState, prevVersion uint64) error {
	if err := checkSave(st, prevVersion); err != nil {
		return err
	}
	id := st.GetUserId()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: save user %d: %w", id, err)
	}
	// Marshal outside the transaction so the shared writer lock is held as
	// briefly as possible, and so a later change to st by the caller cannot
	// reach the stored bytes.
	val, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: save user %d: encode: %w", id, err)
	}
	key := userKey(id)

	// Batch may run fn more than once (when another call in the batch fails
	// the batch is rolled back and re-run), so fn sets conflict on every
	// path and never changes what it captured. A conflict is reported
	// through the variable rather than as fn's error: an error would roll
	// back every other write in the batch and re-run this call alone in a
	// transaction of its own, costing an extra fsync for a write that
	// changes nothing.
	var conflict error
	err = b.db.Batch(func(tx *bolt.Tx) error {
		conflict = nil
		bkt := tx.Bucket(usersBucket)
		put := val
		v := bkt.Get(key)
		if v == nil {
			if prevVersion != 0 {
				conflict = conflictError(id, prevVersion, 0, false)
				return nil
			}
		} else {
			cur, err := decodeUser(id, v)
			if err != nil {
				return err
			}
			if cur.GetVersion() != prevVersion {
				conflict = conflictError(id, prevVersion, cur.GetVersion(), true)
				return nil
			}
			if cur.GetLastSeen() > st.GetLastSeen() {
				rec := proto.Clone(st).(*messages.UserState)
				rec.LastSeen = cur.GetLastSeen()
				if put, err = proto.Marshal(rec); err != nil {
					return fmt.Errorf("encode: %w", err)
				}
			}
		}
		return bkt.Put(key, put)
	})
	if err != nil {
		return fmt.Errorf("store: save user %d: %w", id, err)
	}
	return conflict
}

// TouchLastSeen raises last_seen for the users that exist, all in one
// transaction; see Store.TouchLastSeen.
func (b *Bolt) TouchLastSeen(ctx context.Context, touches []Touch) error {
	if len(touches) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: touch last_seen of %d users: %w", len(touches), err)
	}
	// One allocation for all keys; bbolt keeps the key slices until commit.
	keys := make([]byte, 8*len(touches))
	for i, t := range touches {
		binary.BigEndian.PutUint64(keys[8*i:], uint64(t.UserID))
	}
	// Idempotent for Batch re-runs: it only reads touches and keys, and
	// reads the records from the transaction, which is rolled back between
	// runs.
	err := b.db.Batch(func(tx *bolt.Tx) error {
		bkt := tx.Bucket(usersBucket)
		for i, t := range touches {
			key := keys[8*i : 8*i+8 : 8*i+8]
			v := bkt.Get(key)
			if v == nil {
				continue
			}
			cur, err := decodeUser(t.UserID, v)
			if err != nil {
				return err
			}
			if t.LastSeen <= cur.GetLastSeen() {
				continue
			}
			cur.LastSeen = t.LastSeen
			val, err := proto.Marshal(cur)
			if err != nil {
				return fmt.Errorf("encode record of user %d: %w", t.UserID, err)
			}
			if err := bkt.Put(key, val); err != nil {
				return fmt.Errorf("put user %d: %w", t.UserID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: touch last_seen of %d users: %w", len(touches), err)
	}
	return nil
}

// ScanLive calls fn with a freshly decoded copy of every online or busy
// record, in user id order. It runs inside a read transaction, which is why
// fn must not call the store: a write that has to grow the file would wait
// for this transaction to end.
func (b *Bolt) ScanLive(ctx context.Context, fn func(*messages.UserState) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: scan live users: %w", err)
	}
	var fnErr error
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(usersBucket).Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if n++; n%scanCtxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != 8 {
				return fmt.Errorf("unexpected key %x", k)
			}
			st, err := decodeUser(int64(binary.BigEndian.Uint64(k)), v)
			if err != nil {
				return err
			}
			if !st.GetIsOnline() && !st.GetIsBusy() {
				continue
			}
			if err := fn(st); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		// The caller's own error, as it returned it.
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: scan live users: %w", err)
	}
	return nil
}

// Close waits for open transactions and releases the file lock so another
// process can open the file. Calling it again is harmless.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", b.db.Path(), err)
	}
	return nil
}
