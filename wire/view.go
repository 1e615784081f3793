package wire

import (
	"slices"
	"strconv"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// View is what one viewer may see of one user's presence, decided by the
// user's visibility setting. A viewer refused the presence sees the user
// exactly as an offline user looks (not online, not busy, busy_until and
// last_seen null); a viewer refused only last_seen sees last_seen null.
// The version is always the true one.
type View uint8

// The views, from most to least shown. ViewPresenceHidden hides last_seen
// too, so a viewer refused the presence never learns whether last_seen
// alone would have been shown.
const (
	ViewTrue View = iota
	ViewLastSeenHidden
	ViewPresenceHidden
	// Views is the number of views: an array indexed by View holds one
	// entry per view (a frame encoded once per view, say).
	Views
)

// ViewOf classifies a viewer of st: viewer is the viewer's user id, admin
// whether its token has admin rights. The user themself and admins see the
// true record; everyone else what st's visibility setting allows them. A
// state without a setting (the default) shows everything to everyone, and
// costs one nil check.
func ViewOf(st *messages.UserState, viewer int64, admin bool) View {
	vis := st.GetVisibility()
	if vis == nil || admin || viewer == st.GetUserId() {
		return ViewTrue
	}
	if !Allows(vis.GetPresence(), vis.GetAllow(), viewer) {
		return ViewPresenceHidden
	}
	if !Allows(vis.GetLastSeen(), vis.GetAllow(), viewer) {
		return ViewLastSeenHidden
	}
	return ViewTrue
}

// Allows reports whether mode lets viewer see, with allow the sorted
// allowlist. A mode this version does not know (a newer node's) allows
// nobody: hiding too much is the safe mistake.
func Allows(mode messages.VisibilityMode, allow []int64, viewer int64) bool {
	switch mode {
	case messages.VisibilityMode_VISIBILITY_MODE_EVERYONE:
		return true
	case messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST:
		_, found := slices.BinarySearch(allow, viewer)
		return found
	}
	return false
}

// Seen is what a viewer with some View sees of a state, in the fields that
// make a change worth pushing: online, busy, busy_until, username, and
// whether last_seen is shown (its value alone never makes a push). Two
// Seen values are compared with ==.
type Seen struct {
	Online, Busy  bool
	BusyUntil     int64
	Username      string
	LastSeenShown bool
}

// SeenAs is what a viewer with view v sees of st.
func SeenAs(st *messages.UserState, v View) Seen {
	if v == ViewPresenceHidden {
		return Seen{Username: st.GetUsername()}
	}
	return Seen{
		Online:        st.GetIsOnline(),
		Busy:          st.GetIsBusy(),
		BusyUntil:     st.GetBusyUntil(),
		Username:      st.GetUsername(),
		LastSeenShown: v == ViewTrue && st.GetLastSeen() != 0,
	}
}

// AppendPresenceView appends the presence record of st as a viewer with
// view v sees it (AppendPresence for ViewTrue).
func AppendPresenceView(b []byte, s *messages.UserState, v View) []byte {
	if v == ViewTrue {
		return AppendPresence(b, s)
	}
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, s.GetUserId(), 10)
	b = append(b, `,"username":`...)
	b = appendString(b, s.GetUsername())
	if v == ViewPresenceHidden {
		b = append(b, `,"is_online":false,"is_busy":false,"busy_until":null,"last_seen":null`...)
		return appendVersion(b, s)
	}
	b = appendOnlineBusy(b, s)
	b = append(b, `,"last_seen":null`...)
	return appendVersion(b, s)
}

// AppendUpdateFrameView appends a presence_update frame of st as a viewer
// with view v sees it, stamped now.
func AppendUpdateFrameView(b []byte, st *messages.UserState, v View, now time.Time) []byte {
	b = append(b, `{"type":"presence_update","data":`...)
	b = AppendPresenceView(b, st, v)
	b = append(b, `,"timestamp":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}
