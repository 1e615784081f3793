package wire

import (
	"strconv"

	"github.com/presence-cluster/presence/messages"
)

// AppendCleanupReport appends the answer of POST /admin/cleanup-presence
// (Cleanup) for the merged report c: the seed's counts, dry_run, and the
// users c lists (times as RFC 3339 UTC or null).
func AppendCleanupReport(b []byte, c *messages.CleanupCount, dryRun bool) []byte {
	b = AppendCleanup(b, c.GetUsersMarkedOffline(), c.GetBusyStatusCleared())
	b = b[:len(b)-1] // reopen the object
	b = append(b, `,"dry_run":`...)
	b = strconv.AppendBool(b, dryRun)
	b = append(b, `,"users":[`...)
	for i, u := range c.GetUsers() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"user_id":`...)
		b = strconv.AppendInt(b, u.GetUserId(), 10)
		b = append(b, `,"mark_offline":`...)
		b = strconv.AppendBool(b, u.GetMarkOffline())
		b = append(b, `,"clear_busy":`...)
		b = strconv.AppendBool(b, u.GetClearBusy())
		b = append(b, `,"last_seen":`...)
		b = appendTime(b, u.GetLastSeen())
		b = append(b, `,"busy_until":`...)
		b = appendTime(b, u.GetBusyUntil())
		b = append(b, '}')
	}
	b = append(b, `],"truncated":`...)
	b = strconv.AppendBool(b, c.GetTruncated())
	return append(b, '}')
}

// AppendHeartbeat appends the answer of POST /users/me/heartbeat
// (Heartbeat).
func AppendHeartbeat(b []byte, intervalSeconds, offlineAfterSeconds int64) []byte {
	b = append(b, `{"message":"`+HeartbeatMessage+`","heartbeat_interval_seconds":`...)
	b = strconv.AppendInt(b, intervalSeconds, 10)
	b = append(b, `,"offline_after_seconds":`...)
	b = strconv.AppendInt(b, offlineAfterSeconds, 10)
	return append(b, '}')
}
