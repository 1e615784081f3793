package wire

import (
	"reflect"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

const (
	everyone  = messages.VisibilityMode_VISIBILITY_MODE_EVERYONE
	nobody    = messages.VisibilityMode_VISIBILITY_MODE_NOBODY
	allowlist = messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST
	newerMode = messages.VisibilityMode(7) // a mode a newer node may send
)

func withVisibility(presence, lastSeen messages.VisibilityMode, allow ...int64) *messages.UserState {
	return &messages.UserState{
		UserId: 10, Username: "owner", IsOnline: true, IsBusy: true, BusyUntil: usOf("2030-01-15T11:00:00Z"),
		LastSeen: usOf("2024-01-15T10:30:00Z"), Version: 77,
		Visibility: &messages.Visibility{Presence: presence, LastSeen: lastSeen, Allow: allow},
	}
}

func TestViewOf(t *testing.T) {
	plain := withVisibility(everyone, everyone)
	plain.Visibility = nil
	tests := []struct {
		name   string
		st     *messages.UserState
		viewer int64
		admin  bool
		want   View
	}{
		{"no setting", plain, 5, false, ViewTrue},
		{"everyone/everyone", withVisibility(everyone, everyone), 5, false, ViewTrue},
		{"presence nobody", withVisibility(nobody, everyone), 5, false, ViewPresenceHidden},
		{"presence nobody hides last_seen too", withVisibility(nobody, nobody), 5, false, ViewPresenceHidden},
		{"presence nobody, the user themself", withVisibility(nobody, nobody), 10, false, ViewTrue},
		{"presence nobody, an admin", withVisibility(nobody, nobody), 5, true, ViewTrue},
		{"last_seen nobody", withVisibility(everyone, nobody), 5, false, ViewLastSeenHidden},
		{"last_seen nobody, the user themself", withVisibility(everyone, nobody), 10, false, ViewTrue},
		{"last_seen nobody, an admin", withVisibility(everyone, nobody), 5, true, ViewTrue},
		{"presence allowlist, listed", withVisibility(allowlist, everyone, 3, 5, 9), 5, false, ViewTrue},
		{"presence allowlist, not listed", withVisibility(allowlist, everyone, 3, 5, 9), 4, false, ViewPresenceHidden},
		{"presence allowlist, empty list", withVisibility(allowlist, everyone), 4, false, ViewPresenceHidden},
		{"presence allowlist, first of list", withVisibility(allowlist, everyone, 3, 5, 9), 3, false, ViewTrue},
		{"presence allowlist, last of list", withVisibility(allowlist, everyone, 3, 5, 9), 9, false, ViewTrue},
		{"last_seen allowlist, listed", withVisibility(everyone, allowlist, 5), 5, false, ViewTrue},
		{"last_seen allowlist, not listed", withVisibility(everyone, allowlist, 5), 6, false, ViewLastSeenHidden},
		{"both allowlist, listed", withVisibility(allowlist, allowlist, 5), 5, false, ViewTrue},
		{"both allowlist, not listed", withVisibility(allowlist, allowlist, 5), 6, false, ViewPresenceHidden},
		{"presence allowlist, last_seen nobody, listed", withVisibility(allowlist, nobody, 5), 5, false, ViewLastSeenHidden},
		{"unknown mode hides", withVisibility(newerMode, everyone), 5, false, ViewPresenceHidden},
		{"unknown last_seen mode hides", withVisibility(everyone, newerMode), 5, false, ViewLastSeenHidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ViewOf(tc.st, tc.viewer, tc.admin); got != tc.want {
				t.Fatalf("ViewOf(viewer %d, admin %v) = %d, want %d", tc.viewer, tc.admin, got, tc.want)
			}
		})
	}
}

