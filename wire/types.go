package wire

import "time"

// Status is the record of GET and PUT /users/me/status. Times are UTC;
// BusyUntil (and LastSeen before the first sign of life) is null when unset.
type Status struct {
	UserID    int64      `json:"user_id"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	// Version rises by one on every visible change and never goes down:
	// compare it to drop stale or reordered copies.
	Version uint64 `json:"version"`
}

// Presence is what others see of a user: GET /users/{id}/presence, each
// element of GET /users/presence and the data of a presence_update frame.
type Presence struct {
	UserID    int64      `json:"user_id"`
	Username  string     `json:"username"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	// Version: see Status.Version.
	Version uint64 `json:"version"`
}

// Cleanup is the answer of POST /admin/cleanup-presence. Users lists the
// users changed (with DryRun: that would be), sorted by user id, at most
// CleanupReportLimit of them; Truncated says more were left out.
type Cleanup struct {
	Message            string        `json:"message"`
	UsersMarkedOffline int64         `json:"users_marked_offline"`
	BusyStatusCleared  int64         `json:"busy_status_cleared"`
	DryRun             bool          `json:"dry_run"`
	Users              []CleanupUser `json:"users"`
	Truncated          bool          `json:"truncated"`
}

// CleanupUser is one user of a cleanup report: what the cleanup did (or
// would do) to it, and its last_seen and busy_until as judged (before the
// change). Times are UTC; null when unset.
type CleanupUser struct {
	UserID      int64      `json:"user_id"`
	MarkOffline bool       `json:"mark_offline"`
	ClearBusy   bool       `json:"clear_busy"`
	LastSeen    *time.Time `json:"last_seen"`
	BusyUntil   *time.Time `json:"busy_until"`
}

// CleanupReportLimit is the most users a cleanup report lists.
const CleanupReportLimit = 1000

// CleanupMessage is Cleanup.Message of a completed cleanup.
const CleanupMessage = "Presence cleanup completed"

// Disconnect is the answer of POST /admin/users/{id}/disconnect:
// SessionsClosed counts the user's sessions closed on every node (0 when
// the user had none: nothing to do is not an error).
type Disconnect struct {
	Message        string `json:"message"`
	SessionsClosed int64  `json:"sessions_closed"`
}

// DisconnectMessage is Disconnect.Message.
const DisconnectMessage = "User disconnected"

// Message is a body that only says something: the answer of
// POST /users/me/heartbeat.
type Message struct {
	Message string `json:"message"`
}

// HeartbeatMessage is the Message of a heartbeat's answer, and
// HeartbeatJSON the message part of that answer as written on the wire.
const (
	HeartbeatMessage = "Heartbeat received"
	HeartbeatJSON    = `{"message":"` + HeartbeatMessage + `"}`
)

// Heartbeat is the answer of POST /users/me/heartbeat: the message, how
// often this client should heartbeat, and how long after this heartbeat
// the user goes offline without another (or a WebSocket).
type Heartbeat struct {
	Message                  string `json:"message"`
	HeartbeatIntervalSeconds int64  `json:"heartbeat_interval_seconds"`
	OfflineAfterSeconds      int64  `json:"offline_after_seconds"`
}

// ErrorBody is the body of every error answer: {"detail": "..."}.
type ErrorBody struct {
	Detail string `json:"detail"`
}
