package wire

import (
	"reflect"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

func TestAppendCleanupReport(t *testing.T) {
	seen := time.Date(2026, 12, 6, 10, 19, 34, 439455000, time.UTC)
	until := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name   string
		c      *messages.CleanupCount
		dryRun bool
		want   string
		decode Cleanup
	}{
		{"nothing", &messages.CleanupCount{}, false,
			`{"message":"Presence cleanup completed","users_marked_offline":0,"busy_status_cleared":0,"dry_run":false,"users":[],"truncated":false}`,
			Cleanup{Message: CleanupMessage, Users: []CleanupUser{}}},
		{"a dry run with users", &messages.CleanupCount{UsersMarkedOffline: 2, BusyStatusCleared: 1, Truncated: true, Users: []*messages.CleanupUser{
			{UserId: 1, MarkOffline: true, LastSeen: seen.UnixMicro()},
			{UserId: 2, MarkOffline: true, ClearBusy: true, LastSeen: seen.UnixMicro(), BusyUntil: until.UnixMicro()},
		}}, true,
			`{"message":"Presence cleanup completed","users_marked_offline":2,"busy_status_cleared":1,"dry_run":true,"users":[` +
				`{"user_id":1,"mark_offline":true,"clear_busy":false,"last_seen":"2026-12-06T10:19:34.439455Z","busy_until":null},` +
				`{"user_id":2,"mark_offline":true,"clear_busy":true,"last_seen":"2026-12-06T10:19:34.439455Z","busy_until":"2026-12-06T10:30:00Z"}],"truncated":true}`,
			Cleanup{Message: CleanupMessage, UsersMarkedOffline: 2, BusyStatusCleared: 1, DryRun: true, Truncated: true, Users: []CleanupUser{
				{UserID: 1, MarkOffline: true, LastSeen: &seen},
				{UserID: 2, MarkOffline: true, ClearBusy: true, LastSeen: &seen, BusyUntil: &until},
			}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendCleanupReport(nil, tc.c, tc.dryRun)
			if string(b) != tc.want {
				t.Fatalf("AppendCleanupReport =\n %s\nwant\n %s", b, tc.want)
			}
			if got := decode[Cleanup](t, b); !reflect.DeepEqual(got, tc.decode) {
				t.Fatalf("decodes to %+v, want %+v", got, tc.decode)
			}
		})
	}
}

func TestAppendHeartbeat(t *testing.T) {
	b := AppendHeartbeat(nil, 100, 300)
	want := `{"message":"Heartbeat received","heartbeat_interval_seconds":100,"offline_after_seconds":300}`
	if string(b) != want {
		t.Fatalf("AppendHeartbeat = %s, want %s", b, want)
	}
	if got := decode[Heartbeat](t, b); got != (Heartbeat{Message: HeartbeatMessage, HeartbeatIntervalSeconds: 100, OfflineAfterSeconds: 300}) {
		t.Fatalf("decodes to %+v", got)
	}
}
