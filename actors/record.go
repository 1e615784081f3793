package actors

import (
	"time"

	"github.com/presence-cluster/presence/messages"
)

// record is the actor's working copy of a user's state. It is a plain
// value so that taking a snapshot before a change (to roll back when the
// store refuses the write) is a copy, not a proto clone.
type record struct {
	userID       int64
	username     string
	online       bool
	busy         bool
	busyUntil    int64 // Unix µs, 0 = no expiry
	lastSeen     int64
	createdAt    int64
	updatedAt    int64
	version      uint64
	sessionsHeld bool
}

func recordFromProto(s *messages.UserState) record {
	return record{
		userID:       s.GetUserId(),
		username:     s.GetUsername(),
		online:       s.GetIsOnline(),
		busy:         s.GetIsBusy(),
		busyUntil:    s.GetBusyUntil(),
		lastSeen:     s.GetLastSeen(),
		createdAt:    s.GetCreatedAt(),
		updatedAt:    s.GetUpdatedAt(),
		version:      s.GetVersion(),
		sessionsHeld: s.GetSessionsHeld(),
	}
}

func (r *record) proto() *messages.UserState {
	return &messages.UserState{
		UserId:       r.userID,
		Username:     r.username,
		IsOnline:     r.online,
		IsBusy:       r.busy,
		BusyUntil:    r.busyUntil,
		LastSeen:     r.lastSeen,
		CreatedAt:    r.createdAt,
		UpdatedAt:    r.updatedAt,
		Version:      r.version,
		SessionsHeld: r.sessionsHeld,
	}
}

// visible reports whether what watchers see differs between r and o.
func (r *record) visible(o *record) bool {
	return r.online != o.online || r.busy != o.busy || r.busyUntil != o.busyUntil || r.username != o.username
}

func micros(t time.Time) int64 { return t.UnixMicro() }
