package wire

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// TestAppendInspection: the hand-written body decodes into
// UserInspection with every field, times and nulls included.
func TestAppendInspection(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	cases := []struct {
		name string
		in   *messages.Inspection
		busy bool
	}{
		{"online and busy", &messages.Inspection{State: &messages.UserState{UserId: 7, Username: `a "quoted" name`, IsOnline: true, IsBusy: true,
			BusyUntil: now.UnixMicro(), LastSeen: now.UnixMicro(), CreatedAt: now.UnixMicro(), UpdatedAt: now.UnixMicro(), Version: 12},
			Node: "p2", Watchers: 3, Sessions: 5}, true},
		{"never seen", &messages.Inspection{State: &messages.UserState{UserId: 8, Version: 1}, Node: "p1"}, false},
		{"hidden from most", &messages.Inspection{State: &messages.UserState{UserId: 9, Version: 3, Visibility: &messages.Visibility{
			Presence: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, LastSeen: messages.VisibilityMode_VISIBILITY_MODE_NOBODY, Allow: []int64{2, 40}}}, Node: "p1"}, false},
	}
	for _, tc := range cases {
		b := AppendInspection(nil, tc.in)
		var got UserInspection
		dec := json.NewDecoder(bytesReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %s: %v", tc.name, b, err)
		}
		s := tc.in.GetState()
		if got.UserID != s.GetUserId() || got.Username != s.GetUsername() || got.Version != s.GetVersion() ||
			got.Owner != tc.in.GetNode() || got.Watchers != tc.in.GetWatchers() || got.Sessions != tc.in.GetSessions() ||
			got.IsBusy != tc.busy || (got.BusyUntil != nil) != tc.busy || (got.LastSeen != nil) != (s.GetLastSeen() != 0) {
			t.Errorf("%s: decoded %+v from %s", tc.name, got, b)
		}
		vis := VisibilitySetting{Presence: ModeName(s.GetVisibility().GetPresence()), LastSeen: ModeName(s.GetVisibility().GetLastSeen()), Allow: s.GetVisibility().GetAllow()}
		if got.Visibility.Presence != vis.Presence || got.Visibility.LastSeen != vis.LastSeen || !slices.Equal(got.Visibility.Allow, vis.Allow) || got.Visibility.Allow == nil {
			t.Errorf("%s: visibility %+v, want %+v (allow [] when empty)", tc.name, got.Visibility, vis)
		}
		if tc.busy && !got.BusyUntil.Equal(now) {
			t.Errorf("%s: busy_until %v, want %v", tc.name, got.BusyUntil, now)
		}
	}
}

// TestSetCounters copies every counter.
func TestSetCounters(t *testing.T) {
	st := &messages.NodeStats{ActiveActors: 1, SessionsOpen: 2, HttpRequests: 3, HttpClientErrors: 4, HttpServerErrors: 5,
		OfflinePushDelayCount: 6, OfflinePushDelaySumSeconds: 7.5, FlapsSuppressed: 8, Ghosts: 9, CpuSeconds: 10.5,
		Goroutines: 11, HeapBytes: 12, StartedAt: 1_700_000_000_000_000}
	var c NodeCounters
	c.SetCounters(st)
	want := NodeCounters{ActorsActive: 1, SessionsOpen: 2, HTTPRequests: 3, HTTPClientErrors: 4, HTTPServerErrors: 5,
		OfflinePushDelayCount: 6, OfflinePushDelaySumSeconds: 7.5, FlapsSuppressed: 8, Ghosts: 9, CPUSeconds: 10.5,
		Goroutines: 11, HeapBytes: 12}
	started := c.StartedAt
	c.StartedAt = nil
	if c != want || started == nil || started.UnixMicro() != st.StartedAt {
		t.Errorf("SetCounters = %+v (started %v), want %+v", c, started, want)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