// TestAppendPresenceView: each view decodes to the record as documented:
// the presence-hidden view is exactly an offline user's record, the
// last_seen-hidden view the true one with last_seen null; the version is
// always the true one.
func TestAppendPresenceView(t *testing.T) {
	st := withVisibility(nobody, nobody)
	truth := presenceOf(st)
	offline := Presence{UserID: truth.UserID, Username: truth.Username, Version: truth.Version}
	noLastSeen := truth
	noLastSeen.LastSeen = nil
	for view, want := range map[View]Presence{ViewTrue: truth, ViewLastSeenHidden: noLastSeen, ViewPresenceHidden: offline} {
		got := decode[Presence](t, AppendPresenceView(nil, st, view))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("view %d: got %+v, want %+v", view, got, want)
		}
		frame := decode[Frame](t, AppendUpdateFrameView(nil, st, view, time.Now()))
		if frame.Type != TypePresenceUpdate || frame.Data == nil || !reflect.DeepEqual(*frame.Data, want) {
			t.Errorf("view %d frame: got %+v, want data %+v", view, frame, want)
		}
	}
	// A genuinely offline user encodes byte for byte as the hidden one.
	off := &messages.UserState{UserId: st.GetUserId(), Username: st.GetUsername(), Version: st.GetVersion()}
	if a, b := AppendPresence(nil, off), AppendPresenceView(nil, st, ViewPresenceHidden); string(a) != string(b) {
		t.Errorf("hidden %s differs from offline %s", b, a)
	}
}

func TestSeenAs(t *testing.T) {
	st := withVisibility(nobody, nobody)
	changes := []struct {
		name   string
		mutate func(*messages.UserState)
		// changed[v]: whether a viewer with view v sees a change.
		changed [Views]bool
	}{
		{"online", func(s *messages.UserState) { s.IsOnline = false }, [Views]bool{true, true, false}},
		{"busy", func(s *messages.UserState) { s.IsBusy = false }, [Views]bool{true, true, false}},
		{"busy_until", func(s *messages.UserState) { s.BusyUntil++ }, [Views]bool{true, true, false}},
		{"username", func(s *messages.UserState) { s.Username = "renamed" }, [Views]bool{true, true, true}},
		{"last_seen value", func(s *messages.UserState) { s.LastSeen++ }, [Views]bool{false, false, false}},
		{"last_seen cleared", func(s *messages.UserState) { s.LastSeen = 0 }, [Views]bool{true, false, false}},
		{"version", func(s *messages.UserState) { s.Version++ }, [Views]bool{false, false, false}},
	}
	for _, tc := range changes {
		next := &messages.UserState{
			UserId: st.UserId, Username: st.Username, IsOnline: st.IsOnline, IsBusy: st.IsBusy,
			BusyUntil: st.BusyUntil, LastSeen: st.LastSeen, Version: st.Version,
		}
		tc.mutate(next)
		for v := range Views {
			if got := SeenAs(st, v) != SeenAs(next, v); got != tc.changed[v] {
				t.Errorf("%s, view %d: changed = %v, want %v", tc.name, v, got, tc.changed[v])
			}
		}
	}
}

func TestAppendVisibility(t *testing.T) {
	tests := []struct {
		st   *messages.UserState
		want Visibility
	}{
		{&messages.UserState{UserId: 3, Version: 4}, Visibility{UserID: 3, Presence: "everyone", LastSeen: "everyone", Allow: []int64{}, Version: 4}},
		{withVisibility(allowlist, nobody, 1, 2, 9223372036854775807),
			Visibility{UserID: 10, Presence: "allowlist", LastSeen: "nobody", Allow: []int64{1, 2, 9223372036854775807}, Version: 77}},
		{withVisibility(newerMode, everyone), Visibility{UserID: 10, Presence: "nobody", LastSeen: "everyone", Allow: []int64{}, Version: 77}},
	}
	for _, tc := range tests {
		got := decode[Visibility](t, AppendVisibility(nil, tc.st))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("AppendVisibility(%v) = %+v, want %+v", tc.st, got, tc.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, name := range []string{VisibilityEveryone, VisibilityNobody, VisibilityAllowlist} {
		mode, ok := ParseMode(name)
		if !ok || ModeName(mode) != name {
			t.Errorf("ParseMode(%q) = %v, %v", name, mode, ok)
		}
	}
	for _, name := range []string{"", "Everyone", "all", "none", " nobody"} {
		if _, ok := ParseMode(name); ok {
			t.Errorf("ParseMode(%q) accepted", name)
		}
	}
}
