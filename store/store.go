// Package store persists user presence records.
//
// A Store is shared by every user actor of a node (and, with PostgreSQL, by
// every node of a cluster). Writes that change what users see are
// compare-and-set on the record's version, so two activations of one user
// that briefly coexist during a membership change cannot overwrite each
// other: the loser gets ErrVersionConflict, reloads and retries.
package store

import (
	"context"
	"errors"

	"github.com/presence-cluster/presence/messages"
)

var (
	// ErrNotFound reports that no record exists for the user.
	ErrNotFound = errors.New("store: record not found")
	// ErrVersionConflict reports that the stored version is not the one the
	// writer expected: another writer got there first.
	ErrVersionConflict = errors.New("store: version conflict")
	// ErrUnavailable reports that the backing storage cannot be reached; the
	// caller may retry later.
	ErrUnavailable = errors.New("store: unavailable")
)

// Touch raises a user's last_seen without changing anything else.
type Touch struct {
	UserID   int64
	LastSeen int64 // Unix microseconds
}

// Store is the persistence interface behind the user actors.
type Store interface {
	// Load returns the user's record, or ErrNotFound.
	Load(ctx context.Context, userID int64) (*messages.UserState, error)
	// Save writes st if the stored version equals prevVersion (0: no record
	// may exist yet); otherwise it returns ErrVersionConflict and writes
	// nothing. The stored last_seen never goes back: it keeps the larger of
	// the stored and the written value.
	Save(ctx context.Context, st *messages.UserState, prevVersion uint64) error
	// TouchLastSeen raises last_seen for many users in one write. Missing
	// users are skipped, a smaller value than the stored one is ignored, and
	// version and updated_at are left alone.
	TouchLastSeen(ctx context.Context, touches []Touch) error
	// ScanLive calls fn for every record that is online or busy, the ones
	// whose timers must be running somewhere. fn must not call the store.
	ScanLive(ctx context.Context, fn func(*messages.UserState) error) error
	// Close releases the store.
	Close() error
}
