package store

import (
	"fmt"

	"github.com/presence-cluster/presence/messages"
)

// checkSave rejects Save calls that would break the compare-and-set
// protocol. A record whose version does not rise would let two writers that
// both read prevVersion succeed one after the other, and the first write
// would be lost without either seeing a conflict.
func checkSave(st *messages.UserState, prevVersion uint64) error {
	if st == nil {
		return fmt.Errorf("store: save: nil record")
	}
	if st.GetVersion() <= prevVersion {
		return fmt.Errorf("store: save user %d: new version %d must be greater than prevVersion %d",
			st.GetUserId(), st.GetVersion(), prevVersion)
	}
	return nil
}

// conflictError says which versions clashed, which is what one wants to see
// in a log when two activations of a user fight.
func conflictError(userID int64, prevVersion, storedVersion uint64, exists bool) error {
	if !exists {
		return fmt.Errorf("store: save user %d: expected version %d, no record stored: %w",
			userID, prevVersion, ErrVersionConflict)
	}
	return fmt.Errorf("store: save user %d: expected version %d, stored version %d: %w",
		userID, prevVersion, storedVersion, ErrVersionConflict)
}
