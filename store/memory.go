package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
)

// errClosed is returned by a Memory store used after Close, so a shutdown
// ordering bug shows up in tests instead of silently writing to a dead map.
var errClosed = errors.New("store: closed")

// Memory is a Store held in a map. It exists for tests and for single-node
// development runs where losing presence on restart is acceptable; it keeps
// the same compare-and-set semantics as the durable stores so code tested
// against it behaves the same in production.
type Memory struct {
	mu     sync.RWMutex
	users  map[int64]*messages.UserState
	closed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store. Records are copied on the way
// in and out, so callers can keep mutating their own state without
// corrupting what is stored.
func NewMemory() *Memory {
	return &Memory{users: make(map[int64]*messages.UserState)}
}

// Load returns a copy of the user's record, or ErrNotFound.
func (m *Memory) Load(ctx context.Context, userID int64) (*messages.UserState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: load user %d: %w", userID, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errClosed
	}
	st, ok := m.users[userID]
	if !ok {
		return nil, ErrNotFound
	}
	return proto.Clone(st).(*messages.UserState), nil
}

// Save stores a copy of st if the stored version equals prevVersion; see
// Store.Save.
func (m *Memory) Save(ctx context.Context, st *messages.UserState, prevVersion uint64) error {
	if err := checkSave(st, prevVersion); err != nil {
		return err
	}
	id := st.GetUserId()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: save user %d: %w", id, err)
	}
	rec := proto.Clone(st).(*messages.UserState)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	cur, exists := m.users[id]
	var curVersion uint64
	if exists {
		curVersion = cur.GetVersion()
	}
	if (exists && curVersion != prevVersion) || (!exists && prevVersion != 0) {
		return conflictError(id, prevVersion, curVersion, exists)
	}
	if exists && cur.GetLastSeen() > rec.GetLastSeen() {
		rec.LastSeen = cur.GetLastSeen()
	}
	m.users[id] = rec
	return nil
}

// TouchLastSeen raises last_seen of the users that exist; see
// Store.TouchLastSeen.
func (m *Memory) TouchLastSeen(ctx context.Context, touches []Touch) error {
	if len(touches) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: touch last_seen of %d users: %w", len(touches), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	for _, t := range touches {
		// Stored records are never handed out, so updating in place is safe.
		if cur, ok := m.users[t.UserID]; ok && t.LastSeen > cur.GetLastSeen() {
			cur.LastSeen = t.LastSeen
		}
	}
	return nil
}

// ScanLive calls fn with a copy of every online or busy record. fn runs
// without the store's lock held.
func (m *Memory) ScanLive(ctx context.Context, fn func(*messages.UserState) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: scan live users: %w", err)
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return errClosed
	}
	var live []*messages.UserState
	for _, st := range m.users {
		if st.GetIsOnline() || st.GetIsBusy() {
			live = append(live, proto.Clone(st).(*messages.UserState))
		}
	}
	m.mu.RUnlock()

	for _, st := range live {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: scan live users: %w", err)
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}

// Close drops the records; later calls fail so use after shutdown is noticed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.users = nil
	return nil
}
